// Devices: creation (first device at registration, then linking), listing,
// revocation, and token checks. Devices are cached in memory so that MQTT
// authentication and fan-out never wait on the store.
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Device, DirectoryStore } from '../store/types.js'
import { scramCredentials, type ScramCredentials } from '../lib/scram.js'
import { DomainError, notFound } from './errors.js'
import { deviceIdOfToken, hashSecret, newDeviceId, newToken, tokenMatches } from './ids.js'

/** PBKDF2 iterations of a device's SCRAM keys (RFC 7677's minimum: the token is 256 random bits, so more buys nothing). */
export const SCRAM_ITERATIONS = 4096

/**
 * The SCRAM salt of a user. A SCRAM login names the user, not the device,
 * and the server must answer with a salt before it knows which device's
 * token the client holds; so every device of a user shares one salt,
 * derived from the user id (the same for unknown users, which tells an
 * onlooker nothing).
 */
export function scramSalt (userId: string): Buffer {
  return createHash('sha256').update(`mqchat SCRAM salt\0${userId}`).digest().subarray(0, 16)
}

/** A device as users and operators are shown it: no token, no keys. */
export const deviceJson = (d: Device) => ({ device_id: d.id, name: d.name, created_at: d.createdAt, kind: d.linked === true ? 'linked' : 'primary' })

export interface DeviceEvents {
  created: [Device]
  revoked: [Device]
  /** The device's user was banned: its connections close (it is not revoked; a lifted ban lets it back). */
  banned: [Device]
}

export class DeviceService extends EventEmitter<DeviceEvents> {
  #byId = new Map<string, Device>()
  #byUser = new Map<string, Set<string>>()
  /** Banned users: their devices are refused everywhere while the ban lasts. */
  #banned = new Set<string>()
  #notifyBan: (userId: string) => Promise<void> = async () => {}

  #notify: (deviceId: string) => Promise<void> = async () => {}
  /** Devices whose SCRAM keys are being made from a token just seen. */
  #addingScram = new Set<string>()
  /** Devices being created, per user, not yet in the cache (they count against the limit). */
  #creating = new Map<string, number>()
  /** Run, and awaited, for every new device before create() returns (the broker provisions its inbox). */
  #onCreate: Array<(d: Device) => Promise<unknown>> = []

  /** `fn` runs for each new device before its creation is answered; a failure fails the creation. */
  onCreate (fn: (d: Device) => Promise<unknown>): void { this.#onCreate.push(fn) }

  /** Every active device. */
  allActive (): IterableIterator<Device> {
    return (function * (byId: Map<string, Device>) { for (const d of byId.values()) if (d.revokedAt === null) yield d })(this.#byId)
  }

  constructor (private readonly directory: DirectoryStore, private readonly maxPerUser: number) {
    super()
  }

  /** Cluster: device changes are announced to the other nodes through this. */
  notifyWith (notify: (deviceId: string) => Promise<void>): void { this.#notify = notify }

  /** Re-reads one device from the store (a change made on another node), emitting created or revoked as it applies here. */
  async refresh (deviceId: string): Promise<void> {
    const d = await this.directory.getDevice(deviceId)
    if (!d) {
      // Erased with its account on another node (it was revoked first).
      const gone = this.#byId.get(deviceId)
      if (gone !== undefined && gone.revokedAt !== null) this.forgetUser(gone.userId)
      return
    }
    const before = this.#byId.get(deviceId)
    this.cache(d)
    if (!before) this.emit('created', d)
    else if (before.revokedAt === null && d.revokedAt !== null) this.emit('revoked', d)
  }

  async init (): Promise<void> {
    const rows = await this.directory.allDevices()
    this.#byId.clear()
    this.#byUser.clear()
    for (const d of rows) this.cache(d)
    this.#banned = new Set(await this.directory.bannedUsers())
  }

  private cache (d: Device): void {
    this.#byId.set(d.id, d)
    let set = this.#byUser.get(d.userId)
    if (!set) this.#byUser.set(d.userId, set = new Set())
    if (d.revokedAt === null) set.add(d.id)
    else set.delete(d.id)
  }

  /** The active device a token belongs to, if the token is valid. */
  authenticate (token: string, deviceId: string | undefined = deviceIdOfToken(token)): Device | undefined {
    if (deviceId === undefined || deviceIdOfToken(token) !== deviceId) return undefined
    const d = this.#byId.get(deviceId)
    if (!d || d.revokedAt !== null || this.#banned.has(d.userId)) return undefined
    if (!tokenMatches(token, d.tokenHash)) return undefined
    if (!d.scram) this.#addScram(d, token)
    return d
  }

  /** An active device by id, for a sign-in already checked another way. */
  active (deviceId: string): Device | undefined {
    const d = this.#byId.get(deviceId)
    return d && d.revokedAt === null && !this.#banned.has(d.userId) ? d : undefined
  }

  /** A user's active devices that have SCRAM keys, and the salt those keys were made with. */
  scramOf (userId: string): { salt: Buffer, iterations: number, devices: Array<Device & { scram: ScramCredentials }> } {
    const withKeys = (d: Device): d is Device & { scram: ScramCredentials } => d.scram?.iterations === SCRAM_ITERATIONS
    // A banned user's devices have no keys to sign in with while the ban lasts.
    return { salt: scramSalt(userId), iterations: SCRAM_ITERATIONS, devices: this.#banned.has(userId) ? [] : this.list(userId).filter(withKeys) }
  }

  /**
   * A device made before SCRAM keys were kept gets them the first time its
   * token is used (MQTT or SASL PLAIN); until then it signs in over XMPP
   * with PLAIN only. A failure is retried at the next sign-in.
   */
  #addScram (d: Device, token: string): void {
    if (this.#addingScram.has(d.id)) return
    this.#addingScram.add(d.id)
    void (async () => {
      const scram = await scramCredentials(token, scramSalt(d.userId), SCRAM_ITERATIONS)
      await this.directory.setDeviceScram(d.id, scram)
      const now = this.#byId.get(d.id)
      if (now) this.cache({ ...now, scram })
      await this.#notify(d.id)
    })().catch(() => {}).finally(() => this.#addingScram.delete(d.id))
  }

  get (deviceId: string): Device | undefined { return this.#byId.get(deviceId) }

  isBanned (userId: string): boolean { return this.#banned.has(userId) }

  /** Cluster: bans are announced to the other nodes through this. */
  notifyBanWith (notify: (userId: string) => Promise<void>): void { this.#notifyBan = notify }

  /** Bans a user (their devices are refused and disconnected, everywhere) or lifts the ban. */
  async setBanned (userId: string, banned: boolean): Promise<void> {
    await this.directory.setBanned(userId, banned ? Date.now() : null)
    this.applyBan(userId, banned)
    await this.#notifyBan(userId)
  }

  /** Re-reads a user's ban (a change made on another node). */
  async refreshBan (userId: string): Promise<void> {
    this.applyBan(userId, (await this.directory.getUser(userId))?.bannedAt != null)
  }

  private applyBan (userId: string, banned: boolean): void {
    const was = this.#banned.has(userId)
    if (banned) this.#banned.add(userId)
    else this.#banned.delete(userId)
    if (banned && !was) for (const id of this.activeIds(userId)) this.emit('banned', this.#byId.get(id)!)
  }

  /** An erased account: its devices (all revoked) leave the cache. */
  forgetUser (userId: string): void {
    for (const [id, d] of this.#byId) if (d.userId === userId) this.#byId.delete(id)
    this.#byUser.delete(userId)
  }

  /** Whether the user exists (every user has had a device). */
  hasUser (userId: string): boolean { return this.#byUser.has(userId) }

  /** Ids of a user's active devices. */
  activeIds (userId: string): ReadonlySet<string> { return this.#byUser.get(userId) ?? new Set() }

  async create (userId: string, name: string, opts: { linked?: boolean } = {}): Promise<{ device: Device, token: string }> {
    // The slot is taken before the first await: creations racing for the last slot cannot all pass the check.
    const creating = this.#creating.get(userId) ?? 0
    if (this.activeIds(userId).size + creating >= this.maxPerUser) {
      throw new DomainError('device_limit', `a user may have at most ${this.maxPerUser} active devices; revoke one first`, 409)
    }
    this.#creating.set(userId, creating + 1)
    // The slot is given back once the device counts among the active ones (or failed): counted once, never twice.
    let reserved = true
    const release = (): void => {
      if (!reserved) return
      reserved = false
      const n = (this.#creating.get(userId) ?? 1) - 1
      if (n <= 0) this.#creating.delete(userId)
      else this.#creating.set(userId, n)
    }
    try {
      const id = newDeviceId()
      const token = newToken(id)
      const scram = await scramCredentials(token, scramSalt(userId), SCRAM_ITERATIONS)
      const device: Device = { id, userId, name, tokenHash: hashSecret(token), scram, createdAt: Date.now(), revokedAt: null, ...(opts.linked === true ? { linked: true } : {}) }
      // The store has the last word: another node may have linked a device meanwhile.
      if (!await this.directory.addDeviceWithin(device, this.maxPerUser)) {
        throw new DomainError('device_limit', `a user may have at most ${this.maxPerUser} active devices; revoke one first`, 409)
      }
      this.cache(device)
      release()
      for (const fn of this.#onCreate) await fn(device)
      this.emit('created', device)
      await this.#notify(id)
      return { device, token }
    } finally {
      release()
    }
  }

  list (userId: string): Device[] {
    return [...this.activeIds(userId)].map((id) => this.#byId.get(id) as Device).sort((a, b) => a.createdAt - b.createdAt)
  }

  /**
   * Revokes one of the user's own devices; its connections are closed by the
   * broker's listener. `by`, when given, is the device asking: a linked device
   * may revoke only itself, the primary (the one a phone verification made)
   * any of the user's devices.
   */
  async revoke (userId: string, deviceId: string, by?: Device): Promise<void> {
    const d = this.#byId.get(deviceId)
    if (!d || d.userId !== userId || d.revokedAt !== null) throw notFound('device')
    if (by !== undefined && by.linked === true && by.id !== deviceId) {
      throw new DomainError('forbidden', 'a linked device may revoke only itself; revoke other devices from the phone the account was verified on', 403)
    }
    const at = Date.now()
    await this.directory.revokeDevice(deviceId, at)
    const revoked = { ...d, revokedAt: at }
    this.cache(revoked)
    this.emit('revoked', revoked)
    await this.#notify(deviceId)
  }
}
