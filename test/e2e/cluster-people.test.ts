// Disappearing messages and account erasure in the cluster profile (API, two
// brokers, two bridge workers, Redis, FerretDB): expired messages leave the
// MongoDB documents and the Redis recent caches within the sweep, and an
// erased account leaves no trace of its number, name or texts in MongoDB.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { MongoClient } from 'mongodb'
import { TestCluster } from '../helpers/cluster.js'
import { Device, waitFor, type DeviceCreds } from '../helpers/server.js'
import { fragmentsIn } from '../helpers/cli-e2ee.js'

const cluster = new TestCluster()
let redis: Redis
let mongo: MongoClient
let a: DeviceCreds, b: DeviceCreds
let A: Device, B: Device

before(async () => {
  await cluster.start({ env: { MQCHAT_DISAPPEARING_TIMERS: '2,86400', MQCHAT_EXPIRY_SWEEP_SECONDS: '1' } })
  redis = new Redis(cluster.redis.url)
  mongo = await MongoClient.connect(cluster.ferret.url('mqchat'))
  a = await cluster.api.register('+15553200001')
  b = await cluster.api.register('+15553200002')
  A = await new Device(cluster.brokers[0]!, a).connect()
  B = await new Device(cluster.brokers[1]!, b).connect()
})
after(async () => {
  await A?.close()
  await B?.close()
  redis?.disconnect()
  await mongo?.close()
  await cluster.stop()
})

/** Every document of every collection, as JSON text. */
async function documents (): Promise<Array<{ path: string, bytes: Buffer }>> {
  const db = mongo.db()
  const out: Array<{ path: string, bytes: Buffer }> = []
  for (const { name } of await db.listCollections().toArray()) {
    for (const doc of await db.collection(name).find({}).toArray()) out.push({ path: `${name}/${String(doc._id)}`, bytes: Buffer.from(JSON.stringify(doc)) })
  }
  return out
}

/** Every cached message in Redis' recent caches. */
async function cached (): Promise<string[]> {
  const out: string[] = []
  for (const key of await redis.keys('mqchat:recent:*')) out.push(...await redis.zrange(key, 0, -1))
  return out
}

test('cluster: an expired message leaves history, the MongoDB documents and the Redis recent caches within the sweep', async () => {
  const chat = (await cluster.api.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  await A.publish(chat, { id: 'timer', type: 'timer', body: { seconds: 2 } })
  await B.waitEvent('the timer', (e) => e.type === 'chat' && e.change === 'disappearing' && e.seconds === 2)
  await A.publish(chat, { id: 'vanishing', body: 'a cluster-wide secret that disappears' })
  const m = await B.waitEvent('the message', (e) => e.type === 'msg' && e.id === 'vanishing')
  assert.equal(typeof m.expires_at, 'number')
  assert.ok((await cached()).some((c) => c.includes('disappears')), 'cached while it lives')
  await waitFor('the message to leave MongoDB and Redis', async () =>
    fragmentsIn(['a cluster-wide secret that disappears'], await documents()).length === 0 && !(await cached()).some((c) => c.includes('disappears')) || undefined, 15_000)
  const h = await cluster.api.api('GET', `/v1/chats/${chat}/messages?after=0`, b.token)
  assert.equal(h.body.messages.some((x: { id: string }) => x.id === 'vanishing'), false)
})

test('cluster: an erased account leaves no trace of its number, name or texts in MongoDB', async () => {
  const c = await cluster.api.register('+15553200003')
  await cluster.api.api('PATCH', '/v1/me/profile', c.token, { name: 'Cornelius Vanderplank' })
  await cluster.api.api('POST', '/v1/contacts/discover', a.token, { phones: [c.phone], replace: true })
  const group = (await cluster.api.api('POST', '/v1/chats', c.token, { kind: 'group', name: 'gone soon', members: [a.userId, b.userId] })).body.chat_id as string
  const text = 'the combination is 31-17-44 says cornelius'
  assert.equal((await cluster.api.api('POST', `/v1/chats/${group}/messages`, c.token, { id: 'c1', body: text })).status, 201)
  await B.waitEvent('his message', (e) => e.type === 'msg' && e.id === 'c1')
  assert.notDeepEqual(fragmentsIn([c.phone, text], await documents()), [], 'there before')
  const code = (await cluster.api.api('POST', '/v1/register/code', undefined, { phone: c.phone })).body.code as string
  const r = await cluster.api.api('DELETE', '/v1/me', c.token, { code })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  await B.waitEvent('him leaving', (e) => e.type === 'chat' && e.chat === group && e.change === 'member_removed' && (e.users as string[]).includes(c.userId))
  const after = await documents()
  assert.notDeepEqual(fragmentsIn([a.phone], after, a.phone.length), [], 'the scan finds what is there')
  assert.deepEqual(fragmentsIn([c.phone], after, c.phone.length), [])
  assert.deepEqual(fragmentsIn(['Cornelius Vanderplank', text], after), [])
  assert.equal((await cached()).some((x) => x.includes('cornelius')), false, 'nor in the recent caches')
  const h = await cluster.api.api('GET', `/v1/chats/${group}/messages?after=0`, b.token)
  assert.deepEqual(((x) => [x.body, x.deleted])(h.body.messages.find((x: { id: string }) => x.id === 'c1')), [null, true])
})
