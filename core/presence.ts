// Presence: a user is online while any of their devices is connected.
//
// Driven by the broker's connect and disconnect events (never by MQTT wills:
// a session takeover makes a will stale). Published as a retained QoS 0
// message on presence/<userId>, and only on transitions:
// - going offline waits a short grace, so a takeover or a quick reconnect is
//   not an offline at all;
// - publications for one user are at least `coalesceMs` apart; a change inside
//   that window is published once at its end, if the state still differs.
import type { SettingsService } from './settings.js'

export type PresenceState = 'online' | 'offline'

export interface PresenceRecord { state: PresenceState, lastSeen: number | null }

/** Publishes a retained presence payload for a user. */
export type PresencePublisher = (userId: string, payload: string) => void

/**
 * What the broker and the API need of presence. PresenceService counts in
 * this process (the local profile); the cluster counts across nodes in Redis
 * (cluster/presence.ts).
 */
export interface Presence {
  connected (userId: string): void
  disconnected (userId: string): void
  get (userId: string): PresenceRecord | Promise<PresenceRecord>
  stop (): void | Promise<void>
}

/** The retained payload for a user's published state; last seen as their privacy setting allows. */
export function presencePayload (settings: SettingsService, userId: string, state: PresenceState, lastSeen: number | null, now: number): string {
  const showLastSeen = settings.of(userId).lastSeen !== 'nobody'
  return JSON.stringify({ type: 'presence', user: userId, state, last_seen: state === 'offline' && showLastSeen ? lastSeen : undefined, ts: now })
}

/** Going offline waits this long, so a takeover or a quick reconnect is not an offline at all. */
export const OFFLINE_GRACE_MS = 500

interface Tracked {
  connections: number
  published?: PresenceState
  publishedAt: number
  lastSeen: number | null
  timer?: NodeJS.Timeout
}

export class PresenceService implements Presence {
  #users = new Map<string, Tracked>()

  constructor (
    private readonly settings: SettingsService,
    private readonly publish: PresencePublisher,
    private readonly coalesceMs: number
  ) {}

  /** At start-up nobody is connected: whoever was last published online (a crash) is offline now. */
  restore (records: Iterable<[string, PresenceRecord]>, now = Date.now()): void {
    for (const [userId, r] of records) {
      const t: Tracked = { connections: 0, published: r.state, publishedAt: 0, lastSeen: r.lastSeen }
      this.#users.set(userId, t)
      if (r.state === 'online') {
        t.lastSeen = now
        this.emit(userId, t, 'offline', now)
      }
    }
  }

  connected (userId: string): void {
    const t = this.track(userId)
    t.connections++
    if (t.connections === 1) this.settle(userId, t)
  }

  disconnected (userId: string): void {
    const t = this.track(userId)
    t.connections = Math.max(0, t.connections - 1)
    if (t.connections === 0) {
      t.lastSeen = Date.now()
      this.schedule(userId, t, OFFLINE_GRACE_MS)
    }
  }

  get (userId: string): PresenceRecord {
    const t = this.#users.get(userId)
    return { state: t && t.connections > 0 ? 'online' : 'offline', lastSeen: t?.lastSeen ?? null }
  }

  stop (): void {
    for (const t of this.#users.values()) if (t.timer) clearTimeout(t.timer)
  }

  private track (userId: string): Tracked {
    let t = this.#users.get(userId)
    if (!t) this.#users.set(userId, t = { connections: 0, publishedAt: 0, lastSeen: null })
    return t
  }

  private schedule (userId: string, t: Tracked, delayMs: number): void {
    if (t.timer) clearTimeout(t.timer)
    t.timer = setTimeout(() => { t.timer = undefined; this.settle(userId, t) }, delayMs)
    t.timer.unref()
  }

  /** Publishes the current state if it differs from the published one, respecting the coalescing window. */
  private settle (userId: string, t: Tracked): void {
    const state: PresenceState = t.connections > 0 ? 'online' : 'offline'
    if (state === t.published) {
      if (t.timer) { clearTimeout(t.timer); t.timer = undefined }
      return
    }
    const now = Date.now()
    const wait = t.publishedAt + this.coalesceMs - now
    if (wait > 0) return this.schedule(userId, t, wait)
    this.emit(userId, t, state, now)
  }

  private emit (userId: string, t: Tracked, state: PresenceState, now: number): void {
    t.published = state
    t.publishedAt = now
    this.publish(userId, presencePayload(this.settings, userId, state, t.lastSeen, now))
  }
}
