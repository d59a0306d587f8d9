// Scenario 5: offline catch-up. A device is offline while `messages` messages
// arrive for it; it reconnects. Measured: from CONNECT to its last message,
// once every message is committed (the sender has its `ack` for each; in the
// cluster that is the chat stream drained, measured separately as drainMs:
// from the last PUBACK to the last ack). Checked: every seq arrives (no
// loss), each once.
import { BenchClient, EnvelopeTemplate } from '../client.js'
import { directChat, registerUsers } from '../fixtures.js'
import type { BenchTarget } from '../targets.js'
import { timedOut } from '../../lib/timeout.js'

export interface CatchupOptions { messages: number, payloadBytes: number }
export interface CatchupResult { messages: number, catchupMs: number, msgPerSec: number, firstMessageMs: number, missing: number, duplicates: number, drainMs?: number }

export async function offlineCatchup (t: BenchTarget, o: CatchupOptions, log: (s: string) => void): Promise<CatchupResult> {
  const [a, b] = await registerUsers(t.httpUrl!, 2, 2_000_000)
  const chat = await directChat(t.httpUrl!, a!, b!)
  const opts = (d: typeof a): ConstructorParameters<typeof BenchClient>[0] => ({ host: t.host, port: t.port, clientId: d!.deviceId, username: d!.deviceId, password: d!.token, clean: false })
  // The receiver's session exists and is subscribed; then it goes away.
  const first = new BenchClient(opts(b))
  await first.connect()
  await first.subscribe(`dev/${b!.deviceId}/inbox`, 1)
  first.end()
  const sender = new BenchClient(opts(a))
  await sender.connect()
  await sender.subscribe(`dev/${a!.deviceId}/inbox`, 1)
  const template = new EnvelopeTemplate(`chat/${chat}/msg`, o.payloadBytes)
  let acked = 0
  let sent = 0
  // The sender's own messages come back to it as `ack` events once committed.
  const committed = new Set<number>()
  let allCommitted: () => void = () => {}
  const drained = new Promise<void>((resolve) => { allCommitted = resolve })
  sender.onPublish = (p) => {
    const m = /"type":"ack".*?"seq":(\d+)/.exec((p.payload as Buffer).toString('latin1', 0, 200))
    if (m) committed.add(Number(m[1]))
    if (committed.size === o.messages) allCommitted()
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`offline catch-up: only ${acked} of ${o.messages} publishes acknowledged in 300 s`)), 300_000)
    const next = (): void => { if (sent < o.messages) sender.write(template.make(++sent, sender.id(), 0)) }
    sender.onPuback = () => { if (++acked === o.messages) { clearTimeout(timer); resolve() } else next() }
    for (let i = 0; i < 50; i++) next()
  })
  const pubacked = performance.now()
  if (await timedOut(drained, 300_000)) throw new Error(`offline catch-up: only ${committed.size} of ${o.messages} messages committed 300 s after their PUBACKs`)
  const drainMs = performance.now() - pubacked
  sender.end()
  // Reconnect and count.
  const seqs = new Map<number, number>()
  let firstAt = 0
  const c = new BenchClient(opts(b))
  const started = performance.now()
  let lastAt = 0
  const done = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 300_000)
    c.onPublish = (p) => {
      const m = /"type":"msg".*?"seq":(\d+)/.exec((p.payload as Buffer).toString('latin1', 0, 120))
      if (!m) return
      if (firstAt === 0) firstAt = performance.now()
      const seq = Number(m[1])
      seqs.set(seq, (seqs.get(seq) ?? 0) + 1)
      if (seqs.size === o.messages) { lastAt = performance.now(); clearTimeout(timer); resolve(true) }
    }
  })
  await c.connect()
  const complete = await done
  c.end()
  let missing = 0
  for (let s = 1; s <= o.messages; s++) if (!seqs.has(s)) missing++
  const duplicates = [...seqs.values()].reduce((x, n) => x + n - 1, 0)
  const catchupMs = complete ? lastAt - started : NaN
  const r = { messages: o.messages, catchupMs, msgPerSec: Math.round(o.messages / (catchupMs / 1000)), firstMessageMs: firstAt - started, missing, duplicates, drainMs: Math.round(drainMs) }
  log(`${t.name}: ${o.messages} queued messages caught up in ${catchupMs.toFixed(0)} ms (${r.msgPerSec} msg/s); missing ${missing}, duplicates ${duplicates}; committed ${r.drainMs} ms after the last PUBACK`)
  return r
}
