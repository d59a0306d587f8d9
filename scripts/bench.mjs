#!/usr/bin/env node
// `npm run bench`: builds, makes sure Debian's mosquitto (a reference broker)
// and, for the cluster profile, redis-server and FerretDB are there, then
// runs bench/main.ts with the arguments given.
import { execFileSync, spawnSync } from 'node:child_process'
import { ensureDebianPackages } from './debian-packages.mjs'
import { ensureFerretDb } from './go-services.mjs'

function say (msg) { process.stdout.write(`[npm run bench] ${msg}\n`) }
say('building (npm run build)')
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })
const args = process.argv.slice(2)
const cluster = !args.includes('--local-only') && !args.includes('--help') && !args.includes('-h')
ensureDebianPackages(say, cluster ? [['mosquitto', 'mosquitto'], ['redis-server', 'redis-server'], ['pg_ctlcluster', 'postgresql']] : [['mosquitto', 'mosquitto']])
// The cluster profile's MongoDB-wire server, as in the tests.
if (cluster) process.env.MQCHAT_TEST_FERRETDB = ensureFerretDb(say)
const r = spawnSync(process.execPath, ['dist/bench/main.js', ...args], { stdio: 'inherit' })
process.exit(r.status ?? 1)
