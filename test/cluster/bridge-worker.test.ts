// The bridge workers on a real Redis: every appended entry is handled, in
// stream order, by one worker at a time per partition, including entries
// whose read reply was lost and partitions that change hands while their
// worker is busy.
import { after, afterEach, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { BridgeWorker, type EntryHandler } from '../../cluster/bridge-worker.js'
import { ChatStream, GROUP, partitionOf, streamKey, type StreamEntry } from '../../cluster/chat-stream.js'
import { RedisServer } from '../helpers/services.js'
import { waitFor } from '../helpers/server.js'

const server = new RedisServer()
const conns: Redis[] = []
const workers: BridgeWorker[] = []
const log = pino({ level: 'silent' })
// Short periods so a sweep or a lease change happens within the test's bounds.
const opts = { partitions: 4, leaseMs: 800, beatMs: 200 }

before(async () => { await server.start() })
after(async () => {
  await Promise.all(workers.map((w) => w.stop().catch(() => {})))
  for (const c of conns) c.disconnect()
  await server.destroy()
})

function conn (): Redis {
  const c = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 })
  c.on('error', () => {})
  conns.push(c)
  return c
}

/** A handler that does all its work before the entry's place is taken (the next entry of its chat waits for it). */
type Whole = (e: StreamEntry, redelivered: boolean) => Promise<void>
const whole = (fn: Whole): EntryHandler => async (e, r) => { await fn(e, r); return { done: Promise.resolve() } }

async function worker (nodeId: string, handle: EntryHandler | Whole, pipelined = false): Promise<BridgeWorker> {
  const w = new BridgeWorker(conn(), conn(), nodeId, pipelined ? handle as EntryHandler : whole(handle as Whole), log, opts)
  workers.push(w)
  await w.start()
  return w
}

// Each test starts from an empty Redis with no worker running, whatever the last one left.
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop().catch(() => {})))
  await conns[0]?.flushall()
})

/** A chat id of the given partition (chats hash to partitions). */
function chatIn (partition: number, tag: string): string {
  for (let i = 0; ; i++) if (partitionOf(`${tag}${i}`, opts.partitions) === partition) return `${tag}${i}`
}

const seen = (log: string[], n: number): () => boolean => () => log.length >= n

test('every appended entry is handled once, in stream order, then acknowledged and deleted', async () => {
  const handled: string[] = []
  await worker('w1', async (e) => { handled.push(e.payload.toString()) })
  const stream = new ChatStream(conn(), opts.partitions)
  const chat = chatIn(1, 'a')
  for (let i = 0; i < 50; i++) await stream.append(chat, 'dev1', Buffer.from(String(i)))
  await waitFor('50 entries handled', seen(handled, 50), 10_000)
  assert.deepEqual(handled, Array.from({ length: 50 }, (_, i) => String(i)))
  await waitFor('the stream to be emptied', async () => await conns[0].xlen(streamKey(1)) === 0, 5000)
})

test('the chats of a batch are handled concurrently, each in order: a slow chat does not hold the others of its partition', async () => {
  const handled: string[] = []
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const stream = new ChatStream(conn(), opts.partitions)
  const slow = chatIn(1, 'slow')
  const fast = chatIn(1, 'fast')
  for (const [c, i] of [[slow, 0], [fast, 0], [fast, 1], [fast, 2], [slow, 1]] as const) await stream.append(c, 'dev1', Buffer.from(`${c}-${i}`))
  await worker('w1', async (e) => {
    // The slow chat's first entry waits until the other chat's entries, after it in the stream, are handled.
    if (e.payload.toString() === `${slow}-0`) await gate
    handled.push(e.payload.toString())
    if (e.payload.toString() === `${fast}-2`) release()
  })
  await waitFor('all 5 entries handled', seen(handled, 5), 10_000)
  assert.deepEqual(handled, [`${fast}-0`, `${fast}-1`, `${fast}-2`, `${slow}-0`, `${slow}-1`])
  await waitFor('the batch acknowledged and deleted', async () => await conns[0].xlen(streamKey(1)) === 0, 5000)
})

test('a chat\'s entries are given without waiting for the one before to be done, and acknowledged once all are done', async () => {
  const given: string[] = []
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const stream = new ChatStream(conn(), opts.partitions)
  const chat = chatIn(3, 'pipe')
  for (let i = 0; i < 5; i++) await stream.append(chat, 'dev1', Buffer.from(String(i)))
  await worker('w1', async (e: StreamEntry) => {
    given.push(e.payload.toString())
    return { done: gate }
  }, true)
  await waitFor('the five entries given', seen(given, 5), 10_000)
  assert.deepEqual(given, ['0', '1', '2', '3', '4'], 'in stream order, while the first is not done')
  assert.equal(await conns[0].xlen(streamKey(3)), 5, 'nothing acknowledged before it is done')
  release()
  await waitFor('the batch acknowledged and deleted', async () => await conns[0].xlen(streamKey(3)) === 0, 5000)
})

test('a failing entry stops its chat; the other chats of the batch are acknowledged, and the failed one is retried in order', async () => {
  const handled: string[] = []
  let failures = 0
  const stream = new ChatStream(conn(), opts.partitions)
  const bad = chatIn(2, 'bad')
  const good = chatIn(2, 'good')
  for (const [c, i] of [[bad, 0], [good, 0], [bad, 1], [good, 1], [bad, 2]] as const) await stream.append(c, 'dev1', Buffer.from(`${c}-${i}`))
  await worker('w1', async (e) => {
    if (e.payload.toString() === `${bad}-1` && failures++ === 0) throw new Error('store unavailable')
    handled.push(e.payload.toString())
  })
  await waitFor('every entry handled', () => handled.filter((h) => h.startsWith(bad)).length >= 3 && handled.filter((h) => h.startsWith(good)).length >= 2, 3 * opts.leaseMs + 10_000)
  assert.equal(failures, 2, 'failed once, then retried')
  assert.deepEqual(handled.filter((h) => h.startsWith(`${bad}-`)), [0, 1, 2].map((i) => `${bad}-${i}`), 'the failed chat, in order, nothing handled twice')
  assert.deepEqual(handled.filter((h) => h.startsWith(`${good}-`)), [0, 1].map((i) => `${good}-${i}`), 'the other chat, once each')
  await waitFor('nothing pending', async () => (await conns[0].xpending(streamKey(2), GROUP) as [number])[0] === 0, 5000)
})

test('entries read for a worker whose reply never arrived (pending, nobody working on them) are handled by the sweep', async () => {
  const handled: string[] = []
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  await worker('w1', async (e) => {
    // The first entry holds the worker inside its handler, so it is not reading.
    if (e.payload.toString() === 'hold') await gate
    handled.push(e.payload.toString())
  })
  await waitFor('the worker to own every partition', () => workers[0].partitions.length === opts.partitions, 5000)
  const r = conn()
  const stream = new ChatStream(r, opts.partitions)
  await stream.append(chatIn(0, 'b'), 'dev1', Buffer.from('hold'))
  await sleep(300)
  // Read as w1, as a lost XREADGROUP reply would have: pending to w1, and w1 will never see the reply.
  const chat = chatIn(2, 'b')
  for (let i = 0; i < 5; i++) await stream.append(chat, 'dev1', Buffer.from(`lost-${i}`))
  const read = await r.xreadgroup('GROUP', GROUP, 'w1', 'COUNT', 100, 'STREAMS', streamKey(2), '>') as Array<[string, unknown[]]>
  assert.equal(read[0][1].length, 5, 'the five entries are pending to w1, unseen by it')
  release()
  await waitFor('the stranded entries to be handled', seen(handled, 6), 3 * opts.leaseMs + 5000)
  assert.deepEqual(handled, ['hold', 'lost-0', 'lost-1', 'lost-2', 'lost-3', 'lost-4'])
  await waitFor('nothing pending', async () => (await r.xpending(streamKey(2), GROUP) as [number])[0] === 0, 5000)
})

test('a partition handed over while its worker is busy is never handled by two workers at once', async () => {
  const active = new Map<number, number>()
  let overlap = 0
  const handled: string[] = []
  const handle = (who: string): Whole => async (e) => {
    const p = partitionOf(e.chatId, opts.partitions)
    active.set(p, (active.get(p) ?? 0) + 1)
    if ((active.get(p) ?? 0) > 1) overlap++
    // Slower than a lease period: a lease not renewed during this would lapse.
    await sleep(who === 'w1' ? 3 * opts.leaseMs : 10)
    active.set(p, (active.get(p) ?? 0) - 1)
    handled.push(e.payload.toString())
  }
  // All 12 are in the stream before w1 starts, so its first read takes them all.
  const stream = new ChatStream(conn(), opts.partitions)
  const chats = [0, 1, 2, 3].map((p) => chatIn(p, 'c'))
  for (let i = 0; i < 3; i++) for (const c of chats) await stream.append(c, 'dev1', Buffer.from(`${c}-${i}`))
  await worker('w1', handle('w1'))
  await waitFor('w1 to be inside a handler of every partition', () => [0, 1, 2, 3].every((p) => active.get(p) === 1), 5000)
  // w2 joins now: half the partitions are meant for it, and w1 is busy for several lease periods.
  await worker('w2', handle('w2'))
  await waitFor('all 12 entries handled', seen(handled, 12), 60_000)
  assert.equal(overlap, 0, 'two workers handled one partition at the same time')
  for (const c of chats) assert.deepEqual(handled.filter((h) => h.startsWith(`${c}-`)), [0, 1, 2].map((i) => `${c}-${i}`), `order of ${c}`)
  await waitFor('the partitions to be shared', () => workers[1].partitions.length === opts.partitions / 2, 10_000)
})

test('Redis killed during a read and restarted from its AOF: every entry is handled, in order', async () => {
  const handled: string[] = []
  await worker('w1', async (e) => { handled.push(e.payload.toString()) })
  await waitFor('the worker to own every partition', () => workers[0].partitions.length === opts.partitions, 5000)
  const chat = chatIn(3, 'd')
  const stream = new ChatStream(conn(), opts.partitions)
  let appended = 0
  const appending = (async () => {
    for (; appended < 200; appended++) {
      await stream.append(chat, 'dev1', Buffer.from(String(appended)))
      await sleep(5)
    }
  })()
  await sleep(200)
  await server.kill()
  await sleep(200)
  await server.start()
  await appending
  await waitFor('200 entries handled', () => new Set(handled).size >= 200, 30_000)
  // Resent appends and redelivered reads may repeat an entry, never reorder the first sight of each.
  const firsts = handled.filter((h, i) => handled.indexOf(h) === i)
  assert.deepEqual(firsts, Array.from({ length: 200 }, (_, i) => String(i)))
})

test('a worker stops within its bound when Redis is gone (it does not wait for Redis forever)', { timeout: 30_000 }, async () => {
  const w = await worker('w-gone', async () => {})
  await waitFor('the worker to own a partition', () => w.partitions.length > 0, 5000)
  await server.kill()
  try {
    const t0 = Date.now()
    await w.stop(1000)
    const took = Date.now() - t0
    // The bound is 1 s; the margin is for a slow machine, not a tolerance for waiting on Redis (that would never end).
    assert.ok(took < 10_000, `stop took ${took} ms`)
  } finally {
    await server.start()
  }
})
