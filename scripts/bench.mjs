#!/usr/bin/env node
// `npm run bench`: builds, makes sure Debian's mosquitto (a reference broker)
// is installed, then runs bench/main.ts with the arguments given.
import { execFileSync, spawnSync } from 'node:child_process'
import { ensureDebianPackages } from './debian-packages.mjs'

function say (msg) { process.stdout.write(`[npm run bench] ${msg}\n`) }
say('building (npm run build)')
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })
ensureDebianPackages(say, [['mosquitto', 'mosquitto']])
const r = spawnSync(process.execPath, ['dist/bench/main.js', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(r.status ?? 1)
