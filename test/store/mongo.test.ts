// The store contract suites against the MongoDB adapters, on a real FerretDB
// server (the MongoDB wire protocol; SQLite backend). Each case gets a fresh
// database on the one server.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { MongoClient, type Db } from 'mongodb'
import { directoryContract } from '../../store/contract/directory.js'
import { historyContract } from '../../store/contract/history.js'
import { mediaContract } from '../../store/contract/media.js'
import { keysContract } from '../../store/contract/keys.js'
import { profilesContract } from '../../store/contract/profiles.js'
import { openMongoStores, type MongoStores } from '../../store/mongo/database.js'
import { FerretDb } from '../helpers/services.js'

const ferret = new FerretDb()
before(async () => { await ferret.start() })
after(async () => { await ferret.destroy() })

let n = 0
function opener<S> (pick: (s: MongoStores) => S) {
  return async () => {
    const database = `contract_${process.pid}_${++n}`
    const stores = await openMongoStores({ url: ferret.url(database) })
    return {
      store: pick(stores),
      async close () {
        await stores.close()
        const client = await MongoClient.connect(ferret.url(database))
        try { await client.db(database).dropDatabase() } finally { await client.close() }
      }
    }
  }
}

/** A fresh database with the stores open on it (`open` opens more, as other nodes would), and a raw client on it. */
async function withDatabase (name: string, fn: (t: { stores: MongoStores, open: () => Promise<MongoStores>, db: Db }) => Promise<void>): Promise<void> {
  const database = `${name}_${process.pid}`
  const opened: MongoStores[] = []
  const open = async (): Promise<MongoStores> => {
    const s = await openMongoStores({ url: ferret.url(database) })
    opened.push(s)
    return s
  }
  const client = await MongoClient.connect(ferret.url(database))
  try {
    await fn({ stores: await open(), open, db: client.db(database) })
  } finally {
    for (const s of opened) await s.close()
    await client.db(database).dropDatabase()
    await client.close()
  }
}

directoryContract('mongodb (FerretDB)', opener((s) => s.directory))
historyContract('mongodb (FerretDB)', opener((s) => s.history))
mediaContract('mongodb (FerretDB)', opener((s) => s.media))
keysContract('mongodb (FerretDB)', opener((s) => s.keys))
profilesContract('mongodb (FerretDB)', opener((s) => s.profiles))

test('mongodb history: an append that stopped between its insert and its counter update leaves no gap and no reused seq', () => withDatabase('interrupted', async ({ stores, db }) => {
  const msg = (clientId: string, serverTs: number) => ({ chatId: 'c_x', senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs })
  await stores.history.append(msg('a', 1000))
  // Seq 2 and 3 stored as an interrupted append would leave them: in messages, the counter still at 1.
  const first = await db.collection('messages').findOne({ _id: 'c_x\n1' as never })
  assert.ok(first)
  for (const seq of [2, 3]) await db.collection('messages').insertOne({ ...first, _id: `c_x\n${seq}` as never, seq, clientId: `crashed-${seq}` })
  assert.ok(((await db.collection('chat_seq').findOne({ _id: 'c_x' as never }))?.last ?? 0) <= 1, 'the counter has not seen them')
  assert.equal(await stores.history.lastSeq('c_x'), 3)
  const next = await stores.history.append(msg('b', 1001))
  assert.equal(next.message.seq, 4)
  assert.deepEqual((await stores.history.after('c_x', 0, 10)).map((m) => m.seq), [1, 2, 3, 4])
}))

test('mongodb history: two writers on one chat never share a seq and leave no gap (each caches its last seq)', () => withDatabase('writers', async ({ stores: a, open }) => {
  const b = await open()
  const msg = (clientId: string) => ({ chatId: 'c_w', senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs: Date.now() })
  const seqs: number[] = []
  // Alternating, so each writer's cached last seq is stale at every other append.
  for (let i = 0; i < 6; i++) seqs.push((await (i % 2 === 0 ? a : b).history.append(msg(`m${i}`))).message.seq)
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6])
  // A repeat through the other writer is recognised.
  const again = await b.history.append(msg('m0'))
  assert.deepEqual([again.duplicate, again.message.seq], [true, 1])
  assert.deepEqual((await a.history.after('c_w', 0, 10)).map((m) => m.clientId), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
}))

test('mongodb history: retention raises a lagging chat counter before it deletes, so a purged seq is never taken again', () => withDatabase('lagging', async ({ stores, db }) => {
  // Seqs 1..4 stored and the counter never raised: an append stops before the raise (a crash), and the chat goes quiet.
  for (let seq = 1; seq <= 4; seq++) {
    await db.collection('messages').insertOne({ _id: `c_p\n${seq}` as never, chatId: 'c_p', seq, senderUser: 'u1', senderDevice: 'd1', clientId: `p${seq}`, type: 'text', body: '"x"', clientTs: null, serverTs: 1000 + seq, serverAt: new Date(1000 + seq), ref: null, forwarded: false, editedAt: null, deletedAt: null, media: null, fannedOut: true })
  }
  assert.equal(await stores.history.lastSeq('c_p'), 4, 'found above the counter')
  assert.equal(await stores.history.purgeBefore(9999), 4)
  assert.equal((await db.collection('chat_seq').findOne({ _id: 'c_p' as never }))?.last, 4)
  const next = await stores.history.append({ chatId: 'c_p', senderUser: 'u1', senderDevice: 'd1', clientId: 'p5', type: 'text', body: '"y"', clientTs: null, serverTs: Date.now() })
  assert.equal(next.message.seq, 5)
}))

test('mongodb history: concurrent appends share one insertMany; a repeat inside it is refused alone, and answered with the original', () => withDatabase('grouped', async ({ stores, db }) => {
  const msg = (chatId: string, clientId: string) => ({ chatId, senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs: Date.now() })
  // Warm the seq cache so every append below inserts in the same turn.
  for (let i = 0; i < 10; i++) await stores.history.append(msg(`c_g${i}`, `warm${i}`))
  const results = await Promise.all([
    ...Array.from({ length: 10 }, (_, i) => stores.history.append(msg(`c_g${i}`, `new${i}`))),
    // The same client id from the same device, in another chat: one of the two is a repeat.
    stores.history.append(msg('c_g0', 'twice')),
    stores.history.append(msg('c_g1', 'twice'))
  ])
  for (const r of results.slice(0, 10)) assert.deepEqual([r.duplicate, r.message.seq], [false, 2])
  const [a, b] = results.slice(10)
  assert.deepEqual([a!.duplicate, b!.duplicate].sort(), [false, true])
  const original = a!.duplicate ? b! : a!
  const repeat = a!.duplicate ? a! : b!
  assert.deepEqual([repeat.message.chatId, repeat.message.seq], [original.message.chatId, original.message.seq])
  assert.equal(await db.collection('messages').countDocuments({}), 21)
  for (let i = 0; i < 10; i++) assert.equal((await stores.history.get(`c_g${i}`, 2))?.clientId, `new${i}`)
}))

test('mongodb history: a busy chat\'s appends are stored in runs; a repeat inside a run leaves no gap, and what its refusal cut short is stored next', () => withDatabase('runs', async ({ stores, db }) => {
  const msg = (chatId: string, clientId: string) => ({ chatId, senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: `"${clientId}"`, clientTs: null, serverTs: Date.now() })
  await stores.history.append(msg('c_r', 'first'))
  await stores.history.append(msg('c_s', 'other'))
  const inserts = stores.commands().insert ?? 0
  const [r1, r2, again, r3, r4, s1, s2] = await Promise.all([
    stores.history.append(msg('c_r', 'r1')),
    stores.history.append(msg('c_r', 'r2')),
    stores.history.append(msg('c_r', 'first')),
    stores.history.append(msg('c_r', 'r3')),
    stores.history.append(msg('c_r', 'r4')),
    stores.history.append(msg('c_s', 's1')),
    stores.history.append(msg('c_s', 's2'))
  ])
  assert.deepEqual([r1, r2, r3, r4].map((r) => [r!.duplicate, r!.message.seq]), [[false, 2], [false, 3], [false, 4], [false, 5]])
  assert.deepEqual([again!.duplicate, again!.message.seq], [true, 1])
  assert.deepEqual([s1, s2].map((r) => [r!.duplicate, r!.message.seq]), [[false, 2], [false, 3]])
  assert.deepEqual((await stores.history.after('c_r', 0, 10)).map((m) => [m.seq, m.clientId]), [[1, 'first'], [2, 'r1'], [3, 'r2'], [4, 'r3'], [5, 'r4']])
  assert.equal(await db.collection('messages').countDocuments({}), 8)
  // Runs, not an insert per message (6): the first run of both chats, then c_s's cut-short run at once and c_r's
  // rest after its repeat was looked up.
  assert.ok((stores.commands().insert ?? 0) - inserts <= 3, `insert commands: ${(stores.commands().insert ?? 0) - inserts}`)
}))

test('mongodb history: a message is stored without its default fields (FerretDB\'s cost follows the fields), and reads back whole; a document with every field reads the same', () => withDatabase('sparse', async ({ stores, db }) => {
  const m = { chatId: 'c_d', senderUser: 'u1', senderDevice: 'd1', clientId: 'a', type: 'text' as const, body: '"hi"', clientTs: null, serverTs: 5000 }
  await stores.history.append(m, undefined, { settled: true })
  const raw = await db.collection('messages').findOne({ _id: 'c_d\n1' as never })
  assert.deepEqual(Object.keys(raw!).sort(), ['_id', 'body', 'chatId', 'clientId', 'senderDevice', 'senderUser', 'seq', 'serverTs', 'type'])
  const full = { ...m, clientId: 'b', seq: 2, ref: null, forwarded: false, editedAt: null, deletedAt: null, media: null, expiresAt: null, fannedOut: true, serverAt: new Date(5000) }
  await db.collection('messages').insertOne({ _id: 'c_d\n2' as never, ...full })
  const read = await stores.history.after('c_d', 0, 10)
  assert.deepEqual(read, [1, 2].map((seq) => ({ ...m, clientId: seq === 1 ? 'a' : 'b', seq, ref: null, forwarded: false, editedAt: null, deletedAt: null, media: null })))
  // Unsettled (a media message's fan-out pending): marked until done.
  await stores.history.append({ ...m, clientId: 'c' }, undefined, { settled: false })
  assert.deepEqual((await stores.history.pendingFanout(10)).map((x) => x.seq), [3])
  await stores.history.markFannedOut('c_d', 3)
  assert.deepEqual(await stores.history.pendingFanout(10), [])
}))
