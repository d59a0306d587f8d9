// Steady load on a test cluster while something fails, then the checks
// every failure test makes: each message the cluster acknowledged (PUBACK)
// is in history exactly once, seqs are gapless, and every member device got
// every message of the others (repeats only as same-seq duplicates).
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { Redis } from 'ioredis'
import { GROUP, streamKey } from '../../cluster/chat-stream.js'
import { WORKERS, leaseKey } from '../../cluster/bridge-worker.js'
import type { TestCluster } from './cluster.js'
import { waitFor, waitWhileProgressing, within, type DeviceCreds } from './server.js'

/** A device that reconnects on its own, trying the brokers in turn (as behind a load balancer). */
export class Member {
  client!: MqttClient
  /** seq -> client id of every msg received (a repeat must carry the same id). */
  readonly got = new Map<number, string>()
  readonly conflicts: string[] = []
  readonly acked: string[] = []
  /** Publishes the cluster refused (PUBACKed with an `error` event): `<client id>: <code>`. */
  readonly refused: string[] = []
  constructor (readonly cluster: TestCluster, readonly creds: DeviceCreds, readonly chat: string) {}

  async connect (first: number): Promise<this> {
    const ports = this.cluster.brokers.map((b) => b.ports.mqtt)
    const order = [...ports.slice(first), ...ports.slice(0, first)]
    this.client = mqtt.connect({
      servers: order.map((port) => ({ host: '127.0.0.1', port })),
      clientId: this.creds.deviceId,
      username: this.creds.deviceId,
      password: this.creds.token,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 200,
      connectTimeout: 3000,
      keepalive: 5,
      // Resubscribed below instead: MQTT.js's own resubscription rejects a promise nobody holds when the
      // connection closes again before the SUBACK, as it can while Redis fails over.
      resubscribe: false
    })
    this.client.on('message', (topic, payload) => {
      const e = JSON.parse(payload.toString()) as { type: string, chat: string, seq: number, id: string, code?: string }
      if (e.type === 'error') this.refused.push(`${e.id}: ${e.code ?? '?'}`)
      if (e.type !== 'msg' || e.chat !== this.chat) return
      const before = this.got.get(e.seq)
      if (before !== undefined && before !== e.id) this.conflicts.push(`seq ${e.seq}: ${before} and ${e.id}`)
      this.got.set(e.seq, e.id)
    })
    // Errors (a refused or reset connection while Redis fails over) are retried by the reconnect; without a
    // listener, the second one would end the test process.
    this.client.on('error', () => {})
    const inbox = `dev/${this.creds.deviceId}/inbox`
    // A broker may close its connections at any time (a takeover, its router subscription restored), also
    // before the first SUBACK: then the next connection subscribes, until one gets its SUBACK.
    let subscribed = false
    const subscribe = (): void => {
      this.client.subscribeAsync(inbox, { qos: 1 }).then(() => { subscribed = true }, () => { /* the next connect subscribes again */ })
    }
    // A session lost with the Redis that held it (a failover) comes back empty: subscribe again.
    this.client.on('connect', (connack) => { if (!subscribed || !connack.sessionPresent) subscribe() })
    await waitFor(`device ${this.creds.deviceId} to connect and subscribe`, () => subscribed ? true : undefined, 60_000)
    return this
  }

  /** Sends `n` messages `everyMs` apart; resolves when every one is PUBACKed. */
  async send (prefix: string, n: number, everyMs: number): Promise<void> {
    const pending: Array<Promise<unknown>> = []
    for (let i = 0; i < n; i++) {
      pending.push(this.publish(`${prefix}-${i}`))
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
    await Promise.all(pending)
  }

  /**
   * One message until it is PUBACKed. MQTT.js resends an unacknowledged
   * publish after a reconnect by itself, but fails one made while it was
   * still resending (when the connection closes again meanwhile, as it
   * does repeatedly while Redis fails over); a sending app then sends it
   * again under the same client id, as this does.
   */
  private async publish (id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.publishAsync(`chat/${this.chat}/msg`, JSON.stringify({ id, type: 'text', body: id }), { qos: 1 })
        this.acked.push(id)
        return
      } catch (err) {
        if (attempt >= 100) throw err
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }

  close (): Promise<void> { return this.client === undefined ? Promise.resolve() : this.client.endAsync(true).then(() => {}) }
}

/** The chat stream as Redis holds it (lengths, pending entries, leases, live workers), for failure messages. */
async function streamState (cluster: TestCluster): Promise<string> {
  let r: Redis | undefined
  try {
    r = new Redis(await cluster.redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 })
    await r.connect()
    const lines: string[] = []
    for (let p = 0; p < 8; p++) {
      const key = streamKey(p)
      const [len, pending, lease] = await Promise.all([r.xlen(key), r.xpending(key, GROUP), r.get(leaseKey(p))])
      lines.push(`partition ${p}: length ${len}, pending ${JSON.stringify(pending)}, lease ${lease ?? '-'}`)
    }
    lines.push(`workers: ${JSON.stringify(await r.zrange(WORKERS, 0, -1, 'WITHSCORES'))}`)
    return lines.join('\n')
  } catch (err) {
    return `stream state unavailable: ${(err as Error).message}`
  } finally {
    r?.disconnect()
  }
}

// History and inboxes fill at the speed of this machine (FerretDB scans on
// queries MongoDB answers from indexes): a wait fails when nothing moved for
// STALL_MS, or after CAP_MS in all.
const STALL_MS = 45_000
const CAP_MS = 300_000

let round = 0
/**
 * Four members (two starting on each broker) send 40 messages each under
 * load while `disrupt` runs; then every PUBACKed message must be in history
 * exactly once under gapless seqs, and have reached every other member.
 */
export async function underLoad (cluster: TestCluster, disrupt: (chat: string) => Promise<void>): Promise<void> {
  round++
  const creds = await Promise.all([1, 2, 3, 4].map((i) => cluster.api.register(`+1555020${round}00${i}`, `m${i}`)))
  const created = await cluster.api.api('POST', '/v1/chats', creds[0].token, { kind: 'group', name: `load ${round}`, members: creds.slice(1).map((c) => c.userId) })
  assert.equal(created.status, 201)
  const chat = created.body.chat_id as string
  const members = creds.map((c) => new Member(cluster, c, chat))
  // A member that fails to connect must not leave the others reconnecting for ever (they would keep the test process alive).
  const connected = await Promise.allSettled(members.map((m, i) => m.connect(i % 2)))
  const failed = connected.find((r) => r.status === 'rejected')
  if (failed) {
    await Promise.all(members.map((m) => m.close()))
    throw new Error(`a member could not connect and subscribe: ${(failed.reason as Error).message}\n${cluster.logs()}`)
  }
  try {
    const sending = Promise.all(members.map((m, i) => m.send(`r${round}m${i}`, 40, 30)))
    await new Promise((resolve) => setTimeout(resolve, 400))
    await disrupt(chat)
    await within('every publish to be acknowledged', sending, 90_000).catch((err: Error) => {
      throw new Error(`${err.message} (acknowledged per member: ${members.map((m) => m.acked.length).join(', ')}; connected: ${members.map((m) => m.client.connected).join(', ')})\n${cluster.logs()}`)
    })
    const accepted = members.flatMap((m) => m.acked)
    assert.equal(accepted.length, 160)

    // History: each accepted message exactly once, seqs 1..n without a gap.
    // The bridge drains the backlog at the speed of this machine's FerretDB: a stall fails, slowness does not.
    let stored: Array<{ seq: number, id: string }> = []
    const history = await waitWhileProgressing('history to hold every accepted message', async () => {
      const r = await cluster.api.api('GET', `/v1/chats/${chat}/messages?after=0&limit=500`, creds[0].token)
      stored = r.body.messages as Array<{ seq: number, id: string }>
      return { done: stored.length >= accepted.length ? stored : undefined, progress: stored.length }
    }, STALL_MS, CAP_MS).catch(async (err: Error) => {
      const have = new Set(stored.map((m) => m.id))
      const missing = accepted.filter((id) => !have.has(id))
      const refused = members.flatMap((m) => m.refused)
      throw new Error(`${err.message}: ${stored.length} of ${accepted.length} stored; missing ${missing.slice(0, 20).join(', ')}; refused (PUBACKed with an error event) ${refused.length}: ${refused.slice(0, 20).join(', ')}\n${await streamState(cluster)}\n${cluster.logs()}`)
    })
    assert.deepEqual(history.map((m) => m.seq), Array.from({ length: history.length }, (_, i) => i + 1), 'gapless seqs')
    assert.equal(new Set(history.map((m) => m.id)).size, history.length, 'no message stored twice')
    assert.deepEqual(new Set(history.map((m) => m.id)), new Set(accepted), 'exactly the accepted messages')
    const idOf = new Map(history.map((m) => [m.seq, m.id]))

    // Every member got every other member's messages, under the seq history gave them.
    for (const [i, m] of members.entries()) {
      const others = history.filter((h) => !h.id.startsWith(`r${round}m${i}-`))
      await waitWhileProgressing(`member ${i} to receive ${others.length} messages`, async () => {
        const got = others.filter((h) => m.got.get(h.seq) === h.id).length
        return { done: got === others.length ? true : undefined, progress: got }
      }, STALL_MS, CAP_MS)
      assert.deepEqual(m.conflicts, [], 'a seq never carries two messages')
      for (const [seq, id] of m.got) assert.equal(idOf.get(seq), id)
    }
  } finally {
    await Promise.all(members.map((m) => m.close()))
  }
}
