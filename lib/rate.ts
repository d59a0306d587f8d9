// Rate limiting. Two shapes: a token bucket per key (the publish limit) and a
// fixed-window counter per key (registration attempts). In memory here (the
// local profile); the cluster profile counts in Redis (cluster/rate.ts), so a
// device or a phone number has one budget across every node. The in-memory
// forms answer synchronously, the Redis forms with a promise.

export type Verdict = boolean | Promise<boolean>

/** `take` is false when the key has no token left. */
export interface Buckets { readonly rate: number, readonly burst: number, take (key: string): Verdict }
/** `hit` counts one event (or `n`); false once the key is over its limit in the current window. */
export interface Counter { hit (key: string, n?: number): Verdict }
/** Builds the counters a service needs: `name` keeps different counters apart. */
export type CounterFactory = (name: string, limit: number, windowMs: number) => Counter

/** Token bucket per key: `rate` tokens per second, at most `burst` saved up. */
export class TokenBuckets implements Buckets {
  #buckets = new Map<string, { tokens: number, at: number }>()
  constructor (readonly rate: number, readonly burst: number, private readonly now: () => number = Date.now) {}

  take (key: string): boolean {
    const t = this.now()
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: t }
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rate)
    b.at = t
    const ok = b.tokens >= 1
    if (ok) b.tokens -= 1
    this.#buckets.set(key, b)
    return ok
  }

  forget (key: string): void { this.#buckets.delete(key) }
}

/** Counts events per key in fixed windows; `hit` is false once a key exceeds `limit` in its window. */
export class WindowCounter implements Counter {
  #counts = new Map<string, { n: number, until: number }>()
  constructor (private readonly limit: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  hit (key: string, n = 1): boolean {
    const t = this.now()
    if (this.#counts.size > 100_000) this.prune(t)
    let c = this.#counts.get(key)
    if (!c || c.until <= t) {
      c = { n: 0, until: t + this.windowMs }
      this.#counts.set(key, c)
    }
    c.n += n
    return c.n <= this.limit
  }

  private prune (t: number): void {
    for (const [k, c] of this.#counts) if (c.until <= t) this.#counts.delete(k)
  }
}

export const memoryCounters: CounterFactory = (_name, limit, windowMs) => new WindowCounter(limit, windowMs)

/** The per-device publish limit, shared by MQTT publishes and HTTP sends. */
export class PublishLimiter {
  readonly message: string
  readonly burst: number
  constructor (private readonly buckets: Buckets) {
    this.burst = buckets.burst
    this.message = `more than ${buckets.rate} messages per second (burst ${buckets.burst}); slow down`
  }

  take (deviceId: string): Verdict { return this.buckets.take(deviceId) }
}
