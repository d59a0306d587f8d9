// Scenario 4: connections. `count` devices each open an authenticated (on
// mqchat) persistent session and subscribe to their inbox at QoS 1, with at
// most `concurrency` connects in flight. Measured: connect rate; the
// broker's V8 heap in use per connection after a forced GC (Node servers:
// mqchat's local profile, the cluster's brokers, bare aedes); and its
// resident memory per connection, read after that GC where there is one.
import { BenchClient } from '../client.js'
import { pool, registerUsers, type BenchDevice } from '../fixtures.js'
import { heapAfterGc } from '../heap.js'
import { rssBytes, type BenchTarget } from '../targets.js'

export interface ConnectionsOptions { count: number, concurrency: number }
export interface ConnectionsResult {
  count: number
  connected: number
  connectPerSec: number
  rssPerConnBytes: number
  /** After a forced full GC; null where not measured (Mosquitto). The cluster: its serving broker's. */
  heapPerConnBytes: number | null
  /** True since the heap is read after a forced GC; results before that read it from /metrics, garbage included. */
  heapAfterGc?: boolean
  rssBeforeBytes: number
  rssAfterBytes: number
  /** Cluster: every broker's RSS growth per session, with all sessions on the first broker. */
  brokers?: Array<{ name: string, rssPerConnBytes: number, heapPerConnBytes?: number }>
}

/** mqchat: registered devices; the references: plain client ids. */
export async function devices (t: BenchTarget, n: number, first: number): Promise<Array<BenchDevice | string>> {
  if (t.httpUrl !== undefined) return registerUsers(t.httpUrl!, n, first)
  return Array.from({ length: n }, (_, i) => `bench-c-${first + i}`)
}

export function clientFor (t: BenchTarget, d: BenchDevice | string, i: number): BenchClient {
  const local = `127.0.0.${2 + (i % 100)}`
  if (typeof d === 'string') return new BenchClient({ host: t.host, port: t.port, clientId: d, clean: false, localAddress: local })
  return new BenchClient({ host: t.host, port: t.port, clientId: d.deviceId, username: d.deviceId, password: d.token, clean: false, localAddress: local })
}

export const inboxOf = (d: BenchDevice | string): string => `dev/${typeof d === 'string' ? d : d.deviceId}/inbox`

/**
 * Heap in use after a forced GC, over the inspector: the target's (the local
 * server, bare aedes, the cluster's serving broker; null for Mosquitto) and
 * each of the cluster's brokers', each read once.
 */
async function heapsUsed (t: BenchTarget): Promise<{ target: number | null, brokers: number[] }> {
  const brokers = await Promise.all((t.brokers ?? []).map((b) => heapAfterGc(b.inspectorPort)))
  const serving = (t.brokers ?? []).findIndex((b) => b.pid === t.pid)
  if (serving >= 0) return { target: brokers[serving]!, brokers }
  return { target: t.inspectorPort === undefined ? null : await heapAfterGc(t.inspectorPort), brokers }
}

export async function connections (t: BenchTarget, o: ConnectionsOptions, log: (s: string) => void): Promise<ConnectionsResult> {
  const ds = await devices(t, o.count, 3_000_000)
  await new Promise((r) => setTimeout(r, 1000))
  // The heap first: its forced GC also lets V8 return freed pages, so RSS is read after it.
  const heaps0 = await heapsUsed(t)
  const rss0 = rssBytes(t.pid)
  const brokers0 = (t.brokers ?? []).map((b) => rssBytes(b.pid))
  const started = performance.now()
  let connected = 0
  const clients = await pool(ds, o.concurrency, async (d, i) => {
    const c = clientFor(t, d, i)
    try {
      await c.connect(60_000)
      await c.subscribe(inboxOf(d), 1, 60_000)
      connected++
    } catch (err) { log(`${t.name}: connection ${i} failed: ${(err as Error).message}`) }
    return c
  })
  const seconds = (performance.now() - started) / 1000
  await new Promise((r) => setTimeout(r, 2000))
  const heaps1 = await heapsUsed(t)
  const rss1 = rssBytes(t.pid)
  const brokerRss1 = (t.brokers ?? []).map((b) => rssBytes(b.pid))
  const perConn = (bytes: number): number => Math.round(bytes / Math.max(1, connected))
  const brokers = t.brokers?.map((b, i) => ({ name: b.name, rssPerConnBytes: perConn(brokerRss1[i]! - brokers0[i]!), heapPerConnBytes: perConn(heaps1.brokers[i]! - heaps0.brokers[i]!) }))
  for (const c of clients) c.destroy()
  const r = {
    count: o.count,
    connected,
    connectPerSec: Math.round(connected / seconds),
    rssPerConnBytes: Math.round((rss1 - rss0) / Math.max(1, connected)),
    heapPerConnBytes: heaps0.target !== null && heaps1.target !== null ? perConn(heaps1.target - heaps0.target) : null,
    heapAfterGc: true,
    rssBeforeBytes: rss0,
    rssAfterBytes: rss1,
    ...(brokers ? { brokers } : {})
  }
  for (const b of brokers ?? []) log(`${t.name}: ${b.name} holds ${(b.rssPerConnBytes / 1024).toFixed(1)} KiB RSS and ${(b.heapPerConnBytes / 1024).toFixed(1)} KiB heap per session of the cluster`)
  log(`${t.name}: ${connected}/${o.count} sessions, ${r.connectPerSec} connects/s, ${(r.rssPerConnBytes / 1024).toFixed(1)} KiB RSS per connection${r.heapPerConnBytes !== null ? `, ${(r.heapPerConnBytes / 1024).toFixed(1)} KiB heap` : ''}`)
  return r
}
