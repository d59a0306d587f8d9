// Push targets: where a device is woken when it is away (FCM, APNs, Web
// Push, UnifiedPush). A device registers, lists and removes its own; a
// revoked device's are removed. What a target must look like is checked
// here, before anything is stored; docs/protocol.md ("Push") is the contract.
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { DomainError } from './errors.js'
import type { Device, DirectoryStore, PushTarget, PushTargetType } from '../store/types.js'

export const PUSH_TARGET_TYPES: readonly PushTargetType[] = ['fcm', 'apns', 'webpush', 'unifiedpush']

/** A registration as the API takes it (docs/protocol.md, "Push"). */
export interface PushTargetInput {
  type: PushTargetType
  /** fcm: the registration token; apns: the device token (hex). */
  token?: string
  /** apns: the app's bundle id, and its environment. */
  topic?: string
  environment?: 'production' | 'sandbox'
  /** webpush, unifiedpush: the push service's URL for this subscription, and the keys to encrypt for it. */
  endpoint?: string
  keys?: { p256dh: string, auth: string }
}

export interface PushTargetOptions {
  /** Targets one device may hold. */
  maxPerDevice: number
  /** DEVELOPMENT ONLY: endpoints over plain http, and on loopback or private addresses. */
  allowInsecureEndpoints: boolean
  /** Which providers this server is configured for: a target of another type is refused. */
  enabled: ReadonlySet<PushTargetType>
}

const FCM_TOKEN = /^[A-Za-z0-9_:.-]{16,4096}$/
const APNS_TOKEN = /^[0-9a-fA-F]{64,200}$/
const BUNDLE_ID = /^[A-Za-z0-9.-]{1,255}$/
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/
const MAX_ENDPOINT_LENGTH = 2048

/** A target's id: it stands for its type and address, so the same address registered again is the same target. */
export function pushTargetId (type: PushTargetType, address: string): string {
  return 'pt_' + createHash('sha256').update(`${type}\n${address}`).digest('base64url').slice(0, 22)
}

const bad = (message: string): DomainError => new DomainError('bad_request', message, 400)

/**
 * An address on a network the server's operator, not the device, owns:
 * loopback, private (RFC 1918, unique local), link-local (cloud metadata),
 * carrier-grade NAT, unspecified. A device may not point the server there.
 */
export function isPrivateAddress (ip: string): boolean {
  const v = isIP(ip)
  if (v === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number]
    return a === 0 || a === 10 || a === 127 || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || a >= 224
  }
  if (v === 6) {
    const x = ip.toLowerCase()
    if (x === '::' || x === '::1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(x)
    if (mapped) return isPrivateAddress(mapped[1]!)
    return /^f[cd]/.test(x) || /^fe[89ab]/.test(x) || x.startsWith('ff')
  }
  return false
}

function endpointOf (raw: unknown, allowInsecure: boolean): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_ENDPOINT_LENGTH) throw bad(`endpoint must be a URL of at most ${MAX_ENDPOINT_LENGTH} characters`)
  let url: URL
  try { url = new URL(raw) } catch { throw bad('endpoint must be a URL') }
  if (url.protocol !== 'https:' && !(allowInsecure && url.protocol === 'http:')) throw bad('endpoint must be an https URL')
  if (url.username !== '' || url.password !== '') throw bad('endpoint must not carry credentials')
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (!allowInsecure && (host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host))) throw bad('endpoint must be on a public address')
  return url.href
}

function keysOf (raw: unknown): { p256dh: string, auth: string } {
  const k = raw as { p256dh?: unknown, auth?: unknown } | null
  if (k === null || typeof k !== 'object' || typeof k.p256dh !== 'string' || typeof k.auth !== 'string' || !BASE64URL.test(k.p256dh) || !BASE64URL.test(k.auth)) {
    throw bad('keys must be {"p256dh", "auth"}, base64url')
  }
  // The subscription's P-256 public key (uncompressed point) and its 16-byte auth secret (RFC 8291).
  if (Buffer.from(k.p256dh, 'base64url').length !== 65) throw bad('keys.p256dh must be a P-256 public key (65 bytes, uncompressed)')
  if (Buffer.from(k.auth, 'base64url').length !== 16) throw bad('keys.auth must be 16 bytes')
  return { p256dh: k.p256dh, auth: k.auth }
}

/** The stored form of a registration; throws bad_request with what is wrong. */
export function validatePushTarget (device: Device, input: PushTargetInput, opts: PushTargetOptions, now: number): PushTarget {
  if (!PUSH_TARGET_TYPES.includes(input.type)) throw bad(`type must be one of ${PUSH_TARGET_TYPES.join(', ')}`)
  if (!opts.enabled.has(input.type)) throw new DomainError('push_unavailable', `this server is not configured for ${input.type} pushes`, 400)
  const base = { deviceId: device.id, userId: device.userId, createdAt: now }
  const only = (allowed: string[]): void => {
    const extra = Object.keys(input).filter((k) => k !== 'type' && !allowed.includes(k))
    if (extra.length > 0) throw bad(`${input.type} targets take ${allowed.join(', ')}; not ${extra.join(', ')}`)
  }
  switch (input.type) {
    case 'fcm': {
      only(['token'])
      if (typeof input.token !== 'string' || !FCM_TOKEN.test(input.token)) throw bad('token must be an FCM registration token')
      return { id: pushTargetId('fcm', input.token), type: 'fcm', address: input.token, ...base }
    }
    case 'apns': {
      only(['token', 'topic', 'environment'])
      if (typeof input.token !== 'string' || !APNS_TOKEN.test(input.token)) throw bad('token must be an APNs device token (hex)')
      if (typeof input.topic !== 'string' || !BUNDLE_ID.test(input.topic)) throw bad('topic must be the app\'s bundle id')
      const env = input.environment ?? 'production'
      if (env !== 'production' && env !== 'sandbox') throw bad('environment must be production or sandbox')
      const token = input.token.toLowerCase()
      return { id: pushTargetId('apns', token), type: 'apns', address: token, topic: input.topic, sandbox: env === 'sandbox', ...base }
    }
    case 'webpush':
    case 'unifiedpush': {
      only(['endpoint', 'keys'])
      const endpoint = endpointOf(input.endpoint, opts.allowInsecureEndpoints)
      // Web Push always encrypts (RFC 8291); a UnifiedPush distributor may not.
      const keys = input.type === 'webpush' || input.keys !== undefined ? keysOf(input.keys) : undefined
      return { id: pushTargetId(input.type, endpoint), type: input.type, address: endpoint, ...(keys ?? {}), ...base }
    }
  }
}

/**
 * The targets of every device, and in memory which devices have any, so a
 * message for a member without one costs no store read. In the cluster each
 * node's index follows the others' changes through the directory bus.
 */
export class PushTargets {
  #withTargets = new Set<string>()
  #notify: (deviceId: string) => Promise<void> = async () => {}

  constructor (private readonly directory: DirectoryStore, private readonly opts: PushTargetOptions) {}

  async init (): Promise<void> {
    this.#withTargets = new Set(await this.directory.pushTargetDevices())
  }

  /** Cluster: a change of a device's targets is announced to the other nodes through this. */
  notifyWith (notify: (deviceId: string) => Promise<void>): void { this.#notify = notify }

  /** Re-reads whether a device has targets (a change made on another node). */
  async refresh (deviceId: string): Promise<void> {
    if ((await this.directory.pushTargets(deviceId)).length > 0) this.#withTargets.add(deviceId)
    else this.#withTargets.delete(deviceId)
  }

  /** Whether `deviceId` has targets, from memory (no store read for the many devices without any). */
  mayHave (deviceId: string): boolean { return this.#withTargets.has(deviceId) }

  async add (device: Device, input: PushTargetInput): Promise<PushTarget> {
    const target = validatePushTarget(device, input, this.opts, Date.now())
    const mine = await this.directory.pushTargets(device.id)
    if (!mine.some((t) => t.id === target.id) && mine.length >= this.opts.maxPerDevice) {
      throw new DomainError('limit_reached', `a device holds at most ${this.opts.maxPerDevice} push targets; remove one first`, 409)
    }
    const stored = await this.directory.addPushTarget(target)
    this.#withTargets.add(device.id)
    await this.#notify(device.id)
    return stored
  }

  of (deviceId: string): Promise<PushTarget[]> { return this.directory.pushTargets(deviceId) }

  async remove (deviceId: string, id: string): Promise<boolean> {
    const removed = await this.directory.removePushTarget(deviceId, id)
    if (removed) {
      await this.refresh(deviceId)
      await this.#notify(deviceId)
    }
    return removed
  }

  /** A revoked device: every target goes. */
  async dropDevice (deviceId: string): Promise<void> {
    this.#withTargets.delete(deviceId)
    // Every node hears of the revocation itself and drops it from its index; the store is cleared once per node (idempotent).
    await this.directory.removePushTargets(deviceId)
  }
}
