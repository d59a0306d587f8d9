// Scenario 6: reconnect storm. `devices` persistent sessions exist and are
// offline; `perDevice` messages are queued for each; then every device
// reconnects at once (at most `concurrency` connects in flight). Measured:
// time until all are connected and until every queued message arrived.
// Checked: each device gets each of its messages (loss must be zero).
// On mqchat the messages are chat messages (one direct chat per device with
// a sender); on the references they are QoS 1 publishes to the device's topic.
import { BenchClient, EnvelopeTemplate } from '../client.js'
import { directChat, pool, registerUsers, type BenchDevice } from '../fixtures.js'
import type { BenchTarget } from '../targets.js'
import { clientFor, devices, inboxOf } from './connections.js'

export interface StormOptions { devices: number, perDevice: number, concurrency: number, payloadBytes: number }
export interface StormResult { devices: number, messages: number, allConnectedMs: number, drainedMs: number, lost: number, duplicates: number, connectRetries: number }

const ID = /"id":"(\d{12})"/

export async function reconnectStorm (t: BenchTarget, o: StormOptions, log: (s: string) => void): Promise<StormResult> {
  const ds = await devices(t, o.devices, 4_000_000)
  // Sessions and subscriptions exist, then everyone goes offline.
  await pool(ds, 200, async (d, i) => {
    const c = clientFor(t, d, i)
    await c.connect(60_000)
    await c.subscribe(inboxOf(d), 1, 60_000)
    c.end()
  })
  // Queue the messages.
  let topics: string[]
  let sender: BenchClient
  if (t.httpUrl !== undefined) {
    const [s] = await registerUsers(t.httpUrl!, 1, 4_900_000) as [BenchDevice]
    topics = (await pool(ds as BenchDevice[], 16, (d) => directChat(t.httpUrl!, s, d))).map((chat) => `chat/${chat}/msg`)
    sender = new BenchClient({ host: t.host, port: t.port, clientId: s.deviceId, username: s.deviceId, password: s.token, clean: true })
  } else {
    topics = ds.map(inboxOf)
    sender = new BenchClient({ host: t.host, port: t.port, clientId: 'bench-storm-sender', clean: true })
  }
  await sender.connect()
  const total = o.devices * o.perDevice
  let n = 0
  let acked = 0
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`storm: ${acked}/${total} publishes acknowledged in 600 s`)), 600_000)
    const templates = topics.map((tp) => new EnvelopeTemplate(tp, o.payloadBytes))
    const next = (): void => { if (n < total) { const k = n++; sender.write(templates[k % o.devices]!.make(k + 1, sender.id(), 0)) } }
    sender.onPuback = () => { if (++acked === total) { clearTimeout(timer); resolve() } else next() }
    for (let i = 0; i < 100; i++) next()
  })
  sender.end()
  await new Promise((r) => setTimeout(r, 1000))
  // The storm.
  const seen = ds.map(() => new Map<string, number>())
  let received = 0
  let drainedAt = 0
  let connectedAt = 0
  let connected = 0
  let retries = 0
  const started = performance.now()
  const clients: BenchClient[] = []
  let check = (_giveUp?: boolean): void => {}
  const drained = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 600_000)
    check = (giveUp = false) => {
      if (received >= total && drainedAt === 0) { drainedAt = performance.now(); clearTimeout(timer); resolve(true) } else if (giveUp) { clearTimeout(timer); resolve(false) }
    }
  })
  const connecting = pool(ds, o.concurrency, async (d, i) => {
    const c = clientFor(t, d, i)
    clients.push(c)
    c.onPublish = (p) => {
      const m = ID.exec((p.payload as Buffer).toString('latin1'))
      if (!m || !(p.payload as Buffer).includes('"body"')) return
      const map = seen[i]!
      const was = map.get(m[1]!) ?? 0
      map.set(m[1]!, was + 1)
      if (was === 0) { received++; check() }
    }
    retries += await c.connectRetrying(6, 15_000)
    if (++connected === o.devices) connectedAt = performance.now()
  }).catch((err: Error) => { log(`${t.name}: storm connect failed: ${err.message}`) })
  // Every connect failed for good: nothing more can arrive.
  void connecting.then(() => { if (connected < o.devices) check(true) })
  const ok = await drained
  await connecting
  for (const c of clients) c.destroy()
  const duplicates = seen.reduce((a, m) => a + [...m.values()].reduce((x, v) => x + v - 1, 0), 0)
  const r = { devices: o.devices, messages: total, allConnectedMs: connectedAt ? connectedAt - started : NaN, drainedMs: ok ? drainedAt - started : NaN, lost: total - received, duplicates, connectRetries: retries }
  log(`${t.name}: ${o.devices} devices reconnected in ${r.allConnectedMs.toFixed(0)} ms (${retries} connects retried after 15 s without CONNACK), ${total} queued messages drained in ${r.drainedMs.toFixed(0)} ms; lost ${r.lost}, duplicates ${duplicates}`)
  return r
}
