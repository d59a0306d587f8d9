// The CLI's end-to-end encryption state: one JSON file per profile,
// <MQCHAT_CLI_HOME>/<profile>.e2ee.json, mode 0600 (as the device token
// beside it). vodozemac's secrets are in it only as encrypted pickles, under
// a key kept in the same file: at rest, the file's mode is what protects it.
//
// `listen` and `send` may run at once on one profile, and both advance the
// same ratchets, so every change is a locked read-modify-write
// (proper-lockfile) and the file is replaced by a rename, never rewritten
// in place.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { CliError, EXIT } from './errors.js'
import { cliHome } from './profile.js'

/** A device seen in the key directory: first seen, and when its keys last changed (trust on first use). */
export interface KnownDevice { user: string, curve: string, ed: string, first_seen: number, changed_at?: number }

/** A group session this device sends with in one chat. */
export interface OutboundState {
  pickle: string
  session_id: string
  /** The devices that were sent its key. */
  shared: string[]
  created: number
  sent: number
}

/** Someone's group session: who sent its key, for which chat. */
export interface InboundState { pickle: string, user: string, device: string, chat: string }

export interface E2eeState {
  v: 1
  user_id: string
  device_id: string
  /** The 32-byte key (base64) every pickle below is encrypted under. */
  pickle_key: string
  account: string
  /** Whether the identity is in the server's key directory. */
  published: boolean
  devices: Record<string, KnownDevice>
  /** Olm sessions by the other device's identity key, the one last used first. */
  olm: Record<string, string[]>
  outbound: Record<string, OutboundState>
  /** By "<sender key> <session id>". */
  inbound: Record<string, InboundState>
  /**
   * Plaintexts this device must remember, because Olm decrypts a message
   * once and a sender cannot decrypt its own: "c:<SHA-256 of a ciphertext>"
   * for received ones, "s:<chat> <client id>" for sent ones. The oldest go
   * beyond MAX_PLAINTEXTS.
   */
  plain: Record<string, string>
  /** When remembered plaintexts of disappearing messages expire: they are deleted here too. */
  expires?: Record<string, number>
}

export const MAX_PLAINTEXTS = 10_000

const fileOf = (profile: string): string => join(cliHome(), `${profile}.e2ee.json`)

function write (file: string, s: E2eeState): void {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 })
  renameSync(tmp, file)
}

function read (file: string): E2eeState | undefined {
  if (!existsSync(file)) return undefined
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as E2eeState
  } catch (err) {
    throw new CliError(`cannot read the encryption state ${file}: ${(err as Error).message}`, EXIT.failure)
  }
}

/** Keeps at most MAX_PLAINTEXTS remembered plaintexts, dropping the oldest; a disappearing message's until it expires. */
export function remember (s: E2eeState, key: string, plaintext: string, expiresAt?: number): void {
  delete s.plain[key]
  s.plain[key] = plaintext
  if (expiresAt !== undefined) (s.expires ??= {})[key] = expiresAt
  const keys = Object.keys(s.plain)
  for (let i = 0; i < keys.length - MAX_PLAINTEXTS; i++) {
    delete s.plain[keys[i]!]
    if (s.expires !== undefined) delete s.expires[keys[i]!]
  }
}

/** Deletes the remembered plaintexts of disappearing messages that have expired. */
export function forgetExpired (s: E2eeState, now: number): void {
  for (const [key, at] of Object.entries(s.expires ?? {})) {
    if (at > now) continue
    delete s.plain[key]
    delete s.expires![key]
  }
}

/** The state file of a profile, read and changed under its lock. */
export class StateFile {
  readonly file: string
  constructor (profile: string) { this.file = fileOf(profile) }

  exists (): boolean { return existsSync(this.file) }

  /** The state as it is now (no lock: for reads that change nothing). */
  peek (): E2eeState | undefined { return read(this.file) }

  /**
   * Runs `fn` on the current state under the profile's lock and saves what
   * it leaves; `create` makes the state when there is none (or when it
   * belongs to another device of the profile: a re-registered one).
   */
  async update<T> (create: () => E2eeState, belongs: (s: E2eeState) => boolean, fn: (s: E2eeState) => Promise<T> | T, onWait: () => void = () => {}): Promise<T> {
    mkdirSync(cliHome(), { recursive: true, mode: 0o700 })
    // The lock is a directory beside the file; a holder that died leaves it stale after 10 s (a live one keeps it fresh).
    const lock = async (retries: number): Promise<() => Promise<void>> =>
      await lockfile.lock(this.file, { realpath: false, stale: 10_000, retries: { retries, factor: 1.2, minTimeout: 20, maxTimeout: 500 } })
    let release: () => Promise<void>
    try {
      release = await lock(0).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ELOCKED') throw err
        onWait()
        return await lock(200)
      })
    } catch (err) {
      throw new CliError(`the encryption state ${this.file} stays locked by another mqchat process (${(err as Error).message})`, EXIT.failure)
    }
    try {
      const current = read(this.file)
      const s = current !== undefined && belongs(current) ? current : create()
      const out = await fn(s)
      forgetExpired(s, Date.now())
      write(this.file, s)
      return out
    } finally {
      await release()
    }
  }
}
