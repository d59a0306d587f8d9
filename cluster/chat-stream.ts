// The chat stream: accepted chat publishes on their way from the brokers to
// the bridge workers, durable in Redis (DESIGN §5).
//
// An entry is a publish from a broker, or an HTTP send from an API node
// (with a reply address, and marked when it is a forward's copy:
// cluster/stream-sends.ts).
//
// One Redis stream per partition (mqchat:chat-stream:<p>); a chat always
// hashes to the same partition, so the order of one chat's publishes is the
// stream order. A broker appends (XADD) before it PUBACKs; with
// MQCHAT_REDIS_MIN_REPLICAS it also waits (WAIT) until that many replicas
// have the entry, so a failover to a replica loses no acknowledged publish.
// Workers read a partition through the consumer group "bridge", and
// acknowledge and delete an entry (XACK + XDEL) only after its message is in
// history and the brokers have been told of it.
import type { RedisConnection } from './redis.js'

export const GROUP = 'bridge'
export const streamKey = (partition: number): string => `mqchat:chat-stream:${partition}`

/** FNV-1a over the chat id: stable across processes and versions. */
export function partitionOf (chatId: string, partitions: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < chatId.length; i++) {
    h ^= chatId.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % partitions
}

export interface StreamEntry {
  /** The stream entry id. */
  id: string
  deviceId: string
  chatId: string
  payload: Buffer
  /** When the broker accepted it (ms). */
  at: number
  /** An HTTP send: where its outcome goes (`<nodeId> <n>`, cluster/stream-sends.ts). */
  reply?: string
  /** A forward's copy: the payload is a ForwardEntry, not an envelope. */
  forward: boolean
}

export interface ReplicationOptions {
  /** Replicas that must have an entry before the append resolves (Redis WAIT); 0: the master's reply is enough. */
  minReplicas: number
  /** How long to wait for them; then the append fails and the publish is not acknowledged. */
  waitMs: number
}

/** A replica did not confirm an entry in time: the publish stays unacknowledged and the client sends it again. */
export class NotReplicatedError extends Error {
  constructor (detail: string) {
    super(`the chat stream entry is not confirmed on enough Redis replicas: ${detail}`)
  }
}

export class ChatStream {
  /** A WAIT to be sent at the end of this turn, shared by every append whose XADD has been answered by then. */
  #nextWait: Promise<void> | undefined
  /** Counts the connection's losses: a WAIT answered on another connection than its XADD proves nothing. */
  #epoch = 0

  constructor (private readonly redis: RedisConnection, readonly partitions: number, private readonly replication: ReplicationOptions = { minReplicas: 0, waitMs: 0 }) {
    if (replication.minReplicas > 0) redis.on('close', () => { this.#epoch++ })
  }

  /**
   * Appends an accepted publish; resolves once Redis has it (and, with
   * appendfsync always, on disk), and with minReplicas once that many
   * replicas have it too, so a Sentinel failover cannot lose it.
   */
  async append (chatId: string, deviceId: string, payload: Buffer, opts: { reply?: string, forward?: boolean } = {}): Promise<string> {
    const epoch = this.#epoch
    const extra = [...(opts.reply !== undefined ? ['r', opts.reply] : []), ...(opts.forward === true ? ['k', 'fwd'] : [])]
    const id = await this.redis.xaddBuffer(streamKey(partitionOf(chatId, this.partitions)), '*', 'd', deviceId, 'c', chatId, 'p', payload, 't', String(Date.now()), ...extra)
    if (this.replication.minReplicas > 0) {
      await this.replicated()
      // WAIT counts the writes of its own connection; one lost in between may have taken the XADD with it.
      if (epoch !== this.#epoch) throw new NotReplicatedError('the Redis connection was lost meanwhile')
    }
    return id?.toString() ?? ''
  }

  /** One WAIT per turn for every XADD answered before it is sent: it covers all of them (same connection, sent earlier). */
  private replicated (): Promise<void> {
    this.#nextWait ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.#nextWait = undefined
        const { minReplicas, waitMs } = this.replication
        ;(this.redis.call('WAIT', String(minReplicas), String(waitMs)) as Promise<number>).then((n) => {
          if (n >= minReplicas) resolve()
          else reject(new NotReplicatedError(`${n} of ${minReplicas} within ${waitMs} ms`))
        }, reject)
      })
    })
    return this.#nextWait
  }
}

/** Decodes XREADGROUP / XAUTOCLAIM entries ([id, [field, value, …]]) read as buffers. */
export function decodeEntries (raw: Array<[Buffer, Buffer[]]>): StreamEntry[] {
  const out: StreamEntry[] = []
  for (const [id, fields] of raw) {
    if (!Array.isArray(fields)) continue // deleted while pending
    const f = new Map<string, Buffer>()
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i].toString(), fields[i + 1])
    const d = f.get('d')
    const c = f.get('c')
    const p = f.get('p')
    if (!d || !c || !p) continue
    out.push({ id: id.toString(), deviceId: d.toString(), chatId: c.toString(), payload: p, at: Number(f.get('t')?.toString() ?? 0), reply: f.get('r')?.toString(), forward: f.get('k')?.toString() === 'fwd' })
  }
  return out
}
