// Failures under steady load in the cluster profile: a broker killed (-9), a
// bridge worker killed (-9), a bridge worker stalled (SIGSTOP) past its lease
// and resumed, Redis killed (-9) and restarted from its AOF.
// After each, the checks of test/helpers/load.ts: nothing acknowledged lost,
// nothing stored twice, no gap, every member got everything.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { partitionOf } from '../../cluster/chat-stream.js'
import { leaseKey } from '../../cluster/bridge-worker.js'
import { TestCluster } from '../helpers/cluster.js'
import { underLoad } from '../helpers/load.js'
import { waitFor, within } from '../helpers/server.js'

const cluster = new TestCluster()
before(async () => { await within('the cluster to start', cluster.start(), 120_000) })
after(async () => { await cluster.stop() })

test('kill -9 a broker under load: its devices move to the other broker and nothing accepted is lost', async () => {
  await underLoad(cluster, async () => {
    await cluster.brokers[0].kill()
  })
  // The killed node comes back with the same id (its port is new) for the next tests.
  await cluster.brokers[0].start()
})

test('kill -9 a bridge worker under load: its partitions are taken over; no loss, no seq twice, no gap', async () => {
  await underLoad(cluster, async () => {
    await cluster.workers[0].kill()
  })
  await cluster.workers[0].start()
})

/** The node id holding a partition's lease now. */
async function leaseHolder (partition: number): Promise<string | null> {
  const r = new Redis(cluster.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await r.connect()
    return await r.get(leaseKey(partition))
  } finally {
    r.disconnect()
  }
}

test('a bridge worker stalled (SIGSTOP) past its lease mid-load and then resumed writes no stale seq: no loss, no seq twice, no gap', async () => {
  await underLoad(cluster, async (chat) => {
    const p = partitionOf(chat, 8)
    const holder = await waitFor('a worker to hold the chat\'s partition', async () => await leaseHolder(p) ?? undefined, 20_000)
    const stalled = cluster.workers.find((w) => w.env.MQCHAT_NODE_ID === holder)
    assert.ok(stalled?.proc?.pid, `the lease holder ${holder} is one of the workers`)
    const lostBefore = stalled.log.split('chat stream partition lease lost').length
    stalled.proc.kill('SIGSTOP')
    try {
      // Its lease lapses (5 s); the other worker takes the partition, and the entries the stalled one was handling.
      await waitFor('the other worker to take the partition over', async () => { const h = await leaseHolder(p); return h !== null && h !== holder ? true : undefined }, 30_000)
    } finally {
      stalled.proc.kill('SIGCONT')
    }
    // Resumed, it finds out at its next heartbeat; whatever it was writing meanwhile met the new owner's seqs.
    await waitFor('the resumed worker to find its lease gone', () => stalled.log.split('chat stream partition lease lost').length > lostBefore ? true : undefined, 20_000)
  })
})

test('kill -9 Redis under load and restart it from its AOF: nothing that was PUBACKed is lost', async () => {
  await underLoad(cluster, async () => {
    await cluster.redis.kill()
    await new Promise((resolve) => setTimeout(resolve, 300))
    await cluster.redis.start()
  })
})
