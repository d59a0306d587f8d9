// The brokers a benchmark runs against, each started fresh on loopback and
// stopped by its pid: mqchat (local profile, chat ACL, limits raised so the
// benchmark measures the server rather than its rate limits), Debian's
// Mosquitto and bare aedes (the references).
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspectArgs } from './heap.js'
import { ROOT, startMosquitto, startMqchat, stopProcess } from '../mosquitto-compat-tests/src/targets.js'

export type TargetName = 'mqchat' | 'mqchat-cluster' | 'mosquitto' | 'aedes'

export interface BenchTarget {
  name: TargetName
  version: string
  host: string
  port: number
  /** The broker receivers connect to: in the cluster, the second broker, so messages cross brokers. */
  receiverPort?: number
  pid: number
  /** Every process of the target (the cluster's brokers, bridge workers, API, Redis, FerretDB). */
  /** `tree`: the process and its children (PostgreSQL's backends). */
  processes?: Array<{ name: string, pid: number, tree?: boolean, log?: () => string }>
  /** Broker processes whose memory the connections scenario reports one by one. */
  brokers?: Array<{ name: string, pid: number, port: number, inspectorPort: number }>
  /** mqchat only. */
  httpUrl?: string
  /** The cluster's Redis, for its command counts (bench/redis-commands.ts). */
  redisUrl?: string
  /** The local server's or bare aedes' inspector port, for its heap after a forced GC (bench/heap.ts); the cluster's brokers have theirs in `brokers`. */
  inspectorPort?: number
  /** mqchat: the server's recent log lines (every node's in the cluster), for a scenario that fails. */
  logs?: () => string
  stop: () => Promise<void>
}

export const MQCHAT_BENCH_ENV: Record<string, string> = {
  MQCHAT_PUBLISH_RATE: '100000',
  MQCHAT_PUBLISH_BURST: '100000',
  MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR: '100000',
  // Every bench client connects from 127.0.0.1, thousands at once.
  MQCHAT_MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: '1000000',
  MQCHAT_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '1000000',
  MQCHAT_OTP_REQUESTS_PER_PHONE_PER_HOUR: '100',
  // The scenarios open hundreds of chats from a few users and name members by phone.
  MQCHAT_GROUPS_PER_HOUR: '100000',
  MQCHAT_DIRECT_CHATS_PER_HOUR: '100000',
  MQCHAT_PHONE_LOOKUPS_PER_HOUR: '1000000',
  MQCHAT_PHONE_LOOKUPS_PER_DAY: '1000000',
  MQCHAT_MAX_QUEUE: '20000',
  MQCHAT_PRESENCE_COALESCE_MS: '3000',
  MQCHAT_LOG_LEVEL: 'warn'
}

/** The cluster nodes the profiled run profiles. */
export const PROFILED_NODES = ['broker-1', 'bridge-1']

const cpuProf = (dir: string): string[] => ['--cpu-prof', `--cpu-prof-dir=${dir}`]

/**
 * `profileDir`: mqchat writes a V8 CPU profile there when it stops (node
 * --cpu-prof); in the cluster, each of PROFILED_NODES in a directory of its own name.
 */
export async function startBenchTarget (name: TargetName, profileDir?: string): Promise<BenchTarget> {
  if (name === 'mqchat-cluster') return startCluster(profileDir)
  if (name === 'mqchat') {
    const inspector = await inspectArgs()
    const t = await startMqchat('auth', MQCHAT_BENCH_ENV, [...(profileDir ? cpuProf(profileDir) : []), ...inspector.args])
    return { name, version: t.version, host: t.host, port: t.port, pid: t.pid!, httpUrl: t.httpUrl, inspectorPort: inspector.port, stop: t.stop }
  }
  if (name === 'mosquitto') {
    const t = await startMosquitto('open')
    return { name, version: t.version, host: t.host, port: t.port, pid: t.pid!, stop: t.stop }
  }
  const inspector = await inspectArgs()
  // stderr is the inspector's chatter ("Debugger listening…"), dropped.
  const proc = spawn(process.execPath, [...inspector.args, join(ROOT, 'dist/bench/aedes-bare.js')], { stdio: ['ignore', 'pipe', 'ignore'] })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bare aedes did not start within 10 s')), 10_000)
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening (\d+)/.exec(out)
      if (m) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bare aedes exited with ${code}`)) })
  })
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  return {
    name,
    version: `aedes ${pkg.dependencies.aedes} (memory persistence, no hooks)`,
    host: '127.0.0.1',
    port,
    pid: proc.pid!,
    inspectorPort: inspector.port,
    stop: () => stopProcess(proc)
  }
}

/**
 * The cluster profile on loopback, as the cluster tests run it: Redis,
 * FerretDB, the API, 2 brokers and 2 bridge workers, each its own process.
 * Senders connect to broker 1 and receivers to broker 2.
 */
async function startCluster (profileDir?: string): Promise<BenchTarget> {
  const { TestCluster } = await import('../test/helpers/cluster.js')
  const c = new TestCluster()
  // The brokers are inspected for their heap after a forced GC, as the local server is.
  const inspectors = new Map([['broker-1', await inspectArgs()], ['broker-2', await inspectArgs()]])
  const nodeArgs = (nodeId: string): string[] => [...(profileDir && PROFILED_NODES.includes(nodeId) ? cpuProf(join(profileDir, nodeId)) : []), ...(inspectors.get(nodeId)?.args ?? [])]
  try {
    await c.start({ brokers: 2, workers: 2, env: MQCHAT_BENCH_ENV, nodeArgs })
  } catch (err) { await c.stop(); throw err }
  const nodes = [c.api, ...c.brokers, ...c.workers]
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, dependencies: Record<string, string> }
  return {
    name: 'mqchat-cluster',
    version: `mqchat ${pkg.version} cluster: 2 brokers, 2 bridge workers, API, Redis, FerretDB on PostgreSQL`,
    host: '127.0.0.1',
    port: c.brokers[0]!.ports.mqtt,
    receiverPort: c.brokers[1]!.ports.mqtt,
    pid: c.brokers[0]!.proc!.pid!,
    processes: [...nodes.map((n) => ({ name: n.env.MQCHAT_NODE_ID!, pid: n.proc!.pid!, log: () => n.log })), { name: 'redis', pid: c.redis.proc!.pid! }, { name: 'ferretdb', pid: c.ferret.proc!.pid! }, { name: 'postgres', pid: c.ferret.postgres!.proc!.pid!, tree: true }],
    brokers: c.brokers.map((b, i) => ({ name: `broker-${i + 1}`, pid: b.proc!.pid!, port: b.ports.mqtt, inspectorPort: inspectors.get(`broker-${i + 1}`)!.port })),
    httpUrl: c.api.url,
    redisUrl: c.redis.url,
    logs: () => c.logs(),
    stop: () => c.stop()
  }
}

/** CPU seconds of every process of a target. */
export function targetCpuSeconds (t: BenchTarget): number {
  return (t.processes ?? [{ pid: t.pid }]).reduce((a, p) => a + processCpuSeconds(p), 0)
}

/** CPU seconds of one of a target's processes, its children included for a `tree`. */
export function processCpuSeconds (p: { pid: number, tree?: boolean }): number {
  return p.tree === true ? treeCpuSeconds(p.pid) : cpuSeconds(p.pid)
}

function statFields (pid: number): string[] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return f.slice(f.lastIndexOf(')') + 2).split(' ')
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds (pid: number): number {
  const fields = statFields(pid)
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** CPU seconds of a process, of its children that ended (waited for) and of those still running. */
function treeCpuSeconds (pid: number): number {
  const fields = statFields(pid)
  let ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean)) {
    try {
      const c = statFields(Number(child))
      ticks += Number(c[11]) + Number(c[12])
    } catch { /* ended meanwhile: counted in the parent's children time from now on */ }
  }
  return ticks / 100
}

/** Resident memory of a process in bytes, from /proc. */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}
