// A whole cluster-profile deployment on loopback: Redis, FerretDB, optionally
// MinIO, and mqchat processes in the broker, bridge and api roles, each its
// own child process with its own node id.
import type { ChildProcess } from 'node:child_process'
import { TestServer } from './server.js'
import { FerretDb, Minio, Postgres, RedisCluster, RedisSentinelSet, RedisServer } from './services.js'

export interface ClusterShape {
  brokers?: number
  workers?: number
  s3?: boolean
  /** A 3-master Redis Cluster (MQCHAT_REDIS_CLUSTER_NODES) instead of one Redis server. */
  redisCluster?: boolean
  /** A Sentinel-managed Redis (master, replica, 3 sentinels; MQCHAT_REDIS_SENTINELS) instead of one Redis server. */
  redisSentinel?: boolean
  env?: Record<string, string>
  /** Flags for node itself, per node id (the benchmarks profile some nodes with --cpu-prof). */
  nodeArgs?: (nodeId: string) => string[]
}

export class TestCluster {
  readonly redis = new RedisServer()
  // FerretDB on PostgreSQL: its SQLite backend scans where PostgreSQL uses an index (bench/README.md § item 8).
  readonly ferret = new FerretDb(new Postgres())
  redisCluster: RedisCluster | undefined
  sentinel: RedisSentinelSet | undefined
  minio: Minio | undefined
  brokers: TestServer[] = []
  workers: TestServer[] = []
  api!: TestServer
  #env: Record<string, string> = {}
  #nodeArgs: (nodeId: string) => string[] = () => []

  async start (shape: ClusterShape = {}): Promise<this> {
    if (shape.redisCluster === true) this.redisCluster = new RedisCluster(3)
    if (shape.redisSentinel === true) this.sentinel = new RedisSentinelSet()
    await Promise.all([this.redisCluster?.start() ?? this.sentinel?.start() ?? this.redis.start(), this.ferret.start()])
    if (shape.s3 === true) this.minio = await new Minio().start()
    this.#env = {
      MQCHAT_PROFILE: 'cluster',
      ...(this.redisCluster
        ? { MQCHAT_REDIS_CLUSTER_NODES: this.redisCluster.seeds }
        : this.sentinel ? { MQCHAT_REDIS_SENTINELS: this.sentinel.seeds } : { MQCHAT_REDIS_URL: this.redis.url }),
      MQCHAT_MONGO_URL: this.ferret.url('mqchat'),
      MQCHAT_STREAM_PARTITIONS: '8',
      ...(this.minio ? this.minio.env() : {}),
      ...shape.env
    }
    if (shape.nodeArgs) this.#nodeArgs = shape.nodeArgs
    // The API first: it creates the collections' indexes before the others race to.
    this.api = await this.node('api', 'api-1').start()
    this.brokers = await Promise.all(Array.from({ length: shape.brokers ?? 2 }, (_, i) => this.node('broker', `broker-${i + 1}`).start()))
    this.workers = await Promise.all(Array.from({ length: shape.workers ?? 2 }, (_, i) => this.node('bridge', `bridge-${i + 1}`).start()))
    return this
  }

  /** The Redis processes: the one server, every node of the Redis Cluster, or the Sentinel set's servers. */
  redisProcesses (): ChildProcess[] {
    const all = this.redisCluster ? this.redisCluster.nodes.map((n) => n.proc) : this.sentinel ? this.sentinel.servers.map((s) => s.proc) : [this.redis.proc]
    return all.filter((p): p is ChildProcess => p !== undefined)
  }

  /** A URL of the Redis that takes writes now (the current master under Sentinel; not for Redis Cluster). */
  async redisUrl (): Promise<string> {
    return this.sentinel ? (await this.sentinel.currentMaster()).url : this.redis.url
  }

  /** A new mqchat process of this cluster (not started). */
  node (role: 'broker' | 'bridge' | 'api', nodeId: string, env: Record<string, string> = {}): TestServer {
    return new TestServer({ ...this.#env, MQCHAT_ROLE: role, MQCHAT_NODE_ID: nodeId, ...env }, undefined, this.#nodeArgs(nodeId))
  }

  /** Every process's log, for failure messages. */
  logs (): string {
    return [this.api, ...this.brokers, ...this.workers].filter(Boolean).map((s) => `--- ${s.env.MQCHAT_NODE_ID}\n${s.log.slice(-3000)}`).join('\n')
  }

  async stop (): Promise<void> {
    await Promise.all([...this.brokers, ...this.workers, this.api].filter(Boolean).map((s) => s.dispose()))
    await Promise.all([this.redis.destroy(), this.redisCluster?.destroy(), this.sentinel?.destroy(), this.ferret.destroy(), this.minio?.destroy()])
  }
}
