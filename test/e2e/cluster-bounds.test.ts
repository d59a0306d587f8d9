// The cluster profile bounds an away device's queue of inbox events (receipts,
// chat changes, refusals) as the local profile bounds its event log: past
// MQCHAT_MAX_QUEUE the oldest go, and the next connection starts with a
// `sync` event that counts them (docs/protocol.md §3). Before, the queue in
// Redis grew without limit and one connection was sent only the oldest
// MQCHAT_MAX_QUEUE of it, silently.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { TestCluster } from '../helpers/cluster.js'
import { Device, waitFor, within } from '../helpers/server.js'

const cluster = new TestCluster()
let redis: Redis
before(async () => {
  await within('the cluster to start', cluster.start({ brokers: 1, workers: 1, env: { MQCHAT_MAX_QUEUE: '20' } }), 120_000)
  redis = new Redis(cluster.redis.url)
})
after(async () => { redis?.disconnect(); await cluster.stop() })

test('an away device gets a sync event counting what its bounded queue dropped, then the newest MQCHAT_MAX_QUEUE events, in order', async () => {
  const xena = await cluster.api.register('+15550300001', 'xena-phone')
  const yuri = await cluster.api.register('+15550300002', 'yuri-phone')
  const x = await new Device(cluster.brokers[0], xena).connect()
  const g = (await cluster.api.api('POST', '/v1/chats', yuri.token, { kind: 'group', name: 'n-start', members: [xena.userId] })).body.chat_id as string
  await x.waitEvent('the group', (e) => e.type === 'chat' && e.change === 'created')
  await x.close()

  // 30 chat changes while xena's phone is away: 10 over the bound.
  for (let i = 0; i < 30; i++) {
    const r = await cluster.api.api('PATCH', `/v1/chats/${g}`, yuri.token, { name: `n${i}` })
    assert.equal(r.status, 200, JSON.stringify(r.body))
  }
  await waitFor('the overflow to be counted', async () => await redis.get(`mqchat:dropped:{${xena.deviceId}}`) === '10' ? true : undefined, 20_000)

  const back = await new Device(cluster.brokers[0], xena).connect()
  try {
    const got = await waitFor('the queue', () => back.events.length >= 21 ? back.events : undefined, 20_000)
    assert.deepEqual([got[0].type, got[0].reason, got[0].dropped], ['sync', 'queue_overflow', 10], JSON.stringify(got[0]))
    assert.deepEqual(got.slice(1).map((e) => [e.type, e.change, e.name]), Array.from({ length: 20 }, (_, i) => ['chat', 'renamed', `n${i + 10}`]))
    // Acknowledged, the count is cleared: the next connection starts clean.
    await waitFor('the sync event to be acknowledged', async () => await redis.get(`mqchat:dropped:{${xena.deviceId}}`) === '0' ? true : undefined, 10_000)
  } finally {
    await back.close()
  }
  const third = await new Device(cluster.brokers[0], xena).connect()
  try {
    await cluster.api.api('PATCH', `/v1/chats/${g}`, yuri.token, { name: 'n-last' })
    await third.waitEvent('the live change', (e) => e.type === 'chat' && e.name === 'n-last')
    assert.deepEqual(third.events.filter((e) => e.type === 'sync'), [])
  } finally {
    await third.close()
  }
})
