// Scenarios 1 and 2: 1:1 chat. N sender devices each write to their own
// receiver device, QoS 1. On mqchat each message is sequenced, stored, fanned
// out to the receiver's inbox and acknowledged to the sender's inbox; on the
// references the same publishes go straight to a subscriber of the chat
// topic. First the maximum sustained rate (closed loop), then latency at 25,
// 50 and 75 % of it (open loop), end to end: publish → receiver.
import { describeByProcess, nodeCommandCounts, perMessageByProcess, type CommandsByProcess } from '../store-commands.js'
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import * as hdr from 'hdr-histogram-js'
import { ROOT } from '../../mosquitto-compat-tests/src/targets.js'
import { directChat, pool, registerUsers } from '../fixtures.js'
import { commandCalls, perMessage, type CommandsPerMessage } from '../redis-commands.js'
import { processCpuSeconds, targetCpuSeconds, type BenchTarget } from '../targets.js'
import type { FromWorker, PairSpec, ToWorker } from '../worker.js'
import { DRAIN_MS } from '../client.js'

export interface PairsOptions {
  pairs: number
  workers: number
  payloadBytes: number
  durationMs: number
  warmupMs: number
  window: number
  /** The clients' MQTT version: 4 (3.1.1, the default) or 5. */
  mqttVersion?: 4 | 5
}

export interface LatencyPoint { load: number, targetRate: number, achievedRate: number, p50Ms: number, p99Ms: number, p999Ms: number, behind: number }

export interface PairsResult {
  maxRate: number
  latency: LatencyPoint[]
  /** CPU used per second of the maximum-rate run, in cores (1 = one core busy). */
  serverCores: number
  generatorCores: number
  /** Cluster: each process's share of the server CPU during the maximum-rate run. */
  cpuByProcess?: Array<{ name: string, cores: number }>
  /** The cluster: Redis commands per delivered message during the maximum-rate run. */
  redisCommands?: CommandsPerMessage
  /** Commands each cluster process sent, per delivered message (bench/store-commands.ts). */
  mongoByProcess?: CommandsByProcess
  redisByProcess?: CommandsByProcess
}

async function specs (t: BenchTarget, n: number, protocolVersion: 4 | 5): Promise<PairSpec[]> {
  const local = (i: number): string => `127.0.0.${2 + (i % 50)}`
  if (t.httpUrl === undefined) {
    return Array.from({ length: n }, (_, i) => ({
      sender: { host: t.host, port: t.port, clientId: `bench-s-${i}`, localAddress: local(i), protocolVersion },
      receiver: { host: t.host, port: t.port, clientId: `bench-r-${i}`, subscribe: `chat/pair-${i}/msg`, localAddress: local(i), protocolVersion },
      topic: `chat/pair-${i}/msg`
    }))
  }
  const users = await registerUsers(t.httpUrl!, 2 * n)
  const chats = await pool(Array.from({ length: n }, (_, i) => i), 16, (i) => directChat(t.httpUrl!, users[2 * i]!, users[2 * i + 1]!))
  return chats.map((chat, i) => {
    const a = users[2 * i]!
    const b = users[2 * i + 1]!
    return {
      sender: { host: t.host, port: t.port, clientId: a.deviceId, username: a.deviceId, password: a.token, clean: false, subscribe: `dev/${a.deviceId}/inbox`, localAddress: local(i), protocolVersion },
      receiver: { host: t.host, port: t.receiverPort ?? t.port, clientId: b.deviceId, username: b.deviceId, password: b.token, clean: false, subscribe: `dev/${b.deviceId}/inbox`, localAddress: local(i), protocolVersion },
      topic: `chat/${chat}/msg`
    }
  })
}

class Worker {
  readonly proc: ChildProcess
  private queue: Array<(m: FromWorker) => void> = []
  constructor () {
    this.proc = fork(join(ROOT, 'dist/bench/worker.js'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.proc.on('message', (m: FromWorker) => {
      if (m.type === 'error') throw new Error(`bench worker: ${m.message}`)
      this.queue.shift()?.(m)
    })
  }

  ask (m: ToWorker, timeoutMs: number): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench worker: no answer to ${m.type} within ${timeoutMs} ms`)), timeoutMs)
      this.queue.push((r) => { clearTimeout(timer); resolve(r) })
      this.proc.send(m)
    })
  }

  stop (): void { this.proc.send({ type: 'stop' }); setTimeout(() => this.proc.kill('SIGKILL'), 2000).unref() }
}

export async function chatPairs (t: BenchTarget, o: PairsOptions, log: (s: string) => void): Promise<PairsResult> {
  const all = await specs(t, o.pairs, o.mqttVersion ?? 4)
  const workers = Array.from({ length: o.workers }, () => new Worker())
  try {
    await Promise.all(workers.map((w, k) => w.ask({ type: 'setup', pairs: all.filter((_, i) => i % o.workers === k), payloadBytes: o.payloadBytes }, 120_000)))
    const runAll = async (m: ToWorker): Promise<Array<Extract<FromWorker, { type: 'result' }>>> =>
      await Promise.all(workers.map((w) => w.ask(m, DRAIN_MS + 60_000 + (m.type === 'run' ? m.durationMs : 0)))) as Array<Extract<FromWorker, { type: 'result' }>>
    // CPU is read around the maximum-rate run only: that is where one side saturates.
    // The run includes the wait for its last messages to arrive: CPU is divided by the whole time.
    const calls0 = t.redisUrl !== undefined ? await commandCalls(t.redisUrl) : undefined
    const nodes0 = await nodeCommandCounts(t)
    const c0 = targetCpuSeconds(t)
    const each0 = t.processes?.map((p) => processCpuSeconds(p))
    const w0 = performance.now()
    const closed = await runAll({ type: 'run', mode: 'closed', window: o.window, durationMs: o.durationMs, warmupMs: o.warmupMs })
    const elapsedS = (performance.now() - w0) / 1000
    const serverCores = (targetCpuSeconds(t) - c0) / elapsedS
    const cpuByProcess = t.processes?.map((p, i) => ({ name: p.name, cores: Math.round(100 * (processCpuSeconds(p) - each0![i]!) / elapsedS) / 100 }))
    if (cpuByProcess) log(`${t.name}: CPU by process: ${cpuByProcess.map((p) => `${p.name} ${p.cores}`).join(', ')}`)
    const generatorCores = closed.reduce((a, r) => a + r.cpuMs, 0) / 1000 / elapsedS
    const maxRate = closed.reduce((a, r) => a + r.measured, 0) / ((o.durationMs - o.warmupMs) / 1000)
    // As CPU: the run's commands per second over the rate (every message reaches one receiver).
    const redisCommands = calls0 !== undefined ? perMessage(calls0, await commandCalls(t.redisUrl!), maxRate * elapsedS) : undefined
    const nodes1 = nodes0 !== undefined ? await nodeCommandCounts(t) : undefined
    const mongoByProcess = nodes1 !== undefined ? perMessageByProcess(nodes0!, nodes1, 'mongo', maxRate * elapsedS) : undefined
    const redisByProcess = nodes1 !== undefined ? perMessageByProcess(nodes0!, nodes1, 'redis', maxRate * elapsedS) : undefined
    if (mongoByProcess) log(`${t.name}: MongoDB commands per delivered message: ${mongoByProcess.total.toFixed(2)} — ${describeByProcess(mongoByProcess)}`)
    if (redisByProcess) log(`${t.name}: Redis commands sent per delivered message (a script is one): ${redisByProcess.total.toFixed(2)} — ${describeByProcess(redisByProcess)}`)
    if (redisCommands) log(`${t.name}: Redis commands per delivered message: ${redisCommands.total.toFixed(1)} (${redisCommands.byCommand.slice(0, 20).map((c) => `${c.command} ${c.perMessage.toFixed(2)}`).join(', ')})`)
    log(`${t.name}: max ${Math.round(maxRate)} msg/s (server ${serverCores.toFixed(2)} cores, generator ${generatorCores.toFixed(2)})`)
    const latency: LatencyPoint[] = []
    for (const load of [0.25, 0.5, 0.75]) {
      const rate = maxRate * load
      const rs = await runAll({ type: 'run', mode: 'open', rate: rate / o.workers, durationMs: o.durationMs, warmupMs: o.warmupMs })
      const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })
      for (const r of rs) h.add(hdr.decodeFromCompressedBase64(r.histogram))
      const point = {
        load,
        targetRate: Math.round(rate),
        achievedRate: Math.round(rs.reduce((a, r) => a + r.measured, 0) / ((o.durationMs - o.warmupMs) / 1000)),
        p50Ms: h.getValueAtPercentile(50) / 1000,
        p99Ms: h.getValueAtPercentile(99) / 1000,
        p999Ms: h.getValueAtPercentile(99.9) / 1000,
        behind: rs.reduce((a, r) => a + r.behind, 0)
      }
      log(`${t.name}: at ${load * 100} % (${point.targetRate} msg/s): p50 ${point.p50Ms} ms, p99 ${point.p99Ms} ms, p99.9 ${point.p999Ms} ms`)
      latency.push(point)
    }
    return { maxRate: Math.round(maxRate), latency, serverCores, generatorCores, ...(cpuByProcess ? { cpuByProcess } : {}), ...(redisCommands ? { redisCommands } : {}), ...(mongoByProcess ? { mongoByProcess } : {}), ...(redisByProcess ? { redisByProcess } : {}) }
  } finally {
    for (const w of workers) w.stop()
  }
}
