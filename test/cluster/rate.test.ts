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

      const leaseCalls = async (): Promise<number> => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await conn.info('commandstats'))?.[1] ?? 0)

      test('a busy device\'s tokens are leased in growing blocks: one Redis call per block, not per publish', async () => {
        const impl = make()
        // Blocks of up to 64: 1, 2, 4, … per node.
        const here = impl.buckets(400, 400)
        const there = impl.elsewhere!.buckets(400, 400)
        const before = await leaseCalls()
        let granted = 0
        for (let i = 0; i < 300; i++) if (await (i % 2 === 0 ? here : there).take('busy')) granted++
        const calls = await leaseCalls() - before
        assert.equal(granted, 300, 'within the burst, every publish is granted')
        assert.ok(calls <= 20, `${calls} lease calls for 300 publishes on two nodes`)
        // A device that publishes now and then takes one token at a time: nothing is held back from the other node.
        const slow = name()
        const a = new RedisBuckets(conn, slow, 400, 400)
        assert.equal(await a.take('calm'), true)
        assert.equal(await leaseCalls() - before - calls, 1)
      })

      test('publishes made while a lease is in flight wait for it and share its block (an outage does not drain the bucket)', async () => {
        const key = name()
        const b = new RedisBuckets(conn, key, 400, 400)
        // Warmed: blocks of 1, 2, 4, 8 taken and spent.
        for (let i = 0; i < 15; i++) assert.equal(await b.take('dev'), true)
        const before = await leaseCalls()
        // 40 publishes in one turn, with nothing held: one lease (16), then one more for the rest.
        const got = await Promise.all(Array.from({ length: 40 }, () => b.take('dev')))
        assert.equal(got.every(Boolean), true)
        const calls = await leaseCalls() - before
        assert.ok(calls <= 3, `${calls} leases for 40 concurrent publishes`)
        const left = Number(await conn.hget(`mqchat:rate:${key}:dev`, 'tokens'))
        // Taken from Redis: the 55 spent and at most one block's remainder (under 64).
        assert.ok(left > 400 - 55 - 64, `${left} tokens left in Redis`)
      })

      test('leased blocks never let two nodes together grant more than the rate and burst', async () => {
        const impl = make()
        // Blocks of up to 10.
        const here = impl.buckets(40, 40)
        const there = impl.elsewhere!.buckets(40, 40)
        const t0 = Date.now()
        let granted = 0
        for (let i = 0; i < 200; i++) if (await (i % 3 === 0 ? here : there).take('greedy')) granted++
        const elapsed = (Date.now() - t0) / 1000
        assert.ok(granted <= 40 + Math.ceil(elapsed * 40), `granted ${granted} in ${elapsed} s`)
        // Unspent tokens stay with the node that leased them: at most a block (10) each, so at least 40 - 2 × 9 were spent.
        assert.ok(granted >= 22, `granted ${granted}`)
      })
    }
  })
}
