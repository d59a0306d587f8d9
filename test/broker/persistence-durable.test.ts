// What aedes' abstract suite does not check: state survives closing and reopening the file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqlitePersistence } from '../../broker/persistence/sqlite.js'
import { decodePacket } from '../../broker/persistence/codec.js'

async function all<T> (stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of stream) out.push(x)
  return out
}

test('subscriptions, queued messages, retained messages, QoS 2 state and wills survive a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-durable-'))
  const path = join(dir, 'broker.db')
  try {
    const broker = { id: 'b1' }
    const p1 = new SqlitePersistence({ path })
    await p1.setup(broker)
    const client = { id: 'dv_1' }
    await p1.addSubscriptions(client, [{ topic: 'dev/dv_1/inbox', qos: 1 }, { topic: 'dev/dv_1/live', qos: 0 }])
    for (let i = 0; i < 3; i++) {
      await p1.outgoingEnqueueCombi([{ clientId: 'dv_1', topic: 'dev/dv_1/inbox', qos: 1 }], { cmd: 'publish', topic: 'dev/dv_1/inbox', payload: Buffer.from(`m${i}`), qos: 1, retain: false, brokerId: 'b1', brokerCounter: i + 1 })
    }
    await p1.storeRetained({ cmd: 'publish', topic: 'presence/u_1', payload: Buffer.from('online'), qos: 0, retain: true })
    await p1.incomingStorePacket(client, { cmd: 'publish', topic: 't', payload: Buffer.from('q2'), qos: 2, messageId: 7 })
    await p1.putWill(client, { cmd: 'publish', topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false })
    await p1.destroy()

    const p2 = new SqlitePersistence({ path })
    await p2.setup(broker)
    assert.deepEqual((await p2.subscriptionsByClient(client)).map((s) => [s.topic, s.qos]), [['dev/dv_1/inbox', 1], ['dev/dv_1/live', 0]])
    assert.deepEqual((await p2.subscriptionsByTopic('dev/dv_1/inbox')).map((s) => s.clientId), ['dv_1'])
    const queued = await all<{ payload: Buffer }>(p2.outgoingStream(client))
    assert.deepEqual(queued.map((q) => q.payload.toString()), ['m0', 'm1', 'm2'])
    assert.equal(p2.queueLength('dv_1'), 3)
    const retained = await all<{ payload: Buffer }>(p2.createRetainedStream('presence/+'))
    assert.equal(retained[0].payload.toString(), 'online')
    assert.equal((await p2.incomingGetPacket(client, { messageId: 7 })).payload.toString(), 'q2')
    assert.equal((await p2.getWill(client))?.payload.toString(), 'bye')
    await p2.purgeClient('dv_1')
    assert.equal(p2.queueLength('dv_1'), 0)
    assert.deepEqual(await p2.subscriptionsByClient(client), [])
    assert.equal(await p2.getWill(client), undefined)
    await p2.destroy()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a bounded queue drops its oldest entries, reports the overflow once per episode, and counts it durably', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-bound-'))
  try {
    const calls: Array<[string, number]> = []
    const open = () => new SqlitePersistence({ path: join(dir, 'broker.db'), maxQueue: 4, onOverflow: (c, n) => calls.push([c, n]) })
    const p = open()
    await p.setup({ id: 'b1' })
    const sub = { clientId: 'dv_1', topic: 'dev/dv_1/inbox', qos: 1 }
    const enqueue = (i: number) => p.outgoingEnqueueCombi([sub], { cmd: 'publish', topic: sub.topic, payload: Buffer.from(`m${i}`), qos: 1, retain: false, brokerId: 'b1', brokerCounter: i + 1 })
    for (let i = 0; i < 10; i++) await enqueue(i)
    assert.equal(p.queueLength('dv_1'), 4)
    assert.deepEqual((await all<{ payload: Buffer }>(p.outgoingStream({ id: 'dv_1' }))).map((q) => q.payload.toString()), ['m6', 'm7', 'm8', 'm9'])
    assert.deepEqual(calls, [['dv_1', 1]], 'told once, at the first drop')
    await p.destroy()

    const p2 = open()
    await p2.setup({ id: 'b1' })
    assert.equal(p2.takeOverflow('dv_1'), 6, 'the dropped count survives a restart')
    assert.equal(p2.takeOverflow('dv_1'), 0)
    await p2.outgoingEnqueueCombi([sub], { cmd: 'publish', topic: sub.topic, payload: Buffer.from('m10'), qos: 1, retain: false, brokerId: 'b1', brokerCounter: 11 })
    assert.equal(p2.queueLength('dv_1'), 4, 'the count was restored from disk')
    assert.deepEqual(calls, [['dv_1', 1], ['dv_1', 1]], 'a new episode is reported again')
    await p2.destroy()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

/** A fresh store in a temporary directory, with an enqueue of message `m<i>` for dv_1's inbox. */
async function withQueue (fn: (p: SqlitePersistence, enqueue: (i: number) => Promise<void>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-stream-'))
  try {
    const p = new SqlitePersistence({ path: join(dir, 'broker.db') })
    await p.setup({ id: 'b1' })
    const sub = { clientId: 'dv_1', topic: 'dev/dv_1/inbox', qos: 1 }
    try {
      await fn(p, (i) => p.outgoingEnqueueCombi([sub], { cmd: 'publish', topic: sub.topic, payload: Buffer.from(`m${i}`), qos: 1, retain: false, brokerId: 'b1', brokerCounter: i + 1 }))
    } finally {
      await p.destroy()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('a queued message acknowledged through a live delivery while the queue is being sent is not handed out again', () => withQueue(async (p, enqueue) => {
  const client = { id: 'dv_1' }
  for (let i = 0; i < 4; i++) await enqueue(i)
  const stream = p.outgoingStream(client)[Symbol.asyncIterator]()
  const first = (await stream.next()).value as { payload: Buffer, messageId?: number }
  first.messageId = 1
  await p.outgoingUpdate(client, first)
  // m3 goes out live meanwhile (as aedes does for a publish arriving during the reconnect) and is acknowledged.
  await p.outgoingUpdate(client, { cmd: 'publish', topic: 'dev/dv_1/inbox', payload: Buffer.from('m3'), qos: 1, retain: false, brokerId: 'b1', brokerCounter: 4, messageId: 9 })
  assert.ok(await p.outgoingClearMessageId(client, { cmd: 'puback', messageId: 9 }))
  const rest: string[] = []
  for (let r = await stream.next(); r.done !== true; r = await stream.next()) {
    const packet = r.value as { payload: Buffer, messageId?: number }
    packet.messageId = 2 + rest.length
    // What aedes does with each queued packet before writing it: this must find the row.
    await p.outgoingUpdate(client, packet)
    rest.push(packet.payload.toString())
  }
  assert.deepEqual([first.payload.toString(), ...rest], ['m0', 'm1', 'm2'])
}))

test('a message queued after the queue began to be sent is left to its live delivery, not sent twice', () => withQueue(async (p, enqueue) => {
  for (let i = 0; i < 2; i++) await enqueue(i)
  const stream = p.outgoingStream({ id: 'dv_1' })
  await enqueue(2)
  const got: string[] = []
  for await (const packet of stream as AsyncIterable<{ payload: Buffer }>) got.push(packet.payload.toString())
  assert.deepEqual(got, ['m0', 'm1'])
  assert.equal(p.queueLength('dv_1'), 3, 'm2 stays queued for its live delivery')
}))

test('retained messages on the lazy topics are written in batches after lazyRetained.ms and on destroy; others at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-lazy-'))
  const path = join(dir, 'broker.db')
  const { DatabaseSync } = await import('node:sqlite')
  const rows = (): Record<string, string> => {
    const db = new DatabaseSync(path, { readOnly: true })
    try {
      const out: Record<string, string> = {}
      for (const r of db.prepare('SELECT topic, packet FROM retained').all() as Array<{ topic: string, packet: string }>) out[r.topic] = r.packet
      return out
    } finally { db.close() }
  }
  const payloadOf = (packet: string | undefined): string | undefined => packet === undefined ? undefined : decodePacket<{ payload: Buffer }>(packet).payload.toString()
  const retain = (topic: string, text: string) => ({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 0, retain: true })
  try {
    const p = new SqlitePersistence({ path, lazyRetained: { ms: 100, topic: (t) => t.startsWith('presence/') } })
    await p.setup({ id: 'b1' })
    await p.storeRetained(retain('presence/u_1', 'online'))
    await p.storeRetained(retain('presence/u_2', 'online'))
    await p.storeRetained(retain('other/t', 'now'))
    assert.equal(payloadOf(rows()['other/t']), 'now', 'not presence: written at once')
    assert.equal(rows()['presence/u_1'], undefined, 'presence: not yet written')
    assert.equal((await all<{ payload: Buffer }>(p.createRetainedStream('presence/u_1')))[0]?.payload.toString(), 'online', 'but served from memory')
    await p.storeRetained(retain('presence/u_1', 'offline'))
    const deadline = Date.now() + 10_000
    while (rows()['presence/u_1'] === undefined) {
      assert.ok(Date.now() < deadline, 'the batch was written within 10 s')
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.equal(payloadOf(rows()['presence/u_1']), 'offline', 'the last change of the interval')
    assert.equal(payloadOf(rows()['presence/u_2']), 'online')
    await p.storeRetained(retain('presence/u_2', ''))
    await p.storeRetained(retain('presence/u_3', 'online'))
    await p.destroy()
    assert.deepEqual(Object.keys(rows()).sort(), ['other/t', 'presence/u_1', 'presence/u_3'], 'destroy wrote what was pending, the removal included')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
