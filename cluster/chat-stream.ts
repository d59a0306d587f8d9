// The chat stream: accepted chat publishes on their way from the brokers to
// the bridge workers, durable in Redis (DESIGN §5).
//
// One Redis stream per partition (mqchat:chat-stream:<p>); a chat always
// hashes to the same partition, so the order of one chat's publishes is the
// stream order. A broker appends (XADD) before it PUBACKs. Workers read a
// partition through the consumer group "bridge", and acknowledge and delete an
// entry (XACK + XDEL) only after its message is in history and its inbox
// copies are queued.
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
}

export class ChatStream {
  constructor (private readonly redis: RedisConnection, readonly partitions: number) {}

  /** Appends an accepted publish; resolves once Redis has it (and, with appendfsync always, on disk). */
  async append (chatId: string, deviceId: string, payload: Buffer): Promise<string> {
    const id = await this.redis.xaddBuffer(streamKey(partitionOf(chatId, this.partitions)), '*', 'd', deviceId, 'c', chatId, 'p', payload, 't', String(Date.now()))
    return id?.toString() ?? ''
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
    out.push({ id: id.toString(), deviceId: d.toString(), chatId: c.toString(), payload: p, at: Number(f.get('t')?.toString() ?? 0) })
  }
  return out
}
