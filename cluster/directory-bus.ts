// Directory changes across the cluster's nodes.
//
// Every node mirrors memberships, devices, settings and blocks in memory (the
// broker's ACL and the fan-out read them on every publish). A change made on
// one node is announced on a Redis channel; each node re-reads the changed
// record from the store and acknowledges on a second channel. The announcing
// node waits for as many acknowledgements as PUBLISH reported receivers (so
// every node that was listening has applied it) before the API answers: a
// removed member cannot publish to the chat on any broker from that moment.
//
// On Redis Cluster, PUBLISH reaches the subscribers of every node but counts
// only those of the node that ran it, so there each bus also announces its
// node in a sorted set every BEAT_MS, and the announcing node waits for as
// many acknowledgements as there are nodes seen in the last 3 beats.
//
// Redis pub/sub is at-most-once, so a node whose subscription dropped reloads
// every mirror from the store when it is back.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { Cluster } from 'ioredis'
import type { RedisConnection } from './redis.js'
import { timedOut } from '../lib/timeout.js'

const CHANGES = 'mqchat:directory:changes'
const ACKS = 'mqchat:directory:acks'
/** Redis Cluster: the nodes listening to directory changes, by their last beat. */
export const LISTENERS = 'mqchat:directory:listeners'
const BEAT_MS = 2000

export type DirectoryChange =
  | { kind: 'chat', id: string }
  | { kind: 'device', id: string }
  | { kind: 'settings', id: string }
  /** A device's push targets changed. */
  | { kind: 'push', id: string }
  /** A device published its first or a new identity (end-to-end encryption). */
  | { kind: 'keys', id: string }
  /** A user was banned, or their ban lifted. */
  | { kind: 'ban', id: string }
  /** A chat's stored messages changed under the caches (an erased sender's became tombstones). */
  | { kind: 'history', id: string }
  | { kind: 'blocks' }

export interface DirectoryMirror {
  /** Re-reads one changed record. */
  apply (change: DirectoryChange): Promise<void>
  /** Re-reads everything (after missing changes). */
  reload (): Promise<void>
}

export class DirectoryBus {
  #waiting = new Map<string, { need: number, got: number, done: () => void }>()
  #lost = false
  #beat: NodeJS.Timeout | undefined

  constructor (
    private readonly pub: RedisConnection,
    private readonly sub: RedisConnection,
    private readonly nodeId: string,
    private readonly log: Logger,
    private readonly ackTimeoutMs: number
  ) {}

  async start (mirror: DirectoryMirror): Promise<void> {
    this.sub.on('message', (channel: string, raw: string) => {
      if (channel === ACKS) {
        const w = this.#waiting.get(raw)
        if (w && ++w.got >= w.need) w.done()
        return
      }
      if (channel !== CHANGES) return
      let msg: { id: string, change: DirectoryChange }
      try { msg = JSON.parse(raw) as typeof msg } catch { return }
      mirror.apply(msg.change).then(
        () => this.pub.publish(ACKS, msg.id),
        (err: unknown) => {
          // Not acknowledged: the announcing node logs the missing ack; a full reload repairs this node.
          this.log.error({ err, change: msg.change }, 'applying a directory change failed; reloading the directory')
          return mirror.reload()
        }
      ).catch((err: unknown) => this.log.error({ err }, 'directory reload failed'))
    })
    this.sub.on('close', () => { this.#lost = true })
    this.sub.on('ready', () => {
      if (!this.#lost) return
      this.#lost = false
      this.log.info('directory change channel restored: reloading the directory (changes may have been missed)')
      mirror.reload().catch((err: unknown) => this.log.error({ err }, 'directory reload failed'))
    })
    await this.sub.subscribe(CHANGES, ACKS)
    if (this.pub instanceof Cluster) {
      const beat = async (): Promise<void> => { await this.pub.zadd(LISTENERS, Date.now(), this.nodeId) }
      await beat()
      this.#beat = setInterval(() => { beat().catch((err: unknown) => this.log.warn({ err }, 'announcing this node to the directory bus failed')) }, BEAT_MS)
      this.#beat.unref()
    }
  }

  /** Stops announcing this node (Redis Cluster). */
  async stop (): Promise<void> {
    clearInterval(this.#beat)
    if (this.#beat !== undefined) await this.pub.zrem(LISTENERS, this.nodeId).catch(() => {})
  }

  /** Announces a change and resolves when every listening node (this one included) has applied it, or after the ack timeout. */
  async publish (change: DirectoryChange): Promise<void> {
    const id = `${this.nodeId}:${randomUUID()}`
    let done!: () => void
    const all = new Promise<void>((resolve) => { done = resolve })
    const w = { need: Number.MAX_SAFE_INTEGER, got: 0, done }
    this.#waiting.set(id, w)
    try {
      const receivers = await this.pub.publish(CHANGES, JSON.stringify({ id, change })) as number
      w.need = this.pub instanceof Cluster ? await this.pub.zcount(LISTENERS, Date.now() - 3 * BEAT_MS, '+inf') : receivers
      if (w.got >= w.need) return
      if (await timedOut(all, this.ackTimeoutMs)) this.log.warn({ change, nodes: w.need, acknowledged: w.got }, 'not every node acknowledged a directory change in time')
    } finally {
      this.#waiting.delete(id)
    }
  }
}
