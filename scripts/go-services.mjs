// Servers the tests and benchmarks start that Debian does not package in a
// usable version: MinIO (S3) and FerretDB (the MongoDB wire protocol). Each
// is built from source with Go, once, into a cache outside the clone
// (MQCHAT_CACHE_DIR, default ~/.cache/mqchat) that later runs reuse. Each
// function returns the binary's path.
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { have } from './debian-packages.mjs'

const cache = process.env.MQCHAT_CACHE_DIR ?? join(homedir(), '.cache', 'mqchat')
const cacheBin = join(cache, 'bin')

function needGo (say, what) {
  if (!have('go')) { say(`Go is needed to build ${what}`); process.exit(1) }
  mkdirSync(cacheBin, { recursive: true })
}
function go (say, args, opts = {}) {
  const r = spawnSync('go', args, { stdio: 'inherit', ...opts, env: { ...process.env, ...opts.env } })
  if (r.status !== 0) { say(`failed: go ${args.join(' ')}`); process.exit(1) }
}

export function ensureMinio (say) {
  const minio = join(cacheBin, 'minio')
  if (!existsSync(minio)) {
    needGo(say, 'MinIO')
    say(`building MinIO with go install github.com/minio/minio@latest into ${cacheBin} (first run only; takes several minutes)`)
    go(say, ['install', 'github.com/minio/minio@latest'], { env: { GOBIN: cacheBin } })
  }
  return minio
}

// FerretDB v1.24.2. `go install ...@v1.24.2` does not work as such: the Go
// module proxy refuses the module's version list (which go install reads to
// check for deprecation), and the module's build/version/version.txt, which
// the binary embeds and checks at start, is missing from the module zip. So:
// fetch the exact version into the module cache with `go mod download`, copy
// its source, write version.txt, and `go build` it.
const FERRETDB_VERSION = 'v1.24.2'

export function ensureFerretDb (say) {
  const ferretdb = join(cacheBin, 'ferretdb')
  const stamp = join(cache, `ferretdb-${FERRETDB_VERSION}.built`)
  if (!existsSync(ferretdb) || !existsSync(stamp)) {
    needGo(say, 'FerretDB')
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
    go(say, ['build', '-o', ferretdb, './cmd/ferretdb'], { cwd: src, env: { GOFLAGS: '-mod=mod' } })
    rmSync(work, { recursive: true, force: true })
    writeFileSync(stamp, `${new Date().toISOString()}\n`)
  }
  return ferretdb
}
