// Devices' positions in the cluster, in Redis, and what a broker's inbox
// reads besides its memory: the chats' last seqs and recent caches that the
// bridge workers keep (cluster/commit-feed.ts), with history behind them.
//
// A device's positions are one hash, mqchat:pos:{<device>} (chat -> the
// highest seq it acknowledged there), read when it attaches to a broker and
// raised, never lowered, by the broker that serves it: in batches every
// MQCHAT_INBOX_FLUSH_MS and when its connection ends. So a device that
// reconnects to another broker continues where it was (at worst one flush
// interval earlier: same-seq repeats, which clients drop).
import type { Logger } from 'pino'
import { luaScript, type RedisConnection } from './redis.js'
import type { InboxHistory } from '../broker/inbox.js'
import { isExpired, type HistoryStore, type Position, type PositionStore, type StoredMessage } from '../store/types.js'
import { COMMITTED_CHANNEL, lastKey, recentKey } from './commit-feed.js'
import { partitionOf } from './chat-stream.js'
import { groupBy } from '../lib/group.js'

export const positionsKey = (deviceId: string): string => `mqchat:pos:{${deviceId}}`

// KEYS[1]: a device's positions; ARGV: chat, seq, chat, seq, …; each raised only.
const RAISE = `
for i = 1, #ARGV, 2 do
  local seq = tonumber(ARGV[i + 1])
  if seq > tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1') then redis.call('HSET', KEYS[1], ARGV[i], seq) end
end
return 1`

export class RedisPositions implements PositionStore {
  readonly #redis: RedisConnection
  readonly #raise: (...args: Array<string | number>) => Promise<unknown>

  constructor (redis: RedisConnection, private readonly partitions: number) {
    this.#raise = luaScript(redis, 'Raise', RAISE, 1)
    this.#redis = redis
  }

  async positions (deviceId: string): Promise<Map<string, number>> {
    const h = await this.#redis.hgetall(positionsKey(deviceId))
    return new Map(Object.entries(h).map(([chat, seq]) => [chat, Number(seq)]))
  }

  async savePositions (rows: Position[]): Promise<void> {
    const byDevice = groupBy(rows, (r) => r.deviceId)
    await Promise.all([...byDevice].map(([deviceId, own]) => this.#raise(positionsKey(deviceId), ...own.flatMap((r) => [r.chatId, r.seq]))))
  }

  /** Learnt from Redis once the feed is subscribed (lastSeqsNow), not at construction. */
  lastSeqs (): Map<string, number> { return new Map() }

  /** Every chat's last seq, as the bridge workers recorded them: one read per partition. */
  async lastSeqsNow (): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    const hashes = await Promise.all(Array.from({ length: this.partitions }, async (_, p) => await this.#redis.hgetall(lastKey(p))))
    for (const h of hashes) for (const [chat, seq] of Object.entries(h)) out.set(chat, Number(seq))
    return out
  }

  /** A new device starts at the current end of each of its user's chats: it is owed what comes after its creation. */
  async provision (deviceId: string, chatIds: Iterable<string>): Promise<void> {
    const byPartition = groupBy(chatIds, (chatId) => partitionOf(chatId, this.partitions))
    const args: Array<string | number> = []
    await Promise.all([...byPartition].map(async ([p, chats]) => {
      const seqs = await this.#redis.hmget(lastKey(p), ...chats)
      chats.forEach((chat, i) => args.push(chat, Number(seqs[i] ?? 0)))
    }))
    if (args.length > 0) await this.#raise(positionsKey(deviceId), ...args)
  }

  async dropDevice (deviceId: string): Promise<void> {
    await this.#redis.del(positionsKey(deviceId))
  }
}

/**
 * What a broker's inbox reads past its memory: a chat's recent cache in
 * Redis when it holds the message right after the position, else history.
 * One Redis command per page; history (a scan per page on FerretDB 1.x, an
 * index range on MongoDB) only for devices further behind than the cache.
 */
export class RecentThenHistory implements InboxHistory {
  constructor (private readonly redis: RedisConnection, private readonly history: Pick<HistoryStore, 'after'>, private readonly partitions: number) {}

  async after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    const key = recentKey(partitionOf(chatId, this.partitions), chatId)
    const cached = await this.redis.zrangebyscore(key, `(${afterSeq}`, '+inf', 'LIMIT', 0, limit)
    if (cached.length > 0) {
      const page = cached.map((json) => JSON.parse(json) as StoredMessage)
      // An expired disappearing message is never served from here (the sweep drops the cache within a minute): history leaves it out.
      const now = Date.now()
      if (page[0]!.seq === afterSeq + 1 && !page.some((m) => isExpired(m, now))) return page
    }
    return await this.history.after(chatId, afterSeq, limit)
  }
}

/** Receives the feed of committed messages on a connection of its own (a subscriber can do nothing else). */
export interface FeedHandlers {
  committed (m: StoredMessage): void
  /** The subscription was down for a while: what was published meanwhile is lost; chats' last seqs must be read again. */
  resumed (): void
}

export async function subscribeFeed (sub: RedisConnection, on: FeedHandlers, log: Logger): Promise<void> {
  let lost = false
  sub.on('close', () => { lost = true })
  sub.on('ready', () => {
    if (!lost) return
    lost = false
    // ioredis subscribes again by itself; subscribing here too (harmless) tells when that is done,
    // so that nothing published after the last seqs are read again can be missed.
    sub.subscribe(COMMITTED_CHANNEL).then(() => {
      log.warn('feed of committed messages restored: reading chats\' last seqs again')
      on.resumed()
    }, (err: unknown) => log.error({ err }, 'subscribing to the feed of committed messages again failed'))
  })
  sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
    if (channel.toString() !== COMMITTED_CHANNEL) return
    let messages: StoredMessage[]
    try {
      messages = JSON.parse(payload.toString('utf8')) as StoredMessage[]
    } catch (err) {
      log.error({ err }, 'unreadable entry in the feed of committed messages')
      return
    }
    for (const m of messages) on.committed(m)
  })
  await sub.subscribe(COMMITTED_CHANNEL)
}
