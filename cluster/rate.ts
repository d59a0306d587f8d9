// Rate-limit counters in Redis, so a device (publish budget) or a phone number
// and a client address (registration attempts) have one budget across every
// node. Each check is one script call on one key (Redis Cluster safe); time
// is Redis' own clock, so nodes with skewed clocks agree.
//
// The publish budget is leased: a node takes a block of a device's tokens in
// one call and spends them locally, so a device that publishes steadily costs
// one call per block, not one per publish. Blocks start at one token and
// double while the device keeps using them up within a second, up to a
// quarter of the burst and of the per-second rate (at most 64). Tokens are
// taken from the one bucket in Redis before they are spent, so every node
// together never grants more than the rate and burst; a node's unspent
// tokens (the device moved to another node, or stopped) are simply not
// used, so a device may find its budget up to a block short, never long.
import type { Buckets, Counter, CounterFactory, Verdict } from '../lib/rate.js'
import { luaScript, type RedisConnection } from './redis.js'

// KEYS[1] bucket; ARGV rate (tokens/s), burst, tokens wanted. Returns the tokens taken: at most the wanted
// number and the whole tokens in the bucket, 0 when it has none.
const LEASE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return got
`

/** Tokens this node took for a key and has not spent, the block size it last took, and when; the lease in flight. */
interface Held { tokens: number, block: number, at: number, leasing?: Promise<void> }

// KEYS[1] counter; ARGV window ms, how many to count. Returns the count in the current window.
const HIT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`

export class RedisBuckets implements Buckets {
  readonly #lease: (...args: Array<string | number>) => Promise<unknown>
  readonly #held = new Map<string, Held>()
  /** The largest block taken at once. */
  readonly maxBlock: number
  /** How long unspent tokens are kept: by then the bucket in Redis would have refilled to its burst anyway. */
  readonly #keepMs: number

  constructor (redis: RedisConnection, private readonly name: string, readonly rate: number, readonly burst: number) {
    this.#lease = luaScript(redis, 'Lease', LEASE, 1)
    this.maxBlock = Math.max(1, Math.min(64, Math.floor(burst / 4), Math.ceil(rate / 4)))
    this.#keepMs = Math.max(1000, Math.ceil(burst / rate * 1000))
    setInterval(() => { this.#forgetIdle(Date.now()) }, this.#keepMs).unref()
  }

  take (key: string): Verdict {
    const h = this.#held.get(key)
    if (h !== undefined && h.tokens > 0) {
      h.tokens--
      return true
    }
    // One lease in flight per key: the publishes that come meanwhile wait for it and share its tokens
    // (leases taken side by side, as while Redis is away, would each take a block).
    if (h?.leasing !== undefined) return h.leasing.then(() => this.take(key))
    const now = Date.now()
    // Used up within a second: the next block is twice as large.
    const block = h !== undefined && now - h.at < 1000 ? Math.min(this.maxBlock, h.block * 2) : 1
    const cur = h ?? { tokens: 0, block, at: now }
    this.#held.set(key, cur)
    const leased = this.#lease(`mqchat:rate:${this.name}:${key}`, this.rate, this.burst, block).then((got) => Number(got))
    cur.leasing = leased.then(() => {}, () => {})
    return leased.then((n) => {
      cur.leasing = undefined
      cur.tokens += Math.max(0, n - 1)
      cur.block = block
      cur.at = now
      return n > 0
    }, (err: unknown) => {
      cur.leasing = undefined
      throw err
    })
  }

  /** Unspent tokens older than the refill period are dropped (their keys forgotten). */
  #forgetIdle (now: number): void {
    for (const [key, h] of this.#held) if (now - h.at > this.#keepMs && h.leasing === undefined) this.#held.delete(key)
  }
}

export class RedisCounter implements Counter {
  readonly #hit: (...args: Array<string | number>) => Promise<unknown>
  constructor (redis: RedisConnection, private readonly name: string, private readonly limit: number, private readonly windowMs: number) {
    this.#hit = luaScript(redis, 'Hit', HIT, 1)
  }

  async hit (key: string, n = 1): Promise<boolean> {
    return Number(await this.#hit(`mqchat:count:${this.name}:${key}`, this.windowMs, n)) <= this.limit
  }
}

export const redisCounters = (redis: RedisConnection): CounterFactory =>
  (name, limit, windowMs) => new RedisCounter(redis, name, limit, windowMs)
