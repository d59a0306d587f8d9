// The key directory for end-to-end encryption (docs/protocol.md, "End-to-end
// encryption"): each device publishes its identity (a Curve25519 identity
// key and the Ed25519 key that signs it), a last-resort prekey, and a pool
// of one-time prekeys; another device claims a bundle to start a session.
// The server checks every signature it can (Ed25519 over a fixed text naming
// the device), hands each one-time prekey out once, and never sees a secret.
import { createPublicKey, verify } from 'node:crypto'
import { DomainError } from './errors.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'
import type { ChatService } from './chats.js'
import type { DeviceService } from './devices.js'
import type { Device, DeviceIdentity, KeyStore, SignedPrekey } from '../store/types.js'

export interface KeyOptions {
  /** One-time prekeys a device may hold at once. */
  maxPrekeys: number
  /** Below this many after a claim, the device is asked for more (a `keys` event). */
  lowWater: number
  /** Claims one user may make of another user's keys per 10 minutes. */
  claimsPer10Minutes: number
  counters?: CounterFactory
}

/** What the API takes to publish or replace a device's keys. */
export interface KeyUpload {
  identityKey?: string
  signingKey?: string
  identitySignature?: string
  fallbackKey?: SignedPrekey
  oneTimeKeys?: SignedPrekey[]
}

/** One device's bundle, as a claim answers it. */
export interface Bundle {
  deviceId: string
  identityKey: string
  signingKey: string
  identitySignature: string
  prekey: SignedPrekey | null
  /** The prekey is the device's last-resort one (its pool was empty). */
  fallback: boolean
}

/** A device that can read a chat's encrypted messages, with the identity key they are encrypted to. */
export interface ReadableDevice { userId: string, deviceId: string, identityKey: string }

/** Sends an inbox event to a device (bridge.sendTo). */
export type KeyEventSender = (deviceId: string, payload: string) => void

const KEY_BYTES = 32
const SIGNATURE_BYTES = 64
const KEY_ID = /^[A-Za-z0-9+/=_-]{1,64}$/
/** An Ed25519 public key as a DER SubjectPublicKeyInfo: this prefix, then the 32 raw bytes (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

const bad = (message: string): DomainError => new DomainError('bad_request', message, 400)

/** Standard base64 (padded or not) of exactly `bytes` bytes (a Curve25519 or Ed25519 key by default). */
export function isKey (s: unknown, bytes = KEY_BYTES): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s, 'base64').length === bytes
}

/** What a device's Ed25519 key signs: the device and the key, so a signature cannot be moved to another. */
export const identityText = (deviceId: string, identityKey: string): string => `mqchat-identity\n${deviceId}\n${identityKey}`
export const prekeyText = (deviceId: string, k: { keyId: string, key: string }): string => `mqchat-prekey\n${deviceId}\n${k.keyId}\n${k.key}`

export function verifyEd25519 (signingKey: string, text: string, signature: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(signingKey, 'base64')]), format: 'der', type: 'spki' })
    return verify(null, Buffer.from(text), key, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}

function checkPrekey (deviceId: string, signingKey: string, k: unknown, what: string): SignedPrekey {
  const p = k as Partial<SignedPrekey> | null
  if (p === null || typeof p !== 'object' || typeof p.keyId !== 'string' || !KEY_ID.test(p.keyId) || !isKey(p.key) || !isKey(p.signature, SIGNATURE_BYTES)) {
    throw bad(`${what} must be {"key_id", "key" (32 bytes, base64), "signature" (64 bytes, base64)}`)
  }
  if (!verifyEd25519(signingKey, prekeyText(deviceId, { keyId: p.keyId, key: p.key }), p.signature)) throw new DomainError('bad_signature', `${what} ${p.keyId}: the signature is not the device's`, 400)
  return { keyId: p.keyId, key: p.key, signature: p.signature }
}

export class KeyDirectory {
  readonly #claims: Counter
  /** Devices with a published identity, and its identity key, in memory: who an encrypted message must be addressed to. */
  #published = new Map<string, string>()
  #notify: (deviceId: string) => Promise<void> = async () => {}

  constructor (
    private readonly store: KeyStore,
    private readonly devices: DeviceService,
    private readonly chats: ChatService,
    private readonly send: KeyEventSender,
    private readonly opts: KeyOptions
  ) {
    this.#claims = (opts.counters ?? memoryCounters)('key-claims', opts.claimsPer10Minutes, 600_000)
  }

  async init (): Promise<void> { this.#published = new Map((await this.store.identityKeys()).map((k) => [k.deviceId, k.identityKey])) }

  /** Cluster: a device's new or changed identity is announced to the other nodes through this. */
  notifyWith (notify: (deviceId: string) => Promise<void>): void { this.#notify = notify }

  /** Re-reads whether a device has published keys (a change on another node). */
  async refresh (deviceId: string): Promise<void> {
    const identity = await this.store.getIdentity(deviceId)
    if (identity !== undefined) this.#published.set(deviceId, identity.identityKey)
    else this.#published.delete(deviceId)
  }

  /** A device's published identity key (no store read). */
  identityKeyOf (deviceId: string): string | undefined { return this.#published.get(deviceId) }

  /**
   * The devices that can read a chat: every active device with published
   * keys of every member, `except` (the sender's) left out. From memory: an
   * encrypted message is checked against it, and clients address by it.
   */
  readableDevices (chatId: string, except: string): ReadableDevice[] {
    const out: ReadableDevice[] = []
    for (const userId of this.chats.memberIds(chatId)) {
      for (const deviceId of this.devices.activeIds(userId)) {
        const identityKey = deviceId === except ? undefined : this.#published.get(deviceId)
        if (identityKey !== undefined) out.push({ userId, deviceId, identityKey })
      }
    }
    return out
  }

  /** The devices a member of a chat encrypts its messages for (readableDevices, for the caller). */
  chatDevices (caller: Device, chatId: string): ReadableDevice[] {
    if (!this.chats.isMember(chatId, caller.userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
    return this.readableDevices(chatId, caller.id)
  }

  /**
   * Publishes a device's keys. The first upload must name the identity; a
   * later one may add one-time keys or a new fallback key alone. A changed
   * identity key replaces the old one (its one-time keys go with it), and
   * the device's contacts are told with a `keys` event.
   */
  async upload (device: Device, u: KeyUpload): Promise<{ oneTimeKeys: number }> {
    const before = await this.store.getIdentity(device.id)
    const naming = u.identityKey !== undefined || u.signingKey !== undefined || u.identitySignature !== undefined
    if (!naming && before === undefined) throw bad('the first upload names the identity: identity_key, signing_key, identity_signature')
    let identity: DeviceIdentity = before!
    if (naming) {
      if (!isKey(u.identityKey) || !isKey(u.signingKey) || !isKey(u.identitySignature, SIGNATURE_BYTES)) {
        throw bad('identity_key and signing_key must be 32 bytes, identity_signature 64 bytes, base64')
      }
      if (!verifyEd25519(u.signingKey, identityText(device.id, u.identityKey), u.identitySignature)) {
        throw new DomainError('bad_signature', 'identity_signature is not signing_key\'s over this device\'s identity key', 400)
      }
      const changed = before !== undefined && (before.identityKey !== u.identityKey || before.signingKey !== u.signingKey)
      identity = {
        deviceId: device.id,
        userId: device.userId,
        identityKey: u.identityKey,
        signingKey: u.signingKey,
        signature: u.identitySignature,
        // A new identity takes nothing of the old one's keys.
        fallbackKey: changed ? null : before?.fallbackKey ?? null,
        updatedAt: Date.now()
      }
    }
    const fallback = u.fallbackKey !== undefined ? checkPrekey(device.id, identity.signingKey, u.fallbackKey, 'fallback_key') : undefined
    const oneTime = (u.oneTimeKeys ?? []).map((k, i) => checkPrekey(device.id, identity.signingKey, k, `one_time_keys[${i}]`))
    if (oneTime.length > this.opts.maxPrekeys) throw bad(`at most ${this.opts.maxPrekeys} one-time keys at once`)
    const identityChanged = before !== undefined && (before.identityKey !== identity.identityKey || before.signingKey !== identity.signingKey)
    // Checked before anything is written: a refused upload changes nothing. A new identity key empties the pool.
    const count = identityChanged ? 0 : await this.store.countOneTimeKeys(device.id)
    if (count + oneTime.length > this.opts.maxPrekeys) {
      throw new DomainError('limit_reached', `a device holds at most ${this.opts.maxPrekeys} one-time keys (it has ${count})`, 409)
    }
    if (naming || fallback !== undefined) await this.store.putIdentity({ ...identity, ...(fallback !== undefined ? { fallbackKey: fallback } : {}) })
    const total = oneTime.length > 0 ? await this.store.addOneTimeKeys(device.id, oneTime) : count
    if (before === undefined || identityChanged) {
      this.#published.set(device.id, identity.identityKey)
      await this.#notify(device.id)
      this.announce(device, before === undefined ? 'new_device' : 'identity_changed')
    }
    return { oneTimeKeys: total }
  }

  async count (device: Device): Promise<{ oneTimeKeys: number, fallbackKey: boolean, max: number }> {
    const [n, identity] = await Promise.all([this.store.countOneTimeKeys(device.id), this.store.getIdentity(device.id)])
    return { oneTimeKeys: n, fallbackKey: (identity?.fallbackKey ?? null) !== null, max: this.opts.maxPrekeys }
  }

  /** The published identities of a user's active devices (no prekeys): for device lists and safety numbers. */
  async identities (caller: Device, userId: string): Promise<DeviceIdentity[]> {
    this.mayReach(caller, userId)
    const all = await Promise.all([...this.devices.activeIds(userId)].map(async (id) => await this.store.getIdentity(id)))
    return all.filter((i): i is DeviceIdentity => i !== undefined)
  }

  /**
   * A bundle for each of a user's active devices that published keys (the
   * caller's own device excluded): each one-time prekey is handed out once;
   * a device whose pool is empty hands out its fallback key. A device left
   * below the low-water mark is asked for more. `only` limits the claim to
   * those of the user's devices (a client claims for devices it has no
   * session with, and leaves the others' pools alone).
   */
  async claim (caller: Device, userId: string, only?: readonly string[]): Promise<Bundle[]> {
    this.mayReach(caller, userId)
    if (!await this.#claims.hit(`${caller.userId}\n${userId}`)) {
      throw new DomainError('rate_limited', `at most ${this.opts.claimsPer10Minutes} key claims of one user per 10 minutes`, 429)
    }
    const out: Bundle[] = []
    for (const deviceId of this.devices.activeIds(userId)) {
      if (deviceId === caller.id || (only !== undefined && !only.includes(deviceId))) continue
      const identity = await this.store.getIdentity(deviceId)
      if (identity === undefined) continue
      const claimed = await this.store.claim(deviceId)
      out.push({ deviceId, identityKey: identity.identityKey, signingKey: identity.signingKey, identitySignature: identity.signature, prekey: claimed?.prekey ?? null, fallback: claimed?.fallback ?? false })
      if (claimed !== undefined) {
        const left = await this.store.countOneTimeKeys(deviceId)
        if (left < this.opts.lowWater) this.send(deviceId, JSON.stringify({ type: 'keys', reason: 'prekeys_low', count: left, ts: Date.now() }))
      }
    }
    return out
  }

  /** A revoked device's keys go. */
  async dropDevice (deviceId: string): Promise<void> {
    this.#published.delete(deviceId)
    await this.store.dropDevice(deviceId)
  }

  /** Only a user's own devices, and users sharing a chat with them, may read or claim their keys. */
  private mayReach (caller: Device, userId: string): void {
    if (caller.userId === userId || this.chats.sharesChat(caller.userId, userId)) return
    throw new DomainError('not_found', 'no such user among your chats', 404)
  }

  /** Tells the device's contacts (everyone sharing a chat with its user) and the user's other devices. */
  private announce (device: Device, reason: 'new_device' | 'identity_changed'): void {
    const users = this.chats.coMembers(device.userId)
    const payload = JSON.stringify({ type: 'keys', reason, user: device.userId, device: device.id, ts: Date.now() })
    for (const u of users) for (const d of this.devices.activeIds(u)) if (d !== device.id) this.send(d, payload)
  }
}
