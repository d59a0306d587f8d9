// Devices: creation (first device at registration, then linking), listing,
// revocation, and token checks. Devices are cached in memory so that MQTT
// authentication and fan-out never wait on the store.
import { EventEmitter } from 'node:events'
import type { Device, DirectoryStore } from '../store/types.js'
import { DomainError, notFound } from './errors.js'
import { deviceIdOfToken, hashSecret, newDeviceId, newToken, tokenMatches } from './ids.js'

export interface DeviceEvents {
  created: [Device]
  revoked: [Device]
}

export class DeviceService extends EventEmitter<DeviceEvents> {
  #byId = new Map<string, Device>()
  #byUser = new Map<string, Set<string>>()

  #notify: (deviceId: string) => Promise<void> = async () => {}

  constructor (private readonly directory: DirectoryStore, private readonly maxPerUser: number) {
    super()
  }

  /** Cluster: device changes are announced to the other nodes through this. */
  notifyWith (notify: (deviceId: string) => Promise<void>): void { this.#notify = notify }

  /** Re-reads one device from the store (a change made on another node), emitting created or revoked as it applies here. */
  async refresh (deviceId: string): Promise<void> {
    const d = await this.directory.getDevice(deviceId)
    if (!d) return
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
    if (!d || d.revokedAt !== null) return undefined
    return tokenMatches(token, d.tokenHash) ? d : undefined
  }

  get (deviceId: string): Device | undefined { return this.#byId.get(deviceId) }

  /** Ids of a user's active devices. */
  activeIds (userId: string): ReadonlySet<string> { return this.#byUser.get(userId) ?? new Set() }

  async create (userId: string, name: string): Promise<{ device: Device, token: string }> {
    if (this.activeIds(userId).size >= this.maxPerUser) {
      throw new DomainError('device_limit', `a user may have at most ${this.maxPerUser} active devices; revoke one first`, 409)
    }
    const id = newDeviceId()
    const token = newToken(id)
    const device: Device = { id, userId, name, tokenHash: hashSecret(token), createdAt: Date.now(), revokedAt: null }
    await this.directory.addDevice(device)
    this.cache(device)
    this.emit('created', device)
    await this.#notify(id)
    return { device, token }
  }

  list (userId: string): Device[] {
    return [...this.activeIds(userId)].map((id) => this.#byId.get(id) as Device).sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Revokes one of the user's own devices; its connections are closed by the broker's listener. */
  async revoke (userId: string, deviceId: string): Promise<void> {
    const d = this.#byId.get(deviceId)
    if (!d || d.userId !== userId || d.revokedAt !== null) throw notFound('device')
    const at = Date.now()
    await this.directory.revokeDevice(deviceId, at)
    const revoked = { ...d, revokedAt: at }
    this.cache(revoked)
    this.emit('revoked', revoked)
    await this.#notify(deviceId)
  }
}
