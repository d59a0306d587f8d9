#!/usr/bin/env node
// `npm test`: builds, makes sure the real components the tests talk to are
// installed (Debian's mosquitto, mosquitto-clients and redis-server; FerretDB
// and MinIO built with Go), then runs every *.test.js under dist/test with
// Node's test runner. Pass file name fragments to run a subset:
//   npm test -- registration persistence
import { execFileSync, spawnSync } from 'node:child_process'
import { ensureDebianPackages, have } from './debian-packages.mjs'
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

function say (msg) { process.stdout.write(`[npm test] ${msg}\n`) }
say('building (npm run build)')
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })

ensureDebianPackages(say, [['mosquitto_pub', 'mosquitto-clients'], ['mosquitto_sub', 'mosquitto-clients'], ['mosquitto', 'mosquitto'], ['redis-server', 'redis-server']])

// MinIO (the S3 server of the media tests) and FerretDB (the MongoDB-wire
// server of the cluster tests) are built from source with Go, once, into a
// cache outside the clone that later runs reuse.
const cache = process.env.MQCHAT_CACHE_DIR ?? join(homedir(), '.cache', 'mqchat')
const cacheBin = join(cache, 'bin')
mkdirSync(cacheBin, { recursive: true })
function needGo (what) {
  if (!have('go')) { say(`Go is needed to build ${what} for the tests`); process.exit(1) }
}
function go (args, opts = {}) {
  const r = spawnSync('go', args, { stdio: 'inherit', ...opts, env: { ...process.env, ...opts.env } })
  if (r.status !== 0) { say(`failed: go ${args.join(' ')}`); process.exit(1) }
}

const minio = join(cacheBin, 'minio')
if (!existsSync(minio)) {
  needGo('MinIO')
  say(`building MinIO with go install github.com/minio/minio@latest into ${cacheBin} (first run only; takes several minutes)`)
  go(['install', 'github.com/minio/minio@latest'], { env: { GOBIN: cacheBin } })
}
process.env.MQCHAT_TEST_MINIO = minio

// FerretDB v1.24.2. `go install ...@v1.24.2` does not work as such: the Go
// module proxy refuses the module's version list (which go install reads to
// check for deprecation), and the module's build/version/version.txt, which
// the binary embeds and checks at start, is missing from the module zip. So:
// fetch the exact version into the module cache with `go mod download`, copy
// its source, write version.txt, and `go build` it.
const FERRETDB_VERSION = 'v1.24.2'
const ferretdb = join(cacheBin, 'ferretdb')
const ferretStamp = join(cache, `ferretdb-${FERRETDB_VERSION}.built`)
if (!existsSync(ferretdb) || !existsSync(ferretStamp)) {
  needGo('FerretDB')
  say(`building FerretDB ${FERRETDB_VERSION} with go into ${cacheBin} (first run only; a few minutes)`)
  const work = join(cache, 'ferretdb-build')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  const dl = spawnSync('go', ['mod', 'download', '-json', `github.com/FerretDB/FerretDB@${FERRETDB_VERSION}`], { cwd: work, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod' } })
  if (dl.status !== 0) { say(`go mod download failed:\n${dl.stdout}${dl.stderr}`); process.exit(1) }
  const src = join(work, 'src')
  cpSync(JSON.parse(dl.stdout).Dir, src, { recursive: true })
  spawnSync('chmod', ['-R', 'u+w', src])
  writeFileSync(join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`)
  go(['build', '-o', ferretdb, './cmd/ferretdb'], { cwd: src, env: { GOFLAGS: '-mod=mod' } })
  rmSync(work, { recursive: true, force: true })
  writeFileSync(ferretStamp, `${new Date().toISOString()}\n`)
}
process.env.MQCHAT_TEST_FERRETDB = ferretdb

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
