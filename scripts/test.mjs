#!/usr/bin/env node
// `npm test`: builds, makes sure the real components the tests talk to are
// installed (Debian's mosquitto and mosquitto-clients; MinIO built with Go),
// then runs every *.test.js under
// dist/test with Node's test runner. Pass file name fragments to run a subset:
//   npm test -- registration persistence
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

function say (msg) { process.stdout.write(`[npm test] ${msg}\n`) }
function have (cmd) { return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0 }

function ensureDebianPackages (pkgs) {
  const missing = pkgs.filter(([cmd]) => !have(cmd))
  if (missing.length === 0) return
  const names = [...new Set(missing.map(([, pkg]) => pkg))]
  say(`installing Debian packages ${names.join(', ')} (needed by the tests: ${missing.map(([c]) => c).join(', ')})`)
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : []
  const run = (args) => {
    const r = spawnSync(sudo[0] ?? args[0], sudo.length ? args : args.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    if (r.status !== 0) throw new Error(`failed: ${args.join(' ')}`)
  }
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', ...names])
}

say('building (npm run build)')
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })

ensureDebianPackages([['mosquitto_pub', 'mosquitto-clients'], ['mosquitto_sub', 'mosquitto-clients'], ['mosquitto', 'mosquitto']])

// MinIO (the S3 server the media tests run against) is built from source with
// `go install`, once, into a cache outside the clone that later runs reuse.
const cacheBin = join(process.env.MQCHAT_CACHE_DIR ?? join(homedir(), '.cache', 'mqchat'), 'bin')
const minio = join(cacheBin, 'minio')
if (!existsSync(minio)) {
  if (!have('go')) { say('Go is needed to build MinIO for the S3 tests (go install github.com/minio/minio@latest)'); process.exit(1) }
  say(`building MinIO with go install into ${cacheBin} (first run only; takes several minutes)`)
  mkdirSync(cacheBin, { recursive: true })
  const r = spawnSync('go', ['install', 'github.com/minio/minio@latest'], { stdio: 'inherit', env: { ...process.env, GOBIN: cacheBin } })
  if (r.status !== 0) { say('building MinIO failed'); process.exit(1) }
}
process.env.MQCHAT_TEST_MINIO = minio

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
say(`running ${files.length} test files`)
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' })
process.exit(r.status ?? 1)
