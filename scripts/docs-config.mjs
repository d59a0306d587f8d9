#!/usr/bin/env node
// `npm run docs:config`: rewrites README.md's configuration table from
// lib/config.ts (after a build), so the table and the code cannot disagree.
import { readFileSync, writeFileSync } from 'node:fs'
import { configTable } from '../dist/lib/config.js'

const readme = readFileSync('README.md', 'utf8')
const start = readme.indexOf('| `MQCHAT_PROFILE`')
if (start < 0) { console.error('README.md has no configuration table to replace'); process.exit(1) }
const end = readme.indexOf('\n\n', start)
writeFileSync('README.md', readme.slice(0, start) + configTable() + readme.slice(end))
console.log('README.md configuration table regenerated')
