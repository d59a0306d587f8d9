// The rate-limit shapes behave the same in memory (local profile) and in Redis
// (cluster profile): one suite, both implementations, a real Redis server.
// Time is real here (Redis uses its own clock), so bounds allow for the time
// the calls take instead of assuming it is zero.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { TokenBuckets, WindowCounter, type Buckets, type Counter } from '../../lib/rate.js'
import { RedisBuckets, RedisCounter } from '../../cluster/rate.js'
import { RedisServer } from '../helpers/services.js'

const server = new RedisServer()
let conn: Redis
let other: Redis
before(async () => {
  await server.start()
  conn = new Redis(server.url)
  other = new Redis(server.url)
})
after(async () => {
  conn?.disconnect()
  other?.disconnect()
  await server.destroy()
})

interface Impl {
  buckets (rate: number, burst: number): Buckets
  counter (limit: number, windowMs: number): Counter
  /** A second process's view of the same limits (Redis: another connection), or undefined in memory. */
  elsewhere?: { buckets (rate: number, burst: number): Buckets, counter (limit: number, windowMs: number): Counter }
}

let n = 0
const name = (): string => `t${++n}`

const impls: Record<string, () => Impl> = {
  memory: () => ({
    buckets: (rate, burst) => new TokenBuckets(rate, burst),
    counter: (limit, windowMs) => new WindowCounter(limit, windowMs)
  }),
  redis: () => {
    const b = name()
    const c = name()
    return {
      buckets: (rate, burst) => new RedisBuckets(conn, b, rate, burst),
      counter: (limit, windowMs) => new RedisCounter(conn, c, limit, windowMs),
      elsewhere: {
        buckets: (rate, burst) => new RedisBuckets(other, b, rate, burst),
        counter: (limit, windowMs) => new RedisCounter(other, c, limit, windowMs)
      }
    }
  }
}

for (const [label, make] of Object.entries(impls)) {
  describe(`rate limits: ${label}`, () => {
    test('a bucket grants its burst, then about `rate` per second; keys are independent', async () => {
      const impl = make()
      const b = impl.buckets(1, 5)
      const t0 = Date.now()
      const got: boolean[] = []
      for (let i = 0; i < 8; i++) got.push(await b.take('dev-a'))
      const elapsed = (Date.now() - t0) / 1000
      const granted = got.filter(Boolean).length
      assert.ok(granted >= 5 && granted <= 5 + Math.floor(elapsed * 1), `granted ${granted} of 8 in ${elapsed}s`)
      assert.equal(got.slice(0, 5).every(Boolean), true, 'the burst first')
      assert.equal(await b.take('dev-b'), true, 'another key has its own bucket')
      // Refill: after 1.2 s at 1/s at least one token is back.
      await new Promise((r) => setTimeout(r, 1200))
      assert.equal(await b.take('dev-a'), true)
    })

    test('a counter allows `limit` hits per window, then refuses until the window ends', async () => {
      const impl = make()
      const c = impl.counter(3, 1500)
      const got: boolean[] = []
      for (let i = 0; i < 5; i++) got.push(await c.hit('+15550000001'))
      assert.deepEqual(got, [true, true, true, false, false])
      assert.equal(await c.hit('+15550000002'), true, 'another key counts apart')
      await new Promise((r) => setTimeout(r, 1600))
      assert.equal(await c.hit('+15550000001'), true, 'a new window')
    })

    if (label === 'redis') {
      test('two nodes share one budget per key', async () => {
        const impl = make()
        const here = impl.buckets(1, 4)
        const there = impl.elsewhere!.buckets(1, 4)
        const t0 = Date.now()
        const got = [await here.take('dev'), await there.take('dev'), await here.take('dev'), await there.take('dev'), await there.take('dev'), await here.take('dev')]
        const elapsed = (Date.now() - t0) / 1000
        const granted = got.filter(Boolean).length
        assert.ok(granted >= 4 && granted <= 4 + Math.floor(elapsed), `granted ${granted} of 6 across two connections`)
        const c1 = impl.counter(2, 60_000)
        const c2 = impl.elsewhere!.counter(2, 60_000)
        assert.deepEqual([await c1.hit('ip'), await c2.hit('ip'), await c1.hit('ip'), await c2.hit('ip')], [true, true, false, false])
      })
    }
  })
}
