#!/usr/bin/env node
// `npm test`: builds, makes sure the real components the tests talk to are
// installed (Debian's mosquitto, mosquitto-clients, redis-server,
// postgresql (FerretDB's backend in the cluster tests), python3-slixmpp, an
// XMPP client for the gateway tests, python3-venv; paho-mqtt, an MQTT client,
// from PyPI into a virtual environment; FerretDB and MinIO built with Go), then runs every *.test.js under dist/test with
// Node's test runner. Pass file name fragments to run a subset:
//   npm test -- registration persistence
// The tests, and every server they start, run on the Node that runs this
// script (under npm, the one `npm install` put in node_modules), or on the
// one MQCHAT_TEST_NODE names: CI runs the suite on each supported LTS line.
import { execFileSync, spawnSync } from 'node:child_process'
import { ensureDebianPackages } from './debian-packages.mjs'
import { ensureFerretDb, ensureMinio } from './go-services.mjs'
import { ensurePythonClients } from './python-clients.mjs'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function say (msg) { process.stdout.write(`[npm test] ${msg}\n`) }
const runtime = process.env.MQCHAT_TEST_NODE || process.execPath
const version = spawnSync(runtime, ['--version'], { encoding: 'utf8' }).stdout?.trim()
if (!version) { say(`MQCHAT_TEST_NODE=${runtime} does not run`); process.exit(1) }
say('building (npm run build)')
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })

ensureDebianPackages(say, [['mosquitto_pub', 'mosquitto-clients'], ['mosquitto_sub', 'mosquitto-clients'], ['mosquitto', 'mosquitto'], ['redis-server', 'redis-server'], ['pg_ctlcluster', 'postgresql'], ['py:slixmpp', 'python3-slixmpp'], ['py:ensurepip', 'python3-venv'], ['curl', 'curl'], ['openssl', 'openssl']])

// MinIO (the S3 server of the media tests) and FerretDB (the MongoDB-wire
// server of the cluster tests), built with Go once into a cache outside the clone.
process.env.MQCHAT_TEST_MINIO = ensureMinio(say)
process.env.MQCHAT_TEST_FERRETDB = ensureFerretDb(say)
// paho-mqtt from PyPI (test/clients/requirements.txt), in a virtual environment in the same cache.
process.env.MQCHAT_TEST_PYTHON = ensurePythonClients(say)

function collect (dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...collect(p))
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}
const filters = process.argv.slice(2)
const files = collect('dist/test').sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
if (files.length === 0) { say('no test files matched'); process.exit(1) }
say(`running ${files.length} test files on Node ${version} (${runtime})`)
// A test that hangs (a wait someone forgot to bound) fails after this instead of holding the suite up for good.
const TEST_TIMEOUT_MS = 300_000
const r = spawnSync(runtime, ['--test', '--test-reporter=spec', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files], { stdio: 'inherit' })
process.exit(r.status ?? 1)
