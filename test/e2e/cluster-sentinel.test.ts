// The cluster profile on a Sentinel-managed Redis (one master, one replica,
// three sentinels, all Debian's redis-server) with MQCHAT_REDIS_MIN_REPLICAS=1:
// the master dies under load while its replica lags behind, the sentinels
// promote the replica, and no publish the cluster acknowledged (PUBACK) is
// lost, stored twice or out of order (the checks of test/helpers/load.ts).
//
// Replication is asynchronous: on loopback a replica is usually a few
// microseconds behind, and the bridge workers move an entry into MongoDB
// within milliseconds, so a plain kill -9 of the master rarely shows a loss.
// The replica and the workers (a backlog) are therefore paused (SIGSTOP)
// while the load goes on, with a 64 MiB value written first so that the
// replication stream after it cannot wait in socket buffers but only in the
// master, and the master is killed before they resume: whatever the master
// acknowledged meanwhile exists nowhere else. Without
// the replica wait the publishes of that second are acknowledged and lost;
// with it none is acknowledged until a replica has it, and the devices send
// them again after the failover.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { TestCluster } from '../helpers/cluster.js'
import { underLoad } from '../helpers/load.js'
import { waitFor, within } from '../helpers/server.js'

const cluster = new TestCluster()
before(async () => {
  await within('the cluster to start', cluster.start({ redisSentinel: true, env: { MQCHAT_REDIS_MIN_REPLICAS: '1', MQCHAT_REDIS_REPLICA_WAIT_MS: '500' } }), 120_000)
})
after(async () => { await cluster.stop() })

test('the Redis master dies under load with its replica behind; Sentinel fails over and nothing PUBACKed is lost', async () => {
  const set = cluster.sentinel
  assert.ok(set)
  await underLoad(cluster, async () => {
    const master = await set.currentMaster()
    const replica = set.servers.find((s) => s !== master)
    assert.ok(replica?.proc, 'the replica runs')
    const paused = [replica, ...cluster.workers].map((s) => s.proc).filter((p) => p !== undefined)
    assert.equal(paused.length, 1 + cluster.workers.length)
    for (const p of paused) p.kill('SIGSTOP')
    try {
      const direct = new Redis(master.url, { maxRetriesPerRequest: 1 })
      try { await direct.set('mqchat-test:ballast', Buffer.alloc(64 << 20)) } finally { direct.disconnect() }
      await new Promise((resolve) => setTimeout(resolve, 1000))
      await master.kill()
    } finally {
      for (const p of paused) p.kill('SIGCONT')
    }
    await waitFor('the sentinels to promote the replica', async () => await set.masterPort() === replica.port ? true : undefined, 60_000)
    // The old master comes back from its AOF and the sentinels make it the new master's replica;
    // until then no publish can be confirmed on a replica, so none is acknowledged.
    await master.start()
  })
})
