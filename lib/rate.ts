// In-memory rate limiting for the local profile (the cluster profile moves the
// counters to Redis behind the same shapes).

/** Token bucket per key: `rate` tokens per second, at most `burst` saved up. */
export class TokenBuckets {
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
export class WindowCounter {
  #counts = new Map<string, { n: number, until: number }>()
  constructor (private readonly limit: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  hit (key: string): boolean {
    const t = this.now()
    if (this.#counts.size > 100_000) this.prune(t)
    let c = this.#counts.get(key)
    if (!c || c.until <= t) {
      c = { n: 0, until: t + this.windowMs }
      this.#counts.set(key, c)
    }
    c.n++
    return c.n <= this.limit
  }

  private prune (t: number): void {
    for (const [k, c] of this.#counts) if (c.until <= t) this.#counts.delete(k)
  }
}

/** The per-device publish limit, shared by MQTT publishes and HTTP sends. */
export class PublishLimiter extends TokenBuckets {
  readonly message: string
  constructor (ratePerSecond: number, burst: number) {
    super(ratePerSecond, burst)
    this.message = `more than ${ratePerSecond} messages per second (burst ${burst}); slow down`
  }
}
