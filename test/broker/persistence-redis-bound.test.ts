// The cluster's per-device queue bound (broker/persistence/redis.ts) on a real
// Redis: past MQCHAT_MAX_QUEUE the oldest packets go, their stored copies
// with them, and the replay starts with a `sync` event that counts them.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { redisPersistence } from '../../broker/persistence/redis.js'
import { RedisServer } from '../helpers/services.js'

interface Stored { brokerId: string, brokerCounter: number | string, topic: string, payload: Buffer, qos: number, messageId?: number }
// The persistence's callback-free API as aedes calls it.
interface Queue {
  outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: object): Promise<void>
  outgoingStream (client: { id: string }): AsyncIterable<Stored>
  outgoingUpdate (client: { id: string }, packet: Stored): Promise<void>
  outgoingClearMessageId (client: { id: string }, packet: { messageId: number }): Promise<Stored | undefined>
}

const server = new RedisServer()
let conn: Redis
before(async () => { await server.start(); conn = new Redis(server.url) })
after(async () => { conn.disconnect(); await server.destroy() })

const packet = (n: number): object => ({ cmd: 'publish', brokerId: 'node-a', brokerCounter: n, topic: 'dev/x/inbox', payload: Buffer.from(`event ${n}`), qos: 1, retain: false })

async function replay (q: Queue, clientId: string): Promise<Stored[]> {
  const out: Stored[] = []
  for await (const p of q.outgoingStream({ id: clientId })) out.push(p)
  return out
}

/** Sends and acknowledges every queued packet as a connected client would. */
async function acknowledgeAll (q: Queue, clientId: string, packets: Stored[]): Promise<void> {
  let id = 1
  for (const p of packets) {
    p.messageId = id++
    await q.outgoingUpdate({ id: clientId }, p)
    await q.outgoingClearMessageId({ id: clientId }, { messageId: p.messageId })
  }
}

test('an away device\'s queue keeps the newest MQCHAT_MAX_QUEUE packets; the replay starts with a sync event counting the rest, and the dropped copies are gone', async () => {
  await conn.flushall()
  const q = redisPersistence({ conn, maxQueue: 20 }) as unknown as Queue
  // Two devices share every packet; one of them stays within its bound.
  for (let n = 1; n <= 30; n++) await q.outgoingEnqueueCombi([{ clientId: 'dv_far' }, ...(n <= 15 ? [{ clientId: 'dv_near' }] : [])], packet(n))
  const far = await replay(q, 'dv_far')
  assert.equal(far.length, 21)
  assert.equal(far[0].topic, 'dev/dv_far/inbox')
  const sync = JSON.parse(far[0].payload.toString()) as { type: string, reason: string, dropped: number }
  assert.deepEqual([sync.type, sync.reason, sync.dropped], ['sync', 'queue_overflow', 10])
  assert.deepEqual(far.slice(1).map((p) => p.payload.toString()), Array.from({ length: 20 }, (_, i) => `event ${i + 11}`))
  // Packets 1-10 are still dv_near's; 16-30 were dv_far's alone until acknowledged.
  assert.equal((await replay(q, 'dv_near')).length, 15)
  assert.equal(await conn.exists('packet:node-a:3'), 1)

  // Acknowledged: the count is told, and every copy only dv_far held is released.
  await acknowledgeAll(q, 'dv_far', far)
  assert.equal(await conn.get('mqchat:dropped:{dv_far}'), '0')
  assert.deepEqual(await replay(q, 'dv_far'), [])
  assert.equal(await conn.exists('packet:node-a:20'), 0)
  assert.equal(await conn.exists('packet:mqchat-sync:dv_far'), 0)

  // Overflowing twice while away: one sync event, the two counts added.
  for (let n = 31; n <= 55; n++) await q.outgoingEnqueueCombi([{ clientId: 'dv_far' }], packet(n))
  for (let n = 56; n <= 62; n++) await q.outgoingEnqueueCombi([{ clientId: 'dv_far' }], packet(n))
  const again = await replay(q, 'dv_far')
  assert.equal(again.length, 21)
  assert.equal((JSON.parse(again[0].payload.toString()) as { dropped: number }).dropped, 12)
  assert.deepEqual(again.slice(1).map((p) => p.payload.toString()), Array.from({ length: 20 }, (_, i) => `event ${i + 43}`))
  // The storage holds the bound, not the history: dv_far's 20 and the marker, dv_near's 15 (1-15).
  const stored = (await conn.keys('packet:*')).filter((k) => !k.endsWith(':offlineCount'))
  assert.equal(stored.length, 20 + 1 + 15, stored.sort().join(' '))
})
