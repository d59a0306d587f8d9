// Helpers for tests that chat end-to-end encrypted with the CLI: CLI
// profiles for registered devices, a long-running `mqchat listen`, and a
// scan of stored bytes for any fragment of a plaintext.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI, cli, waitFor, within, type DeviceCreds, type TestServer } from './server.js'

/** Writes a CLI profile for a registered device and publishes its keys with the CLI. */
export async function profileFor (home: string, server: TestServer, name: string, d: DeviceCreds): Promise<string> {
  writeFileSync(join(home, `${name}.json`), JSON.stringify({ server: server.url, user_id: d.userId, device_id: d.deviceId, token: d.token }), { mode: 0o600 })
  const r = await cli(home, ['keys', 'publish', '--profile', name])
  if (r.code !== 0) throw new Error(`keys publish for ${name}: ${r.stderr}`)
  return name
}

/** Runs the CLI and parses its one JSON line, failing with its stderr otherwise. */
export async function cliJson (home: string, args: string[]): Promise<any> {
  const r = await cli(home, [...args, '--json'], {}, 30_000)
  if (r.code !== 0) throw new Error(`mqchat ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!)
}

/** A chat's messages as one device's `mqchat history --json` shows them (decrypted where it can). */
export async function historyOf (home: string, profile: string, chat: string): Promise<any[]> {
  const r = await cli(home, ['history', chat, '--profile', profile, '--json'], {}, 30_000)
  if (r.code !== 0) throw new Error(`history for ${profile}: ${r.stderr}`)
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n').map((l) => JSON.parse(l))
}

/** `mqchat listen --json` running in the background; its events as they are printed. */
export class Listener {
  readonly events: any[] = []
  stderr = ''
  readonly #child: ChildProcess
  #exited: Promise<number>

  constructor (home: string, readonly profile: string, args: string[] = []) {
    this.#child = spawn(process.execPath, [CLI, 'listen', '--profile', profile, '--json', ...args], { env: { PATH: process.env.PATH ?? '', MQCHAT_CLI_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
    let buf = ''
    this.#child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString('utf8')
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (line.trim() !== '') this.events.push(JSON.parse(line))
      }
    })
    this.#child.stderr!.on('data', (c: Buffer) => { this.stderr += c.toString('utf8') })
    this.#exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code ?? 1)))
  }

  /** Waits for a printed event; fails with what was printed otherwise. */
  async wait (what: string, pred: (e: any) => boolean, timeoutMs = 20_000): Promise<any> {
    try {
      return await waitFor(`${this.profile} listening: ${what}`, () => this.events.find(pred), timeoutMs)
    } catch (err) {
      throw new Error(`${(err as Error).message}\nprinted: ${JSON.stringify(this.events)}\nstderr: ${this.stderr}`)
    }
  }

  /** Stops it (SIGTERM) and waits for it to exit. */
  async stop (): Promise<number> {
    if (this.#child.exitCode === null) this.#child.kill('SIGTERM')
    return await within(`${this.profile}'s listen to exit`, this.#exited, 10_000)
  }
}

/** Every file under a directory, as bytes. */
export function filesUnder (dir: string): Array<{ path: string, bytes: Buffer }> {
  const out: Array<{ path: string, bytes: Buffer }> = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...filesUnder(path))
    else out.push({ path, bytes: readFileSync(path) })
  }
  return out
}

/** The places where any `size`-character piece of a plaintext occurs in the given bytes. */
export function fragmentsIn (plaintexts: string[], stored: Array<{ path: string, bytes: Buffer }>, size = 10): string[] {
  const found: string[] = []
  for (const p of plaintexts) {
    for (let i = 0; i + size <= p.length; i++) {
      const piece = p.slice(i, i + size)
      for (const f of stored) if (f.bytes.includes(piece)) found.push(`"${piece}" in ${f.path}`)
    }
  }
  return found
}
