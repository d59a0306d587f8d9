// Rate-limit counters in Redis, so a device (publish budget) or a phone number
// and a client address (registration attempts) have one budget across every
// node. Each check is one script call on one key (Redis Cluster safe); time
// is Redis' own clock, so nodes with skewed clocks agree.
import type { Buckets, Counter, CounterFactory } from '../lib/rate.js'
import { luaScript, type RedisConnection } from './redis.js'

// KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns 1 when a token was taken.
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok
`

// KEYS[1] counter; ARGV window ms, how many to count. Returns the count in the current window.
const HIT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`

export class RedisBuckets implements Buckets {
  readonly #take: (...args: Array<string | number>) => Promise<unknown>
  constructor (redis: RedisConnection, private readonly name: string, readonly rate: number, readonly burst: number) {
    this.#take = luaScript(redis, 'Take', TAKE, 1)
  }

  async take (key: string): Promise<boolean> {
    return Number(await this.#take(`mqchat:rate:${this.name}:${key}`, this.rate, this.burst)) === 1
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
