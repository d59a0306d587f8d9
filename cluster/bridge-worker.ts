// A bridge worker: owns some partitions of the chat stream and feeds their
// entries, in order, to the bridge.
//
// Reading. On one Redis server (or a Sentinel-managed one) a worker reads
// all its partitions with one blocking XREADGROUP. Redis Cluster refuses a
// command over keys of several hash slots (CROSSSLOT), so there each owned
// partition is read by a loop of its own, blocking on a connection of its
// own; the loop ends (and the connection closes) when the partition goes.
//
// Ownership. Live workers announce themselves in a sorted set every second;
// partition p is meant for the (p mod n)-th live worker by name. A worker
// owns a partition only while it holds the partition's lease key (SET NX PX,
// renewed every second, released when the partition is meant for another
// worker), so each partition has at most one worker at a time and one writer
// per chat. If a worker dies, its leases expire and the partitions' new
// owners first claim every entry still pending in them (XAUTOCLAIM),
// whoever's consumer read it, and process those again: idempotency on the
// client message id turns repeats into same-seq duplicates.
//
// An entry is acknowledged (XACK, then XDEL) only after its handling is done
// (the handler's `done`), i.e. after the message is in history and the
// brokers were told. The chats of a batch are handled concurrently, each
// chat's entries in order: an entry is given once the one before has its
// place in the chat's order, not once it is stored, so a chat's entries of a
// batch are stored together (the bridge and the store keep their order). The
// batch is acknowledged with one XACK and one XDEL. A handler failure
// (MongoDB or Redis unavailable) stops that partition where it is and
// retries from the first unacknowledged entry after a pause; entries of the
// chat already given either fail with it (the store fails a chat's waiting
// messages together) or were stored after it under later seqs, so seq order
// is kept and a redelivered one is a same-seq repeat.
//
// Entries can be left pending without anyone working on them: a read whose
// reply was lost when the connection dropped (the client resends XREADGROUP
// after reconnecting, and a Redis restarted from its AOF has already marked
// the first read's entries as delivered), or a read that arrived just after
// this worker lost a partition. So a worker also drains its partitions'
// pending entries after every read that spanned a lost connection (before it
// handles anything that read returned, so the older entries go first) and,
// as a sweep, every lease period. A partition being handed over keeps its
// lease renewed until the run loop has released it, so a busy worker never
// shares a partition with its successor.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { GROUP, decodeEntries, streamKey, type StreamEntry } from './chat-stream.js'
import { luaScript, type RedisConnection } from './redis.js'
import { timedOut } from '../lib/timeout.js'
import { groupBy } from '../lib/group.js'

/** Live workers by last heartbeat (a sorted set). */
export const WORKERS = 'mqchat:bridge-workers'
export const leaseKey = (p: number): string => `mqchat:chat-stream-lease:${p}`

const ACQUIRE_OR_RENEW = `
local v = redis.call('GET', KEYS[1])
if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/**
 * Takes an entry: resolves once the entry has its place in its chat's order
 * (the next entry of the chat may then be given), with `done`, which settles
 * once the entry is handled. A rejection of either is a failure.
 */
export type EntryHandler = (entry: StreamEntry, redelivered: boolean) => Promise<{ done: Promise<void> }>

export interface WorkerOptions {
  partitions: number
  leaseMs?: number
  beatMs?: number
  batch?: number
  /**
   * Redis Cluster: a new connection of its own for reading one partition.
   * A read of several streams is one command, which Redis Cluster refuses
   * (CROSSSLOT) unless they share a hash slot, so each owned partition is
   * then read by a loop of its own, blocking on its own connection.
   */
  readerFor?: (partition: number) => RedisConnection
}

interface Owned { recover: boolean, leaving: boolean }


export class BridgeWorker {
  #owned = new Map<number, Owned>()
  #stopped = false
  #timer: NodeJS.Timeout | undefined
  #loop: Promise<void> | undefined
  /** Counts the losses of the blocking connection: a read that spans one may have lost its reply. */
  #readEpoch = 0
  #lastSweep = 0
  /** Redis Cluster: each owned partition's read loop. */
  #readers = new Map<number, Promise<void>>()
  readonly leaseMs: number
  readonly beatMs: number
  readonly batch: number
  readonly #acquire: (...args: Array<string | number>) => Promise<unknown>
  readonly #release: (...args: Array<string | number>) => Promise<unknown>

  constructor (
    private readonly redis: RedisConnection,
    /** A connection of its own for reading: XREADGROUP BLOCK holds it. Unused (may be undefined) with readerFor. */
    private readonly blocking: RedisConnection | undefined,
    private readonly nodeId: string,
    private readonly handle: EntryHandler,
    private readonly log: Logger,
    private readonly opts: WorkerOptions
  ) {
    this.leaseMs = opts.leaseMs ?? 5000
    this.beatMs = opts.beatMs ?? 1000
    this.batch = opts.batch ?? 100
    this.#acquire = luaScript(redis, 'LeaseAcquire', ACQUIRE_OR_RENEW, 1)
    this.#release = luaScript(redis, 'LeaseRelease', RELEASE, 1)
  }

  /** Partitions this worker owns now. */
  get partitions (): number[] { return [...this.#owned.keys()].sort((a, b) => a - b) }

  async start (): Promise<void> {
    for (let p = 0; p < this.opts.partitions; p++) {
      try {
        await this.redis.xgroup('CREATE', streamKey(p), GROUP, '0', 'MKSTREAM')
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) throw err
      }
    }
    this.blocking?.on('close', () => { this.#readEpoch++ })
    await this.beat()
    this.#timer = setInterval(() => { this.beat().catch((err: unknown) => this.log.warn({ err }, 'bridge worker heartbeat failed')) }, this.beatMs)
    this.#loop = this.run()
  }

  /** Announces this worker, and takes, keeps or gives up partitions. */
  private async beat (): Promise<void> {
    if (this.#stopped) return
    const now = Date.now()
    await this.redis.zadd(WORKERS, now, this.nodeId)
    await this.redis.zremrangebyscore(WORKERS, 0, now - this.leaseMs)
    const live = (await this.redis.zrange(WORKERS, 0, -1)).sort()
    const me = live.indexOf(this.nodeId)
    for (let p = 0; p < this.opts.partitions; p++) {
      const meant = me >= 0 && p % live.length === me
      const owned = this.#owned.get(p)
      if (!meant && !owned) continue
      const ok = await this.#acquire(leaseKey(p), this.nodeId, String(this.leaseMs)) === 1
      if (!meant && owned) {
        // The run loop releases it between batches; until then it stays ours (renewed above).
        owned.leaving = true
        continue
      }
      if (ok && !owned) {
        this.#owned.set(p, { recover: true, leaving: false })
        this.log.info({ partition: p }, 'chat stream partition taken')
      } else if (!ok && owned) {
        this.#owned.delete(p)
        this.log.warn({ partition: p }, 'chat stream partition lease lost')
      }
    }
  }

  private async run (): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.round()
      } catch (err) {
        this.log.warn({ err }, 'chat stream read failed; retrying')
        await sleep(500)
      }
    }
  }

  private async round (): Promise<void> {
    for (const [p, o] of this.#owned) {
      // A partition read by a loop of its own is released once that loop has finished its batch.
      if (o.leaving && !this.#readers.has(p)) {
        this.#owned.delete(p)
        await this.#release(leaseKey(p), this.nodeId)
        this.log.info({ partition: p }, 'chat stream partition handed over')
      }
    }
    const mine = this.partitions
    if (mine.length === 0) {
      await sleep(200)
      return
    }
    if (Date.now() - this.#lastSweep >= this.leaseMs) {
      this.#lastSweep = Date.now()
      this.recoverAll(mine)
    }
    if (this.opts.readerFor) {
      for (const p of mine) {
        if (this.#readers.has(p) || this.#owned.get(p)?.leaving === true) continue
        const loop = this.readPartition(p, this.opts.readerFor(p)).finally(() => this.#readers.delete(p))
        this.#readers.set(p, loop)
      }
      await sleep(100)
      return
    }
    if (!this.blocking) throw new Error('a bridge worker needs a reading connection or readerFor')
    await Promise.all(mine.filter((p) => this.#owned.get(p)?.recover).map((p) => this.drainPending(p)))
    const reading = mine.filter((p) => this.#owned.has(p) && this.#owned.get(p)?.recover === false)
    if (reading.length === 0) return
    let read: Array<[number, StreamEntry[]]> | 'lost'
    try {
      read = await this.readNew(this.blocking, reading, () => this.#readEpoch)
    } catch (err) {
      this.recoverAll(reading)
      throw err
    }
    if (read === 'lost') {
      this.log.warn({ partitions: reading }, 'chat stream read spanned a lost connection; draining pending entries first')
      this.recoverAll(reading)
      return
    }
    await Promise.all(read.map(([p, entries]) => this.process(p, entries, false)))
  }

  /**
   * One blocking read of new entries from these partitions, by partition; or
   * 'lost' when the connection dropped during it (`epoch` counts the drops):
   * what it returned may then come after entries whose reply was lost, so
   * every pending entry is drained first instead, in order.
   */
  private async readNew (conn: RedisConnection, partitions: number[], epoch: () => number): Promise<Array<[number, StreamEntry[]]> | 'lost'> {
    const keys = partitions.map(streamKey)
    const before = epoch()
    const res = await conn.callBuffer('XREADGROUP', 'GROUP', GROUP, this.nodeId, 'COUNT', String(this.batch), 'BLOCK', '500', 'STREAMS', ...keys, ...keys.map(() => '>')) as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
    if (before !== epoch()) return 'lost'
    return (res ?? []).map(([key, entries]) => {
      const k = key.toString()
      return [Number(k.slice(k.lastIndexOf(':') + 1)), decodeEntries(entries)]
    })
  }

  /** Redis Cluster: reads one partition on its own connection while it is owned (and not being handed over). */
  private async readPartition (p: number, conn: RedisConnection): Promise<void> {
    let epoch = 0
    conn.on('close', () => { epoch++ })
    const mine = (): Owned | undefined => {
      const o = this.#owned.get(p)
      return this.#stopped || o === undefined || o.leaving ? undefined : o
    }
    try {
      for (let o = mine(); o !== undefined; o = mine()) {
        try {
          if (o.recover) { await this.drainPending(p); continue }
          const read = await this.readNew(conn, [p], () => epoch)
          if (read === 'lost') { o.recover = true; continue }
          for (const [, entries] of read) await this.process(p, entries, false)
        } catch (err) {
          o.recover = true
          this.log.warn({ err, partition: p }, 'chat stream read failed; retrying')
          await sleep(500)
        }
      }
    } finally {
      conn.disconnect()
    }
  }

  /** Marks partitions to drain their pending entries before they read new ones. */
  private recoverAll (partitions: number[]): void {
    for (const p of partitions) {
      const o = this.#owned.get(p)
      if (o) o.recover = true
    }
  }

  /** Processes every entry still pending in a partition (whichever consumer read it), oldest first. */
  private async drainPending (p: number): Promise<void> {
    let cursor = '0-0'
    for (;;) {
      const [next, entries] = await this.redis.callBuffer('XAUTOCLAIM', streamKey(p), GROUP, this.nodeId, '0', cursor, 'COUNT', String(this.batch)) as [Buffer, Array<[Buffer, Buffer[]]>]
      if (!await this.process(p, decodeEntries(entries), true)) return
      cursor = next.toString()
      if (cursor === '0-0') break
    }
    const o = this.#owned.get(p)
    if (o) o.recover = false
  }

  /**
   * Handles a batch: each chat's entries given in order, each as soon as the
   * one before has its place (so a chat's messages are stored together), the
   * chats concurrently (their writes then share round trips and group
   * commits), and acknowledges what was handled with one XACK and one XDEL.
   * A failure stops the chat it happened in, and the others at their next
   * entry; false, and the partition marked for recovery, which handles every
   * entry not acknowledged again, in order.
   */
  private async process (p: number, entries: StreamEntry[], redelivered: boolean): Promise<boolean> {
    if (!this.#owned.has(p)) return false
    const byChat = groupBy(entries, (e) => e.chatId)
    const handled: string[] = []
    let failed = false
    const fail = (err: unknown, e: StreamEntry): void => {
      failed = true
      this.log.error({ err, partition: p, entry: e.id, chat: e.chatId }, 'chat stream entry failed; retrying the partition from it')
    }
    await Promise.all([...byChat.values()].map(async (list) => {
      const done: Array<Promise<void>> = []
      for (const e of list) {
        if (failed || !this.#owned.has(p)) break
        try {
          const taken = await this.handle(e, redelivered)
          done.push(taken.done.then(() => { handled.push(e.id) }, (err: unknown) => { fail(err, e) }))
        } catch (err) {
          fail(err, e)
        }
      }
      await Promise.all(done)
    }))
    try {
      if (handled.length > 0) {
        await this.redis.xack(streamKey(p), GROUP, ...handled)
        await this.redis.xdel(streamKey(p), ...handled)
      }
    } catch (err) {
      failed = true
      this.log.error({ err, partition: p }, 'acknowledging chat stream entries failed; they are handled again')
    }
    if (failed) {
      const o = this.#owned.get(p)
      if (o) o.recover = true
      await sleep(500)
      return false
    }
    return this.#owned.has(p) && handled.length === entries.length
  }

  /**
   * Stops after the batch in hand, then gives up its partitions. Bounded: with
   * Redis unreachable the batch and the release cannot finish, and the worker
   * stops anyway; its entries stay pending and its leases lapse, so the next
   * owner processes them (at least once, as after a crash).
   */
  async stop (boundMs = 3000): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    const release = async (): Promise<void> => {
      await this.#loop
      await Promise.all(this.#readers.values())
      for (const p of this.#owned.keys()) await this.#release(leaseKey(p), this.nodeId)
      this.#owned.clear()
      await this.redis.zrem(WORKERS, this.nodeId)
    }
    if (await timedOut(release(), boundMs)) this.log.warn({ boundMs, partitions: this.partitions }, 'bridge worker stopped without releasing its partitions (Redis did not answer); their leases lapse')
  }
}
