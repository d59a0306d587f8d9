// The cluster's feed of committed messages: how a bridge worker tells every
// broker that messages are in history (docs/architecture.md § Delivery to a
// device in the cluster).
//
// Per partition and event-loop turn, one Redis command (a script) does three
// things for the messages the worker committed in that turn:
//   - raises each chat's last seq in the partition's hash
//     (mqchat:last:{p<N>}), which a broker reads when it starts or after its
//     feed was interrupted;
//   - appends each message to its chat's recent cache, a sorted set by seq
//     (mqchat:recent:{p<N>}:<chat>), bounded per chat and expiring when the
//     chat is quiet, from which brokers serve devices a little behind;
//   - publishes the messages on mqchat:committed, which every broker
//     subscribes to and hands to its inbox (broker/inbox.ts).
// Every key of one call carries the partition's hash tag, so the script runs
// on one Redis Cluster node. A worker acknowledges its stream entries only
// after this call, so a crash repeats it (same seqs), never skips it.
import { luaScript, type RedisConnection } from './redis.js'
import type { StoredMessage } from '../store/types.js'
import { partitionOf } from './chat-stream.js'
import { groupBy } from '../lib/group.js'

export const COMMITTED_CHANNEL = 'mqchat:committed'
export const lastKey = (partition: number): string => `mqchat:last:{p${partition}}`
export const recentKey = (partition: number, chatId: string): string => `mqchat:recent:{p${partition}}:${chatId}`

// KEYS[1]: the partition's last-seq hash; KEYS[2..]: recent caches, one per chat.
// ARGV: channel, per-chat bound, ttl seconds, then per chat: key index, chat id, message count n,
// then n times: seq, message JSON, "1" if it changes earlier messages (edit, delete); a chat's messages in seq order.
// Per chat, one HGET and at most one HSET, one ZRANGE, one ZADD of its new messages, one trim and one EXPIRE.
// The announcement is the messages' JSON joined into an array here, so each is sent to Redis once.
const COMMIT = `
local perChat = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local all = {}
local i = 4
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i])]
  local chat = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
  local top = perChat > 0 and redis.call('ZRANGE', key, -1, -1, 'WITHSCORES') or {}
  local last = top[2] and tonumber(top[2]) or nil
  local reset = false
  local adds = {}
  local newest = 0
  for j = 0, n - 1 do
    local seq = tonumber(ARGV[i + 3 + j * 3])
    local json = ARGV[i + 4 + j * 3]
    all[#all + 1] = json
    if seq > newest then newest = seq end
    if ARGV[i + 5 + j * 3] == '1' then reset = true adds = {} last = nil end
    if last == nil or seq == last + 1 then
      adds[#adds + 1] = seq
      adds[#adds + 1] = json
      last = seq
    elseif seq > last + 1 then
      reset = true
      adds = { seq, json }
      last = seq
    end
  end
  if newest > tonumber(redis.call('HGET', KEYS[1], chat) or '0') then redis.call('HSET', KEYS[1], chat, newest) end
  -- With no cache (a bound of 0) the chat has no recent set at all.
  if perChat > 0 then
    if reset then redis.call('DEL', key) end
    for k = 1, #adds, 200 do redis.call('ZADD', key, unpack(adds, k, math.min(k + 199, #adds))) end
    redis.call('ZREMRANGEBYRANK', key, 0, -(perChat + 1))
    redis.call('EXPIRE', key, ttl)
  end
  i = i + 3 + n * 3
end
redis.call('PUBLISH', ARGV[1], '[' .. table.concat(all, ',') .. ']')
return 1`

interface Waiting { messages: StoredMessage[], resolve: Array<() => void>, reject: Array<(err: unknown) => void> }

export interface CommitFeedOptions {
  partitions: number
  /** Messages kept per chat in its recent cache (MQCHAT_CLUSTER_RECENT_PER_CHAT); 0: no cache. */
  recentPerChat: number
  /** A chat's recent cache expires this long after its last message. */
  recentTtlSeconds: number
}

export class CommitFeed {
  readonly #commit: (...args: Array<string | number>) => Promise<unknown>
  #waiting = new Map<number, Waiting>()
  #scheduled = false

  constructor (redis: RedisConnection, private readonly opts: CommitFeedOptions) {
    this.#commit = luaScript(redis, 'Commit', COMMIT)
  }

  /** A message is in history: resolved once the brokers have been told (and its chat's last seq and cache are raised). */
  committed (m: StoredMessage): Promise<void> {
    const p = partitionOf(m.chatId, this.opts.partitions)
    let w = this.#waiting.get(p)
    if (!w) this.#waiting.set(p, w = { messages: [], resolve: [], reject: [] })
    w.messages.push(m)
    const done = new Promise<void>((resolve, reject) => { w.resolve.push(resolve); w.reject.push(reject) })
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.flush())
    }
    return done
  }

  private flush (): void {
    this.#scheduled = false
    const all = [...this.#waiting]
    this.#waiting.clear()
    for (const [p, w] of all) {
      this.send(p, w.messages).then(() => { for (const r of w.resolve) r() }, (err: unknown) => { for (const r of w.reject) r(err) })
    }
  }

  private async send (p: number, messages: StoredMessage[]): Promise<void> {
    const keys = [lastKey(p)]
    const args: Array<string | number> = [COMMITTED_CHANNEL, this.opts.recentPerChat, this.opts.recentTtlSeconds]
    for (const [chatId, list] of groupBy(messages, (m) => m.chatId)) {
      keys.push(recentKey(p, chatId))
      args.push(keys.length, chatId, list.length)
      list.sort((a, b) => a.seq - b.seq)
      // Each message is serialised and sent once: for its cache entry and, joined by the script, for the announcement.
      for (const m of list) args.push(m.seq, JSON.stringify(m), m.type === 'edit' || m.type === 'delete' ? '1' : '0')
    }
    await this.#commit(keys.length, ...keys, ...args)
  }
}
