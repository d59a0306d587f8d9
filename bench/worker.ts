// A load-generator process (forked by bench/main.ts). It owns some sender →
// receiver pairs, both ends in this process, so a message's latency is read
// on one clock. Closed loop: each sender keeps `window` QoS 1 publishes
// not yet received by its receiver (the maximum-throughput mode; paced by
// delivery, not by PUBACK, because in the cluster profile a PUBACK means
// "in the chat stream" and pacing by it would only grow a backlog). Open loop: the worker sends
// at a fixed rate (the latency-under-load mode). It reports counts, a latency
// histogram (HdrHistogram, µs) and its own CPU time.
import * as hdr from 'hdr-histogram-js'
import { BenchClient, DRAIN_MS, EnvelopeTemplate, nowUs, sentAt, type ClientOptions } from './client.js'

export interface PairSpec {
  sender: ClientOptions & { subscribe?: string }
  receiver: ClientOptions & { subscribe: string }
  /** The topic the sender publishes to. */
  topic: string
}

export type ToWorker =
  | { type: 'setup', pairs: PairSpec[], payloadBytes: number }
  | { type: 'run', mode: 'closed', window: number, durationMs: number, warmupMs: number }
  | { type: 'run', mode: 'open', rate: number, durationMs: number, warmupMs: number }
  | { type: 'stop' }

export type FromWorker =
  | { type: 'ready' }
  | { type: 'result', sent: number, received: number, measured: number, measuredMs: number, behind: number, histogram: string, cpuMs: number }
  | { type: 'error', message: string }

interface Pair { sender: BenchClient, receiver: BenchClient, template: EnvelopeTemplate, inflight: number, undelivered: number }

const send = (m: FromWorker): void => { process.send!(m) }
let pairs: Pair[] = []
let counter = 0

async function setup (specs: PairSpec[], payloadBytes: number): Promise<void> {
  pairs = []
  for (const s of specs) {
    const sender = new BenchClient(s.sender)
    const receiver = new BenchClient(s.receiver)
    await Promise.all([sender.connect(), receiver.connect()])
    await receiver.subscribe(s.receiver.subscribe, 1)
    if (s.sender.subscribe) await sender.subscribe(s.sender.subscribe, 1)
    pairs.push({ sender, receiver, template: new EnvelopeTemplate(s.topic, payloadBytes, s.sender.protocolVersion), inflight: 0, undelivered: 0 })
  }
}

async function run (m: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })
  const cpu0 = process.cpuUsage()
  const start = nowUs()
  const measureFrom = start + m.warmupMs * 1000
  const end = start + m.durationMs * 1000
  let running = true
  let sent = 0
  let received = 0
  let measured = 0
  let behind = 0
  const sendOne = (p: Pair): void => {
    p.inflight++
    p.undelivered++
    sent++
    p.sender.write(p.template.make(++counter, p.sender.id(), nowUs()))
  }
  for (const p of pairs) {
    p.inflight = 0
    p.undelivered = 0
    p.receiver.onPublish = (pk) => {
      const t0 = sentAt(pk.payload as Buffer)
      if (t0 < 0) return
      received++
      p.undelivered--
      if (running && m.mode === 'closed') sendOne(p)
      const now = nowUs()
      if (now >= measureFrom && now <= end) {
        measured++
        histogram.recordValue(Math.max(1, Math.round(now - t0)))
      }
    }
    p.sender.onPuback = () => { p.inflight-- }
  }
  let timer: NodeJS.Timeout | undefined
  if (m.mode === 'closed') {
    for (const p of pairs) for (let i = 0; i < m.window; i++) sendOne(p)
  } else {
    // Every 5 ms, send what the rate says is due, round robin over senders
    // with fewer than 1000 unacknowledged publishes; what cannot go is counted.
    let rr = 0
    timer = setInterval(() => {
      const due = Math.floor(m.rate * (nowUs() - start) / 1e6) - sent - behind
      for (let i = 0; i < due; i++) {
        let tries = 0
        while (tries < pairs.length && pairs[rr % pairs.length]!.inflight >= 1000) { rr++; tries++ }
        if (tries === pairs.length) { behind += due - i; break }
        sendOne(pairs[rr++ % pairs.length]!)
      }
    }, 5)
  }
  await new Promise((r) => setTimeout(r, m.durationMs))
  running = false
  clearInterval(timer)
  // Let what is in flight arrive (bounded), so the next run starts quiet.
  const until = Date.now() + DRAIN_MS
  while (Date.now() < until && pairs.some((p) => p.inflight > 0 || p.undelivered > 0)) await new Promise((r) => setTimeout(r, 20))
  await new Promise((r) => setTimeout(r, 200))
  const cpu = process.cpuUsage(cpu0)
  send({ type: 'result', sent, received, measured, measuredMs: m.durationMs - m.warmupMs, behind, histogram: hdr.encodeIntoCompressedBase64(histogram), cpuMs: (cpu.user + cpu.system) / 1000 })
}

process.on('message', (m: ToWorker) => {
  const go = async (): Promise<void> => {
    if (m.type === 'setup') { await setup(m.pairs, m.payloadBytes); send({ type: 'ready' }) } else if (m.type === 'run') await run(m)
    else {
      for (const p of pairs) { p.sender.end(); p.receiver.end() }
      setTimeout(() => process.exit(0), 200)
    }
  }
  go().catch((err: Error) => send({ type: 'error', message: err.stack ?? err.message }))
})
