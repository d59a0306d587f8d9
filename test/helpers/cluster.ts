// A whole cluster-profile deployment on loopback: Redis, FerretDB, optionally
// MinIO, and mqchat processes in the broker, bridge and api roles, each its
// own child process with its own node id.
import type { ChildProcess } from 'node:child_process'
import { TestServer } from './server.js'
import { FerretDb, Minio, RedisCluster, RedisServer } from './services.js'

export interface ClusterShape {
  brokers?: number
  workers?: number
  s3?: boolean
  /** A 3-master Redis Cluster (MQCHAT_REDIS_CLUSTER_NODES) instead of one Redis server. */
  redisCluster?: boolean
  env?: Record<string, string>
  /** Flags for node itself, per node id (the benchmarks profile some nodes with --cpu-prof). */
  nodeArgs?: (nodeId: string) => string[]
}

export class TestCluster {
  readonly redis = new RedisServer()
  readonly ferret = new FerretDb()
  redisCluster: RedisCluster | undefined
  minio: Minio | undefined
  brokers: TestServer[] = []
  workers: TestServer[] = []
  api!: TestServer
  #env: Record<string, string> = {}
  #nodeArgs: (nodeId: string) => string[] = () => []

  async start (shape: ClusterShape = {}): Promise<this> {
    if (shape.redisCluster === true) this.redisCluster = new RedisCluster(3)
    await Promise.all([this.redisCluster ? this.redisCluster.start() : this.redis.start(), this.ferret.start()])
    if (shape.s3 === true) this.minio = await new Minio().start()
    this.#env = {
      MQCHAT_PROFILE: 'cluster',
      ...(this.redisCluster ? { MQCHAT_REDIS_CLUSTER_NODES: this.redisCluster.seeds } : { MQCHAT_REDIS_URL: this.redis.url }),
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

  /** The Redis processes: the one server, or every node of the Redis Cluster. */
  redisProcesses (): ChildProcess[] {
    const all = this.redisCluster ? this.redisCluster.nodes.map((n) => n.proc) : [this.redis.proc]
    return all.filter((p): p is ChildProcess => p !== undefined)
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
    await Promise.all([this.redis.destroy(), this.redisCluster?.destroy(), this.ferret.destroy(), this.minio?.destroy()])
  }
}
