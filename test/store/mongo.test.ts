// The store contract suites against the MongoDB adapters, on a real FerretDB
// server (the MongoDB wire protocol; SQLite backend). Each case gets a fresh
// database on the one server.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { MongoClient } from 'mongodb'
import { directoryContract } from '../../store/contract/directory.js'
import { historyContract } from '../../store/contract/history.js'
import { mediaContract } from '../../store/contract/media.js'
import { openMongoStores, type MongoStores } from '../../store/mongo/database.js'
import { FerretDb } from '../helpers/services.js'

const ferret = new FerretDb()
before(async () => { await ferret.start() })
after(async () => { await ferret.destroy() })

let n = 0
function opener<S> (pick: (s: MongoStores) => S) {
  return async () => {
    const database = `contract_${process.pid}_${++n}`
    const stores = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
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

directoryContract('mongodb (FerretDB)', opener((s) => s.directory))
historyContract('mongodb (FerretDB)', opener((s) => s.history))
mediaContract('mongodb (FerretDB)', opener((s) => s.media))

test('mongodb history: an append that stopped between its insert and its counter update leaves no gap and no reused seq', async () => {
  const database = `interrupted_${process.pid}`
  const stores = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
  const client = await MongoClient.connect(ferret.url(database))
  try {
    const msg = (clientId: string, serverTs: number) => ({ chatId: 'c_x', senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs })
    await stores.history.append(msg('a', 1000))
    // Seq 2 and 3 stored as an interrupted append would leave them: in messages, the counter still at 1.
    const first = await client.db(database).collection('messages').findOne({ _id: 'c_x\n1' as never })
    assert.ok(first)
    for (const seq of [2, 3]) await client.db(database).collection('messages').insertOne({ ...first, _id: `c_x\n${seq}` as never, seq, clientId: `crashed-${seq}` })
    assert.equal((await client.db(database).collection('chat_seq').findOne({ _id: 'c_x' as never }))?.last, 1)
    assert.equal(await stores.history.lastSeq('c_x'), 3)
    const next = await stores.history.append(msg('b', 1001))
    assert.equal(next.message.seq, 4)
    assert.deepEqual((await stores.history.after('c_x', 0, 10)).map((m) => m.seq), [1, 2, 3, 4])
  } finally {
    await client.db(database).dropDatabase()
    await client.close()
    await stores.close()
  }
})

test('mongodb history: two writers on one chat never share a seq and leave no gap (each caches its last seq)', async () => {
  const database = `writers_${process.pid}`
  const a = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
  const b = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
  const client = await MongoClient.connect(ferret.url(database))
  try {
    const msg = (clientId: string) => ({ chatId: 'c_w', senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs: Date.now() })
    const seqs: number[] = []
    // Alternating, so each writer's cached last seq is stale at every other append.
    for (let i = 0; i < 6; i++) seqs.push((await (i % 2 === 0 ? a : b).history.append(msg(`m${i}`))).message.seq)
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6])
    // A repeat through the other writer is recognised.
    const again = await b.history.append(msg('m0'))
    assert.deepEqual([again.duplicate, again.message.seq], [true, 1])
    assert.deepEqual((await a.history.after('c_w', 0, 10)).map((m) => m.clientId), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'])
  } finally {
    await client.db(database).dropDatabase()
    await client.close()
    await a.close()
    await b.close()
  }
})

test('mongodb history: a repeat of a message stored without its client_ids record (older data, or a crash between the two inserts) gets the original seq', async () => {
  const database = `legacy_${process.pid}`
  const stores = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
  const client = await MongoClient.connect(ferret.url(database))
  try {
    const msg = (clientId: string) => ({ chatId: 'c_l', senderUser: 'u1', senderDevice: 'd1', clientId, type: 'text' as const, body: '"hi"', clientTs: null, serverTs: Date.now() })
    await stores.history.append(msg('a'))
    const ids = client.db(database).collection('client_ids')
    assert.equal(await ids.countDocuments({ _id: 'd1\na' as never }), 1, 'the client id is recorded by _id')
    await ids.deleteOne({ _id: 'd1\na' as never })
    const repeat = await stores.history.append(msg('a'))
    assert.deepEqual([repeat.duplicate, repeat.message.seq], [true, 1])
    assert.equal(await ids.countDocuments({ _id: 'd1\na' as never }), 1, 'and recorded again')
    assert.equal((await stores.history.append(msg('b'))).message.seq, 2, 'no seq was taken by the repeat')
    assert.deepEqual((await stores.history.findByClientId('d1', 'b'))?.seq, 2)
  } finally {
    await client.db(database).dropDatabase()
    await client.close()
    await stores.close()
  }
})
