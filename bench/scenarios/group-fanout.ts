// Scenario 3: group fan-out. A group of `members` users, one device each, all
// online; one member sends `messages` messages, one after another completes.
// For each message: the time until every other member's device has it (the
// fan-out completion), and every single delivery's latency.
import * as hdr from 'hdr-histogram-js'
import { BenchClient, EnvelopeTemplate, nowUs, sentAt } from '../client.js'
import { group, pool, registerUsers } from '../fixtures.js'
import type { BenchTarget } from '../targets.js'

export interface FanoutOptions { members: number, messages: number, payloadBytes: number }
export interface FanoutResult { members: number, messages: number, completionP50Ms: number, completionP99Ms: number, completionMaxMs: number, deliveryP50Ms: number, deliveryP99Ms: number, lost: number }

export async function groupFanout (t: BenchTarget, o: FanoutOptions, log: (s: string) => void): Promise<FanoutResult> {
  const users = await registerUsers(t.httpUrl!, o.members, 1_000_000)
  const chat = await group(t.httpUrl!, users)
  let retried = 0
  const clients = await pool(users, 64, async (u, i) => {
    const c = new BenchClient({ host: t.host, port: i % 2 === 1 && t.receiverPort !== undefined ? t.receiverPort : t.port, clientId: u.deviceId, username: u.deviceId, password: u.token, clean: false, localAddress: `127.0.0.${2 + (i % 50)}` })
    retried += await c.join(`dev/${u.deviceId}/inbox`)
    return c
  })
  if (retried > 0) log(`${t.name}: ${retried} member connects retried after 30 s without CONNACK or SUBACK`)
  const deliveries = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 })
  const completions: number[] = []
  const got = new Map<number, number>()
  let waiting: { t0: number, done: () => void } | undefined
  for (const c of clients.slice(1)) {
    c.onPublish = (p) => {
      const t0 = sentAt(p.payload as Buffer)
      if (t0 < 0) return
      const now = nowUs()
      deliveries.recordValue(Math.max(1, Math.round(now - t0)))
      const n = (got.get(t0) ?? 0) + 1
      got.set(t0, n)
      if (n === clients.length - 1 && waiting?.t0 === t0) { completions.push((now - t0) / 1000); waiting.done() }
    }
  }
  const sender = clients[0]!
  const template = new EnvelopeTemplate(`chat/${chat}/msg`, o.payloadBytes)
  let lost = 0
  try {
    for (let i = 0; i < o.messages; i++) {
      const t0 = nowUs()
      const done = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 30_000)
        waiting = { t0: Math.floor(t0), done: () => { clearTimeout(timer); resolve(true) } }
      })
      sender.write(template.make(i + 1, sender.id(), t0))
      if (!await done) lost += clients.length - 1 - (got.get(Math.floor(t0)) ?? 0)
    }
  } finally {
    for (const c of clients) c.end()
  }
  completions.sort((a, b) => a - b)
  const pct = (q: number): number => completions.length ? completions[Math.min(completions.length - 1, Math.ceil(q * completions.length) - 1)]! : NaN
  const r = { members: o.members, messages: o.messages, completionP50Ms: pct(0.5), completionP99Ms: pct(0.99), completionMaxMs: completions.at(-1) ?? NaN, deliveryP50Ms: deliveries.getValueAtPercentile(50) / 1000, deliveryP99Ms: deliveries.getValueAtPercentile(99) / 1000, lost }
  log(`${t.name}: fan-out to ${o.members - 1} devices: completion p50 ${r.completionP50Ms.toFixed(1)} ms, p99 ${r.completionP99Ms.toFixed(1)} ms; lost ${lost}`)
  return r
}
