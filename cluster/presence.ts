// Presence across the cluster: a user is online while any of their devices is
// connected to any broker. The same rules as core/presence.ts (offline after
// a grace, publications of one user coalesced, retained on presence/<user>),
// with the counts and the published state in Redis:
//
//   mqchat:presence:<user>        hash: n:<node> = connections on that node,
//                                 state/at = last published state and when,
//                                 seen = last seen (the last disconnect)
//   mqchat:presence-node:<node>   set: users with connections on that node
//   mqchat:presence-nodes         zset: broker node -> heartbeat (ms)
//
// Whether to publish is decided by one script over the user's hash, so two
// nodes settling the same user publish once. A node that stops heartbeating
// (a crash) is reaped by any other broker: its counts are removed and its
// users settled; a node restarting under the same id first clears what its
// earlier run left; a node that was reaped while alive (stalled) writes its
// counts back when its heartbeat resumes.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { OFFLINE_GRACE_MS, presencePayload, type Presence, type PresenceRecord, type PresencePublisher, type PresenceState } from '../core/presence.js'
import type { SettingsService } from '../core/settings.js'
import { luaScript, type RedisConnection } from './redis.js'

const userKey = (userId: string): string => `mqchat:presence:${userId}`
const nodeKey = (nodeId: string): string => `mqchat:presence-node:${nodeId}`
/** Broker nodes and their last heartbeat (ms, Redis time): also read by cluster/device-sessions.ts. */
export const NODES = 'mqchat:presence-nodes'

const HEARTBEAT_MS = 1000
/** A broker silent this long is dead: its connections no longer count. */
export const NODE_TIMEOUT_MS = 5000

// Sum of the n:<node> fields of hash KEYS[1], as Lua.
const TOTAL = `
local function total(key)
  local all = redis.call('HGETALL', key)
  local sum = 0
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'n:' then sum = sum + tonumber(all[i + 1]) end
  end
  return sum
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// KEYS[1] user hash; ARGV node, delta (+1 / -1 / 'clear' / 'set' with ARGV[3]).
// Returns {this node's count, total}. When the total reaches 0, last seen is now.
const COUNT = TOTAL + `
local field = 'n:' .. ARGV[1]
local n = 0
if ARGV[2] == 'clear' then
  redis.call('HDEL', KEYS[1], field)
elseif ARGV[2] == 'set' then
  n = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], field, n)
else
  n = redis.call('HINCRBY', KEYS[1], field, tonumber(ARGV[2]))
  if n <= 0 then redis.call('HDEL', KEYS[1], field); n = 0 end
end
local sum = total(KEYS[1])
if sum == 0 and ARGV[2] ~= '1' and ARGV[2] ~= 'set' then redis.call('HSET', KEYS[1], 'seen', tostring(now())) end
return {n, sum}
`

// KEYS[1] user hash; ARGV coalesce ms. Returns {verdict, state, seen, at}:
// verdict 0 = nothing to publish, >0 = ask again in that many ms, -1 = publish (recorded as published).
const SETTLE = TOTAL + `
local state = 'offline'
if total(KEYS[1]) > 0 then state = 'online' end
local published = redis.call('HGET', KEYS[1], 'state')
local seen = redis.call('HGET', KEYS[1], 'seen') or ''
if state == published then return {0, state, seen, 0} end
local t = now()
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local wait = at + tonumber(ARGV[1]) - t
if wait > 0 then return {wait, state, seen, 0} end
redis.call('HSET', KEYS[1], 'state', state, 'at', tostring(t))
return {-1, state, seen, t}
`

export class ClusterPresence implements Presence {
  #timers = new Map<string, NodeJS.Timeout>()
  /** This node's connections per user: the truth the Redis counts are rebuilt from. */
  #local = new Map<string, number>()
  #started = false
  #heartbeat: NodeJS.Timeout | undefined
  #stopped = false
  /** Count changes of this node, in order (one Redis connection keeps them in order too). */
  #pending: Promise<unknown> = Promise.resolve()
  readonly #count: (...args: Array<string | number>) => Promise<unknown>
  readonly #settle: (...args: Array<string | number>) => Promise<unknown>

  constructor (
    private readonly redis: RedisConnection,
    private readonly nodeId: string,
    private readonly settings: SettingsService,
    private readonly publish: PresencePublisher,
    private readonly coalesceMs: number,
    private readonly log: Logger
  ) {
    this.#count = luaScript(redis, 'PresenceCount', COUNT, 1)
    this.#settle = luaScript(redis, 'PresenceSettle', SETTLE, 1)
  }

  /**
   * For a broker node, before it accepts connections: clears the counts an
   * earlier run under this node id left (a crash). Returns their users, for start().
   */
  async recover (): Promise<string[]> {
    return this.reap(this.nodeId, false)
  }

  /** Once the broker can publish: settles the recovered users, then heartbeats and reaps dead nodes. */
  async start (recovered: string[]): Promise<void> {
    for (const userId of recovered) await this.settleNow(userId)
    await this.beat()
    this.#started = true
    this.#heartbeat = setInterval(() => {
      this.beat().then((now) => this.reapDead(now)).catch((err: unknown) => this.log.warn({ err }, 'presence heartbeat failed'))
    }, HEARTBEAT_MS)
    this.#heartbeat.unref()
  }

  connected (userId: string): void {
    this.#local.set(userId, (this.#local.get(userId) ?? 0) + 1)
    this.count(userId, '1', (sum) => { if (sum === 1) this.settle(userId) })
  }

  disconnected (userId: string): void {
    const n = (this.#local.get(userId) ?? 0) - 1
    if (n > 0) this.#local.set(userId, n)
    else this.#local.delete(userId)
    this.count(userId, '-1', (sum) => { if (sum === 0) this.schedule(userId, OFFLINE_GRACE_MS) })
  }

  async get (userId: string): Promise<PresenceRecord> {
    const h = await this.redis.hgetall(userKey(userId))
    let sum = 0
    for (const [k, v] of Object.entries(h)) if (k.startsWith('n:')) sum += Number(v)
    return { state: sum > 0 ? 'online' : 'offline', lastSeen: h.seen ? Number(h.seen) : null }
  }

  /**
   * After this node's connections are closed (and before its broker stops
   * publishing): users whose last connection was here are settled once the
   * grace is over; those who reconnected elsewhere by then stay online.
   */
  async stop (): Promise<void> {
    clearInterval(this.#heartbeat)
    await this.#pending
    this.#stopped = true
    const waiting = [...this.#timers.keys()]
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    if (waiting.length > 0) await sleep(OFFLINE_GRACE_MS)
    await Promise.all(waiting.map((u) => this.settleNow(u).catch(() => {})))
    // Whatever this node still counts (a disconnect not yet seen) would otherwise outlive it.
    await this.reap(this.nodeId, true).catch(() => {})
    await this.redis.zrem(NODES, this.nodeId).catch(() => {})
  }

  private count (userId: string, delta: '1' | '-1', then: (sum: number) => void): void {
    const step = this.#pending.then(async () => {
      const [n, sum] = await this.#count(userKey(userId), this.nodeId, delta) as [number, number]
      if (delta === '1') await this.redis.sadd(nodeKey(this.nodeId), userId)
      else if (n === 0) await this.redis.srem(nodeKey(this.nodeId), userId)
      then(sum)
    }).catch((err: unknown) => this.log.warn({ err, userId }, 'presence count failed'))
    this.#pending = step
  }

  private schedule (userId: string, delayMs: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timers.get(userId))
    const t = setTimeout(() => { this.#timers.delete(userId); this.settle(userId) }, delayMs)
    t.unref()
    this.#timers.set(userId, t)
  }

  private settle (userId: string): void {
    this.settleNow(userId).catch((err: unknown) => this.log.warn({ err, userId }, 'presence settle failed'))
  }

  /** Publishes the user's state if it differs from the published one (once in the cluster), respecting the coalescing window. */
  private async settleNow (userId: string): Promise<void> {
    const [verdict, state, seen, at] = await this.#settle(userKey(userId), this.coalesceMs) as [number, PresenceState, string, number]
    if (verdict > 0) return this.schedule(userId, verdict)
    if (verdict === -1) this.publish(userId, presencePayload(this.settings, userId, state, seen ? Number(seen) : null, at))
  }

  /** Records this node as alive; returns Redis' time (ms). */
  private async beat (): Promise<number> {
    const [sec, micro] = await this.redis.time() as [string | number, string | number]
    const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000)
    const added = await this.redis.zadd(NODES, now, this.nodeId)
    if (Number(added) === 1 && this.#started) await this.restore()
    return now
  }

  /** This node was reaped while alive (it stalled past the timeout): its connections count again. */
  private async restore (): Promise<void> {
    this.log.warn({ users: this.#local.size }, 'this node was presumed dead by the others: restoring its presence counts')
    await this.#pending
    for (const [userId, n] of this.#local) {
      await this.#count(userKey(userId), this.nodeId, 'set', n)
      await this.redis.sadd(nodeKey(this.nodeId), userId)
      await this.settleNow(userId)
    }
  }

  private async reapDead (now: number): Promise<void> {
    const dead = await this.redis.zrangebyscore(NODES, '-inf', now - NODE_TIMEOUT_MS)
    for (const node of dead) {
      if (node === this.nodeId) continue
      this.log.warn({ node }, 'broker node stopped heartbeating: its connections no longer count for presence')
      // Removed first: a stalled node that resumes sees it was reaped (restore()).
      await this.redis.zrem(NODES, node)
      await this.reap(node, true)
    }
  }

  /** Removes a node's connection counts (settling its users now, or returning them). */
  private async reap (node: string, settle: boolean): Promise<string[]> {
    const users = await this.redis.smembers(nodeKey(node))
    for (const userId of users) {
      const [, sum] = await this.#count(userKey(userId), node, 'clear') as [number, number]
      await this.redis.srem(nodeKey(node), userId)
      if (settle && sum === 0) await this.settleNow(userId)
    }
    return users
  }
}
