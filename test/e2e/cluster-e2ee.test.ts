// End-to-end encrypted chat with the CLI through the cluster profile (API,
// two brokers, two bridge workers, Redis, FerretDB): every device decrypts,
// group keys go through the chat streams like any message, and the MongoDB
// documents hold no plaintext, nor any 10-character piece of one.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { MongoClient } from 'mongodb'
import { TestCluster } from '../helpers/cluster.js'
import { tempDir, type DeviceCreds } from '../helpers/server.js'
import { Listener, cliJson, fragmentsIn, historyOf, profileFor } from '../helpers/cli-e2ee.js'

const cluster = new TestCluster()
const home = tempDir('mqchat-cluster-e2ee-')
let alice: DeviceCreds, bob: DeviceCreds, bob2: DeviceCreds, carol: DeviceCreds
let listener: Listener | undefined
const secrets: string[] = []
const secret = (words: string): string => {
  const s = `${words} ${Math.random().toString(36).slice(2, 10)}`
  secrets.push(s)
  return s
}

before(async () => {
  await cluster.start()
  alice = await cluster.api.register('+15552600001')
  bob = await cluster.api.register('+15552600002')
  carol = await cluster.api.register('+15552600003')
  bob2 = await cluster.api.link(bob, 'bob laptop')
  for (const [name, d] of [['alice', alice], ['bob', bob], ['bob2', bob2], ['carol', carol]] as const) await profileFor(home, cluster.api, name, d)
})
after(async () => {
  await listener?.stop().catch(() => {})
  await cluster.stop()
})

test('cluster: a direct chat and a group, encrypted; every device decrypts every message, live on another broker and in history', async () => {
  listener = new Listener(home, 'bob', ['--mqtt', `mqtt://127.0.0.1:${cluster.brokers[1]!.ports.mqtt}`])
  const direct = (await cliJson(home, ['chat', 'create', bob.userId, '--e2ee', '--profile', 'alice'])).chat_id
  const group = (await cliJson(home, ['chat', 'create', '--group', 'cluster plans', bob.userId, carol.userId, '--e2ee', '--profile', 'alice'])).chat_id
  const d = await cliJson(home, ['send', direct, secret('the cluster keeps only noise'), '--profile', 'alice'])
  const g = await cliJson(home, ['send', group, secret('a group secret across brokers'), '--profile', 'alice'])
  const c = await cliJson(home, ['send', group, secret('carol answers the whole group'), '--profile', 'carol'])
  for (const sent of [d, g, c]) assert.equal(sent.encrypted, true)
  assert.equal((await listener.wait('alice\'s direct message', (e) => e.id === d.id)).body, secrets[0])
  assert.equal((await listener.wait('alice\'s group message', (e) => e.id === g.id)).body, secrets[1])
  assert.equal((await listener.wait('carol\'s group message', (e) => e.id === c.id)).body, secrets[2])
  for (const reader of ['bob2', 'alice']) assert.equal((await historyOf(home, reader, direct)).find((m) => m.id === d.id)?.body, secrets[0], reader)
  for (const reader of ['alice', 'bob2', 'carol']) {
    const rows = await historyOf(home, reader, group)
    assert.deepEqual([g.id, c.id].map((id) => rows.find((m) => m.id === id)?.body), [secrets[1], secrets[2]], reader)
  }
})

test('cluster: the MongoDB documents hold no plaintext (and the scan finds a plaintext message)', async () => {
  const open = (await cliJson(home, ['chat', 'create', '--group', 'open group', bob.userId, '--profile', 'alice'])).chat_id
  const control = `a plaintext control message ${Math.random().toString(36).slice(2, 10)}`
  await cliJson(home, ['send', open, control, '--profile', 'alice'])
  const mongo = await MongoClient.connect(cluster.ferret.url('mqchat'))
  try {
    const db = mongo.db()
    const stored: Array<{ path: string, bytes: Buffer }> = []
    for (const { name } of await db.listCollections().toArray()) {
      for (const doc of await db.collection(name).find({}).toArray()) stored.push({ path: `${name}/${String(doc._id)}`, bytes: Buffer.from(JSON.stringify(doc)) })
    }
    assert.ok(stored.some((s) => s.path.startsWith('messages/')), 'the messages are there')
    assert.notDeepEqual(fragmentsIn([control], stored), [], 'the scan finds plaintext where there is some')
    assert.deepEqual(fragmentsIn(secrets, stored), [])
  } finally {
    await mongo.close()
  }
})
