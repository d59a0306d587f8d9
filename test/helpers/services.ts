// Real servers the tests talk to, each a child process on free loopback
// ports with its data in a temporary directory, stopped by its own pid:
// Redis (Debian's redis-server; also as a Redis Cluster or a Sentinel set),
// PostgreSQL (Debian's, FerretDB's backend), FerretDB (the MongoDB wire
// protocol; built by `npm test` into ~/.cache/mqchat/bin) and MinIO (S3,
// built the same way).
import { spawn, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { freePort, waitFor } from './server.js'

export const cachedBinary = (name: string, envVar: string): string =>
  process.env[envVar] ?? join(homedir(), '.cache', 'mqchat', 'bin', name)

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** One server process; start() may be called again after stop() or kill() (same port, same data). */
export abstract class ChildService {
  proc: ChildProcess | undefined
  port = 0
  readonly dir: string
  #output = ''

  constructor (readonly name: string) {
    this.dir = mkdtempSync(join(tmpdir(), `mqchat-${name}-`))
  }

  protected abstract command (): { bin: string, args: string[], env?: Record<string, string>, uid?: number, gid?: number }
  protected ready (): Promise<boolean> { return accepts(this.port) }

  /** The last lines the process wrote, for failure messages. */
  get output (): string { return this.#output.slice(-4000) }

  async start (): Promise<this> {
    if (this.port === 0) this.port = await freePort()
    const { bin, args, env, uid, gid } = this.command()
    const p = spawn(bin, args, { cwd: this.dir, env: { PATH: process.env.PATH ?? '', HOME: this.dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'], uid, gid })
    this.proc = p
    const keep = (b: Buffer): void => { this.#output = (this.#output + b.toString()).slice(-20_000) }
    p.stdout?.on('data', keep)
    p.stderr?.on('data', keep)
    p.on('error', (err) => keep(Buffer.from(`spawn failed: ${err.message}\n`)))
    try {
      await waitFor(`${this.name} to answer on port ${this.port}`, async () => {
        if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${this.name} exited (${String(p.exitCode ?? p.signalCode)}):\n${this.output}`)
        return this.ready()
      }, 60_000)
    } catch (err) {
      await this.stopProcess('SIGKILL')
      throw err
    }
    return this
  }

  protected async stopProcess (signal: NodeJS.Signals): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise((resolve) => p.once('exit', resolve))
    p.kill(signal)
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  /** Stops the process gracefully, keeping its data for a restart. */
  stop (): Promise<void> { return this.stopProcess('SIGTERM') }
  /** Kills the process without warning (SIGKILL), keeping its data. */
  kill (): Promise<void> { return this.stopProcess('SIGKILL') }

  /** Stops the process and removes its data. */
  async destroy (): Promise<void> {
    await this.stopProcess('SIGTERM')
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Debian's redis-server, with AOF on and fsync on every write (a replica of `replicaOf`'s port when given). */
export class RedisServer extends ChildService {
  constructor (readonly replicaOf = 0) { super('redis') }
  get url (): string { return `redis://127.0.0.1:${this.port}` }
  protected override command (): { bin: string, args: string[] } {
    return {
      bin: 'redis-server',
      args: ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes',
        ...(this.replicaOf > 0 ? ['--replicaof', '127.0.0.1', String(this.replicaOf)] : [])]
    }
  }

  protected override async ready (): Promise<boolean> {
    // Redis accepts connections while it still loads the AOF; wait for PONG.
    if (!await accepts(this.port)) return false
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1')
      s.once('connect', () => s.write('PING\r\n'))
      s.once('data', (b) => { s.destroy(); resolve(b.toString().startsWith('+PONG')) })
      s.once('error', () => resolve(false))
    })
  }
}

/** One master of a Redis Cluster: redis-server in cluster mode, with its bus on a port of its own (a long node timeout: tests pause every node at once with SIGSTOP). */
export class RedisClusterNode extends RedisServer {
  busPort = 0
  override async start (): Promise<this> {
    if (this.busPort === 0) this.busPort = await freePort()
    return await super.start()
  }

  protected override command (): { bin: string, args: string[] } {
    const plain = super.command()
    return { bin: plain.bin, args: [...plain.args, '--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, 'nodes.conf'), '--cluster-port', String(this.busPort), '--cluster-node-timeout', '30000'] }
  }
}

/** A real Redis Cluster of `masters` masters (no replicas), created with `redis-cli --cluster create`. */
export class RedisCluster {
  readonly nodes: RedisClusterNode[]
  constructor (masters = 3) { this.nodes = Array.from({ length: masters }, () => new RedisClusterNode()) }

  /** MQCHAT_REDIS_CLUSTER_NODES. */
  get seeds (): string { return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',') }

  async start (): Promise<this> {
    await Promise.all(this.nodes.map(async (n) => await n.start()))
    const created = await run('redis-cli', ['--cluster', 'create', ...this.nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'])
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.output}`)
    // Every node must see every slot served before a client is told the cluster is there.
    await waitFor('the Redis Cluster to be ok on every node', async () => {
      const states = await Promise.all(this.nodes.map(async (n) => (await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])).output))
      return states.every((s) => s.includes('cluster_state:ok'))
    }, 30_000)
    return this
  }

  async destroy (): Promise<void> { await Promise.all(this.nodes.map(async (n) => await n.destroy())) }
}

/** One Redis Sentinel (redis-server --sentinel) watching `master` as "mymaster"; it rewrites its configuration file as it learns. */
export class RedisSentinel extends RedisServer {
  constructor (readonly master: number, readonly quorum: number) { super() }
  protected override command (): { bin: string, args: string[] } {
    const conf = join(this.dir, 'sentinel.conf')
    writeFileSync(conf, [
      `port ${this.port}`, 'bind 127.0.0.1', `dir ${this.dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${this.master} ${this.quorum}`,
      // Quick enough for a test; production values are in seconds (README).
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 10000',
      'sentinel parallel-syncs mymaster 1'
    ].join('\n') + '\n')
    return { bin: 'redis-server', args: [conf, '--sentinel'] }
  }
}

/** A Sentinel-managed Redis: one master, one replica, three sentinels (quorum 2). */
export class RedisSentinelSet {
  readonly master = new RedisServer()
  replica!: RedisServer
  sentinels: RedisSentinel[] = []

  /** MQCHAT_REDIS_SENTINELS. */
  get seeds (): string { return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',') }
  /** Every Redis server (not the sentinels), master first as started. */
  get servers (): RedisServer[] { return [this.master, this.replica] }

  async start (): Promise<this> {
    await this.master.start()
    this.replica = await new RedisServer(this.master.port).start()
    await waitFor('the replica to be in sync with the master', async () => (await run('redis-cli', ['-p', String(this.replica.port), 'info', 'replication'])).output.includes('master_link_status:up'), 30_000)
    this.sentinels = await Promise.all([1, 2, 3].map(async () => await new RedisSentinel(this.master.port, 2).start()))
    await waitFor('every sentinel to know the replica and the other sentinels', async () => {
      const states = await Promise.all(this.sentinels.map(async (s) => (await run('redis-cli', ['-p', String(s.port), 'info', 'sentinel'])).output))
      return states.every((st) => st.includes('slaves=1,sentinels=3'))
    }, 30_000)
    return this
  }

  /** The port the sentinels name as master now (asked of the first that answers). */
  async masterPort (): Promise<number> {
    for (const s of this.sentinels) {
      const r = await run('redis-cli', ['-p', String(s.port), 'sentinel', 'get-master-addr-by-name', 'mymaster'])
      const port = Number(r.output.trim().split('\n')[1])
      if (r.code === 0 && port > 0) return port
    }
    throw new Error('no sentinel answered')
  }

  /** The server the sentinels name as master now. */
  async currentMaster (): Promise<RedisServer> {
    const port = await this.masterPort()
    const s = this.servers.find((x) => x.port === port)
    if (!s) throw new Error(`the sentinels name an unknown master on port ${port}`)
    return s
  }

  async destroy (): Promise<void> { await Promise.all([...this.sentinels, this.master, this.replica].filter(Boolean).map(async (n) => await n.destroy())) }
}

function run (bin: string, args: string[], as: { uid?: number, gid?: number } = {}): Promise<{ code: number, output: string }> {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...as })
    let output = ''
    p.stdout.on('data', (b: Buffer) => { output += b.toString() })
    p.stderr.on('data', (b: Buffer) => { output += b.toString() })
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000)
    p.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, output }) })
    p.on('error', (err) => { clearTimeout(timer); resolve({ code: -1, output: err.message }) })
  })
}

/** Debian's PostgreSQL (the newest installed major), a cluster of its own in a temporary directory; as `nobody` when run as root, which PostgreSQL refuses. */
export class Postgres extends ChildService {
  readonly #as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
  #initialised = false
  constructor () { super('postgres') }
  /** The database FerretDB keeps its data in (initdb's own `postgres` database). */
  get url (): string { return `postgres://mqchat@127.0.0.1:${this.port}/postgres` }

  static bin (name: string): string {
    const root = '/usr/lib/postgresql'
    const majors = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
    if (majors.length === 0) throw new Error(`no PostgreSQL under ${root} (Debian's postgresql package; npm test installs it)`)
    return join(root, majors[0], 'bin', name)
  }

  override async start (): Promise<this> {
    if (!this.#initialised) {
      if (this.#as.uid !== undefined) chownSync(this.dir, this.#as.uid, this.#as.gid)
      const r = await run(Postgres.bin('initdb'), ['-D', join(this.dir, 'data'), '-A', 'trust', '-U', 'mqchat', '--no-sync'], this.#as)
      if (r.code !== 0) throw new Error(`initdb failed:\n${r.output}`)
      this.#initialised = true
    }
    return await super.start()
  }

  /** A graceful stop is PostgreSQL's fast shutdown (SIGINT): its default (SIGTERM) waits for every client to leave. */
  protected override async stopProcess (signal: NodeJS.Signals): Promise<void> {
    await super.stopProcess(signal === 'SIGTERM' ? 'SIGINT' : signal)
  }

  protected override command (): { bin: string, args: string[], uid?: number, gid?: number } {
    return { bin: Postgres.bin('postgres'), args: ['-D', join(this.dir, 'data'), '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1'], ...this.#as }
  }
}

/**
 * FerretDB 1.x: a server speaking the MongoDB wire protocol, on its SQLite
 * backend, or on PostgreSQL when given one (the cluster tests and the bench:
 * bench/README.md § item 8 measured it 1.8 times faster there).
 */
export class FerretDb extends ChildService {
  constructor (readonly postgres?: Postgres) { super('ferretdb') }
  url (database: string): string { return `mongodb://127.0.0.1:${this.port}/${database}` }

  override async start (): Promise<this> {
    if (this.postgres && !this.postgres.proc) await this.postgres.start()
    return await super.start()
  }

  protected override command (): { bin: string, args: string[] } {
    const backend = this.postgres ? ['--handler=postgresql', `--postgresql-url=${this.postgres.url}`] : ['--handler=sqlite', `--sqlite-url=file:${this.dir}/`]
    return {
      bin: cachedBinary('ferretdb', 'MQCHAT_TEST_FERRETDB'),
      args: [...backend, `--listen-addr=127.0.0.1:${this.port}`, '--state-dir', this.dir, '--telemetry=disable', '--log-level=warn', '--debug-addr=-']
    }
  }

  override async destroy (): Promise<void> {
    await super.destroy()
    await this.postgres?.destroy()
  }
}

/** MinIO: an S3 server that enforces signatures and checksums. */
export class Minio extends ChildService {
  readonly accessKey = 'mqchat-test'
  readonly secretKey = 'mqchat-test-secret-key'
  #console = 0
  constructor () { super('minio') }

  get endpoint (): string { return `http://127.0.0.1:${this.port}` }

  protected override command (): { bin: string, args: string[], env: Record<string, string> } {
    return {
      bin: cachedBinary('minio', 'MQCHAT_TEST_MINIO'),
      args: ['server', this.dir, '--address', `127.0.0.1:${this.port}`, '--console-address', `127.0.0.1:${this.#console}`, '--quiet'],
      env: { MINIO_ROOT_USER: this.accessKey, MINIO_ROOT_PASSWORD: this.secretKey, MINIO_BROWSER: 'off' }
    }
  }

  override async start (): Promise<this> {
    if (this.#console === 0) this.#console = await freePort()
    return super.start()
  }

  protected override ready (): Promise<boolean> {
    return fetch(`${this.endpoint}/minio/health/live`).then((r) => r.ok, () => false)
  }

  /** The server settings for mqchat's S3 backend on this MinIO. */
  env (bucket = 'mqchat-media'): Record<string, string> {
    return {
      MQCHAT_MEDIA_BACKEND: 's3',
      MQCHAT_S3_ENDPOINT: this.endpoint,
      MQCHAT_S3_REGION: 'us-east-1',
      MQCHAT_S3_BUCKET: bucket,
      MQCHAT_S3_FORCE_PATH_STYLE: 'true',
      MQCHAT_S3_ACCESS_KEY_ID: this.accessKey,
      MQCHAT_S3_SECRET_ACCESS_KEY: this.secretKey
    }
  }

  override stop (): Promise<void> { return this.destroy() }
}
