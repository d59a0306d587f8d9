#!/usr/bin/env node
// Builds the CLI's end-to-end encryption binding (clients/cli/e2ee: Rust over
// vodozemac) into clients/cli/e2ee/pkg/, which is committed so that
// `npm install` needs no Rust. `--check` builds into a temporary directory
// and fails if the result differs from the committed files: the wasm in the
// repository is the one its source makes (.ci/run runs it).
//
// Needs cargo with the wasm32-unknown-unknown target (rust-toolchain.toml
// pins the toolchain) and wasm-bindgen-cli 0.2.100 (the version of the crate's
// wasm-bindgen: cargo install wasm-bindgen-cli --version 0.2.100 --locked).
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const crate = join(root, 'clients', 'cli', 'e2ee')
const committed = join(crate, 'pkg')
const check = process.argv.includes('--check')
const say = (m) => process.stdout.write(`[build-e2ee] ${m}\n`)
const cache = process.env.MQCHAT_CACHE_DIR ?? join(homedir(), '.cache', 'mqchat')
const target = join(cache, 'e2ee-target')

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.error?.code === 'ENOENT') { say(`${cmd} is not installed (see the top of scripts/build-e2ee.mjs)`); process.exit(1) }
  if (r.status !== 0) { say(`failed: ${cmd} ${args.join(' ')}`); process.exit(1) }
}

const version = spawnSync('wasm-bindgen', ['--version'], { encoding: 'utf8' }).stdout?.trim()
if (version !== 'wasm-bindgen 0.2.100') { say(`wasm-bindgen 0.2.100 is needed (found: ${version ?? 'none'}): cargo install wasm-bindgen-cli --version 0.2.100 --locked`); process.exit(1) }
say(`cargo build --release --target wasm32-unknown-unknown (target dir ${target})`)
run('cargo', ['build', '--release', '--locked', '--target', 'wasm32-unknown-unknown'], { cwd: crate, env: { ...process.env, CARGO_TARGET_DIR: target } })
const out = check ? mkdtempSync(join(tmpdir(), 'mqchat-e2ee-pkg-')) : committed
run('wasm-bindgen', ['--target', 'nodejs', '--out-dir', out, join(target, 'wasm32-unknown-unknown', 'release', 'mqchat_e2ee.wasm')])
// The generated module is CommonJS; the repository's package.json says ESM.
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n')
if (!check) { say(`built into ${out}`); process.exit(0) }
const hash = (dir, f) => createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')
const files = readdirSync(out).sort()
const differ = files.filter((f) => { try { return hash(out, f) !== hash(committed, f) } catch { return true } })
const missing = readdirSync(committed).filter((f) => !files.includes(f))
rmSync(out, { recursive: true, force: true })
if (differ.length > 0 || missing.length > 0) { say(`the committed pkg/ is not what the source builds: ${[...differ, ...missing].join(', ')} (run npm run build:e2ee and commit)`); process.exit(1) }
say(`pkg/ matches a fresh build (${files.length} files)`)
