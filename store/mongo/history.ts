// Message history on MongoDB, without multi-document transactions, and with
// the hot path made only of inserts and lookups by _id: FerretDB 1.x (the
// test-time server) answers any other filter, and any update, by scanning
// the collection (bench/README.md § the cluster profile).
//
// append(), for one chat at a time (serialised here, and across processes by
// the bridge's partition ownership):
//   1. an edit, delete or reaction first looks for a repeat of (sending
//      device, client id) in `client_ids` (_id = device + client id -> chat,
//      seq), then applies its effect on the target: each is idempotent, so a
//      crash before step 2 is repaired when the sender's retry (or the chat
//      stream's redelivery) repeats the append;
//   2. the message is inserted under the chat's next seq: the last one this
//      process stored, else the last one stored at all (lastSeq). The seq is
//      the unique _id, so two writers can never share one; the loser of such
//      a race takes the next. The unique (device, client id) index refuses a
//      repeat, which is then found by _id in `client_ids` (or, without its
//      record, after a crash between steps 2 and 3 or in older data, found
//      the slow way once and recorded). No seq is taken before its message
//      exists, so a crash leaves no gap;
//   3. the client id is recorded in `client_ids`;
//   4. the chat counter, a lower bound of the last seq that lastSeq steps up
//      from, is raised every 64 messages and when the chat has been idle for
//      a second; retention raises it before it deletes, so that seqs are
//      never reused after the newest messages were purged.
// The `fannedOut` flag is the outbox, as in the SQLite adapter (the cluster
// stores every message settled: its chat stream is the outbox).
import type { Collection, Db } from 'mongodb'
import { KeyedQueue } from '../../lib/serial.js'
import { isExpired, type AppendOptions, type AppendResult, type HistoryStore, type MessageEffect, type NewMessage, type Reaction, type StoredMessage, type Watermark } from '../types.js'
import { isDuplicateKey } from './database.js'
import { GroupedInsert } from './grouped-insert.js'

/** A stored message with every optional field present, plus the storage fields. */
interface MessageDoc extends Required<StoredMessage> {
  _id: string
  /** serverTs as a date (for operators' queries; no index uses it since retention dropped its TTL index). */
  serverAt: Date
  fannedOut: boolean
}
interface CounterDoc { _id: string, last: number }
/** _id: sending device + "\n" + client id. */
interface ClientIdDoc { _id: string, chatId: string, seq: number, serverTs: number, serverAt: Date }
interface ReactionDoc { _id: string, chatId: string, seq: number, userId: string, emoji: string }
interface ReceiptDoc { _id: string, chatId: string, userId: string, delivered: number, read: number, updatedAt: number }

/** The chat counter is raised at least every this many messages of a chat (see counterFollows). */
const COUNTER_EVERY = 64
const COUNTER_IDLE_MS = 1000

const msgId = (chatId: string, seq: number): string => `${chatId}\n${seq}`
const clientKey = (senderDevice: string, clientId: string): string => `${senderDevice}\n${clientId}`
const toMessage = (d: MessageDoc): StoredMessage => ({
  chatId: d.chatId,
  seq: d.seq,
  senderUser: d.senderUser,
  senderDevice: d.senderDevice,
  clientId: d.clientId,
  type: d.type,
  body: d.body,
  clientTs: d.clientTs,
  serverTs: d.serverTs,
  ref: d.ref,
  forwarded: d.forwarded,
  editedAt: d.editedAt,
  deletedAt: d.deletedAt,
  media: d.media,
  ...(d.expiresAt !== null && d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {})
})
/** Expired messages are never read, purged or not yet. */
const live = (d: MessageDoc | null, now = Date.now()): d is MessageDoc => d !== null && !isExpired(d, now)
const toWatermark = (r: ReceiptDoc): Watermark => ({ chatId: r.chatId, userId: r.userId, delivered: r.delivered, read: r.read, updatedAt: r.updatedAt })

export class MongoHistory implements HistoryStore {
  #messages: Collection<MessageDoc>
  #counters: Collection<CounterDoc>
  #reactions: Collection<ReactionDoc>
  #receipts: Collection<ReceiptDoc>
  #clientIds: Collection<ClientIdDoc>
  /** A turn's inserts as one insertMany each (the chats' appends run concurrently). */
  #insertMessage: GroupedInsert<MessageDoc>
  #insertClientId: GroupedInsert<ClientIdDoc>
  #queue = new KeyedQueue()
  /**
   * The last seq this process stored per chat: the next append needs no
   * counter read. Another writer's message under the same seq is refused by
   * the _id, and the seq is then read again.
   */
  #last = new Map<string, number>()
  /** The counter value this process last wrote per chat. */
  #counted = new Map<string, number>()
  /** Chats whose counter is raised when they have been idle for COUNTER_IDLE_MS. */
  #idle = new Map<string, NodeJS.Timeout>()

  constructor (db: Db) {
    this.#messages = db.collection('messages')
    this.#counters = db.collection('chat_seq')
    this.#reactions = db.collection('reactions')
    this.#receipts = db.collection('receipts')
    this.#clientIds = db.collection('client_ids')
    this.#insertMessage = new GroupedInsert(this.#messages)
    this.#insertClientId = new GroupedInsert(this.#clientIds)
  }

  async init (): Promise<void> {
    // The hot queries, one index each: a chat's messages by seq (history,
    // sync, the next seq), and a device's client id (idempotency).
    await this.#messages.createIndex({ chatId: 1, seq: 1 }, { unique: true, name: 'messages_by_chat_seq' })
    await this.#messages.createIndex({ senderDevice: 1, clientId: 1 }, { unique: true, name: 'messages_by_client_id' })
    await this.#messages.createIndex({ fannedOut: 1, serverTs: 1 }, { name: 'messages_pending_fanout' })
    await this.#messages.createIndex({ serverTs: 1 }, { name: 'messages_by_time' })
    await this.#messages.createIndex({ expiresAt: 1 }, { name: 'messages_by_expiry' })
    // Retention is the purge job alone (purgeBefore), which raises chat counters before it deletes; a TTL
    // index would delete behind their back. Files from before this drop theirs.
    await this.#messages.dropIndex('messages_ttl').catch(() => { /* none */ })
    await this.#clientIds.createIndex({ serverTs: 1 }, { name: 'client_ids_by_time' })
    await this.#reactions.createIndex({ chatId: 1, seq: 1, userId: 1 }, { name: 'reactions_by_chat_seq' })
    await this.#receipts.createIndex({ chatId: 1, userId: 1 }, { name: 'receipts_by_chat' })
  }

  append (m: NewMessage, effect?: MessageEffect, opts: AppendOptions = {}): Promise<AppendResult> {
    return this.#queue.run(m.chatId, async () => {
      if (effect) {
        // An edit, delete or reaction is applied before its message is stored (see above), so a repeat must be known first.
        const earlier = await this.byClientKey(m.senderDevice, m.clientId)
        if (earlier) return { message: earlier, duplicate: true }
        await this.apply(m.chatId, effect)
      }
      for (let attempt = 0; ; attempt++) {
        const seq = (this.#last.get(m.chatId) ?? await this.lastSeq(m.chatId)) + 1
        const doc: MessageDoc = {
          _id: msgId(m.chatId, seq),
          chatId: m.chatId,
          seq,
          senderUser: m.senderUser,
          senderDevice: m.senderDevice,
          clientId: m.clientId,
          type: m.type,
          body: m.body,
          clientTs: m.clientTs,
          serverTs: m.serverTs,
          serverAt: new Date(m.serverTs),
          ref: m.ref ?? null,
          forwarded: m.forwarded === true,
          editedAt: null,
          deletedAt: null,
          media: m.media ?? null,
          expiresAt: m.expiresAt ?? null,
          fannedOut: opts.settled === true
        }
        try {
          await this.#insertMessage.insert(doc)
        } catch (err) {
          if (!isDuplicateKey(err) || attempt >= 5) throw err
          this.#last.delete(m.chatId)
          // A repeat: refused by the unique (device, client id) index, and found by _id in client_ids.
          const earlier = await this.byClientKey(m.senderDevice, m.clientId)
          if (earlier) return { message: earlier, duplicate: true }
          // Another writer took this seq: take the next one.
          if (await this.#messages.findOne({ _id: doc._id }, { projection: { _id: 1 } }) !== null) continue
          // A repeat without its client_ids record (a crash between the two inserts, or older data): found the slow way, and recorded.
          const stored = await this.#messages.findOne({ senderDevice: m.senderDevice, clientId: m.clientId })
          if (!stored) continue
          await this.recordClientId(stored)
          return { message: toMessage(stored), duplicate: true }
        }
        this.#last.set(m.chatId, seq)
        await this.recordClientId(doc)
        await this.counterFollows(m.chatId, seq)
        return { message: toMessage(doc), duplicate: false }
      }
    })
  }

  /**
   * The chat counter is a lower bound of the chat's last seq (lastSeq steps
   * over the messages above it), raised once every COUNTER_EVERY messages,
   * and once the chat has been quiet for COUNTER_IDLE_MS: an update costs
   * FerretDB more than an insert. Retention raises it before it deletes (purgeBefore).
   */
  private async counterFollows (chatId: string, seq: number): Promise<void> {
    if (seq - (this.#counted.get(chatId) ?? 0) >= COUNTER_EVERY) {
      await this.raiseCounter(chatId, seq)
      return
    }
    // Pushed back by every append: a busy chat's counter moves every COUNTER_EVERY messages, a quiet one's once.
    const waiting = this.#idle.get(chatId)
    if (waiting) {
      waiting.refresh()
      return
    }
    const timer = setTimeout(() => {
      this.#idle.delete(chatId)
      const last = this.#last.get(chatId)
      if (last !== undefined) this.raiseCounter(chatId, last).catch(() => { /* raised by the next append or by retention */ })
    }, COUNTER_IDLE_MS)
    timer.unref()
    this.#idle.set(chatId, timer)
  }

  private async raiseCounter (chatId: string, seq: number): Promise<void> {
    if ((this.#counted.get(chatId) ?? 0) >= seq) return
    await this.#counters.updateOne({ _id: chatId }, { $max: { last: seq } }, { upsert: true })
    this.#counted.set(chatId, Math.max(seq, this.#counted.get(chatId) ?? 0))
  }

  private async recordClientId (d: MessageDoc): Promise<void> {
    try {
      await this.#insertClientId.insert({ _id: clientKey(d.senderDevice, d.clientId), chatId: d.chatId, seq: d.seq, serverTs: d.serverTs, serverAt: d.serverAt })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      // A record left by a message retention purged since (rare: purges take both).
      await this.#clientIds.replaceOne({ _id: clientKey(d.senderDevice, d.clientId) }, { chatId: d.chatId, seq: d.seq, serverTs: d.serverTs, serverAt: d.serverAt })
    }
  }

  /** Through `client_ids` only: lookups by _id. A record whose message retention purged answers nothing. */
  private async byClientKey (senderDevice: string, clientId: string): Promise<StoredMessage | undefined> {
    const ref = await this.#clientIds.findOne({ _id: clientKey(senderDevice, clientId) })
    return ref ? await this.get(ref.chatId, ref.seq) : undefined
  }

  private async apply (chatId: string, e: MessageEffect): Promise<void> {
    switch (e.kind) {
      case 'edit':
        await this.#messages.updateOne({ _id: msgId(chatId, e.seq) }, { $set: { body: e.body, editedAt: e.at } })
        break
      case 'delete':
        await this.#messages.updateOne({ _id: msgId(chatId, e.seq) }, { $set: { body: 'null', deletedAt: e.at } })
        await this.#messages.updateMany({ chatId, ref: e.seq, type: 'edit' }, { $set: { body: 'null' } })
        await this.#reactions.deleteMany({ chatId, seq: e.seq })
        break
      case 'reaction': {
        const _id = `${msgId(chatId, e.seq)}\n${e.userId}`
        if (e.emoji === null) await this.#reactions.deleteOne({ _id })
        else await this.#reactions.replaceOne({ _id }, { chatId, seq: e.seq, userId: e.userId, emoji: e.emoji }, { upsert: true })
        break
      }
    }
  }

  async findByClientId (senderDevice: string, clientId: string): Promise<StoredMessage | undefined> {
    const found = await this.byClientKey(senderDevice, clientId)
    if (found) return found
    // A message stored before client_ids existed (a scan on FerretDB; only on a refusal's path).
    const d = await this.#messages.findOne({ senderDevice, clientId })
    return d ? toMessage(d) : undefined
  }

  async get (chatId: string, seq: number): Promise<StoredMessage | undefined> {
    const d = await this.#messages.findOne({ _id: msgId(chatId, seq) })
    return live(d) ? toMessage(d) : undefined
  }

  async reactions (chatId: string, fromSeq: number, toSeq: number): Promise<Reaction[]> {
    const docs = await this.#reactions.find({ chatId, seq: { $gte: fromSeq, $lte: toSeq } }).sort({ seq: 1, userId: 1 }).toArray()
    return docs.map((r) => ({ seq: r.seq, userId: r.userId, emoji: r.emoji }))
  }

  async after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    if (limit <= 0) return []
    // Expired messages are left out here rather than in the query (an $or would keep FerretDB from using the index);
    // the purge removes them within a minute, so a page seldom needs another read.
    const now = Date.now()
    const out: StoredMessage[] = []
    let from = afterSeq
    for (;;) {
      const want = limit - out.length
      const page = await this.#messages.find({ chatId, seq: { $gt: from } }).sort({ seq: 1 }).limit(want).toArray()
      for (const d of page) if (live(d, now)) out.push(toMessage(d))
      // The end of the chat, or a full page: done. A full page with expired messages in it: read on.
      if (page.length < want || out.length >= limit) return out
      from = page.at(-1)!.seq
    }
  }

  /**
   * The chat counter, stepped over the messages stored above it (it lags by
   * design, see counterFollows; and an append may stop between its insert
   * and the counter update). Those messages are a run without holes, so the
   * last one is found by doubling steps and then halving them, a few lookups
   * by _id. Only lookups by _id: a sort on seq scans the collection on
   * servers without index use for sorts (FerretDB 1.x).
   */
  async lastSeq (chatId: string): Promise<number> {
    const counted = (await this.#counters.findOne({ _id: chatId }))?.last ?? 0
    const found = Math.max(counted, this.#last.get(chatId) ?? 0)
    const exists = async (seq: number): Promise<boolean> => await this.#messages.findOne({ _id: msgId(chatId, seq) }, { projection: { _id: 1 } }) !== null
    if (!await exists(found + 1)) return found
    let lo = found + 1
    let step = 1
    while (await exists(lo + step)) { lo += step; step *= 2 }
    let hi = lo + step
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (await exists(mid)) lo = mid
      else hi = mid
    }
    return lo
  }

  async firstSeq (chatId: string): Promise<number> {
    const oldest = await this.#messages.find({ chatId }, { projection: { seq: 1 } }).sort({ seq: 1 }).limit(1).next()
    return oldest ? oldest.seq : (await this.lastSeq(chatId)) + 1
  }

  async purgeBefore (serverTs: number): Promise<number> {
    // The counters keep (at least) the newest purged seq of each chat, so purged seqs are never reused.
    // (Read as a stream and reduced here: FerretDB 1.x has no $max accumulator in $group.)
    const newest = new Map<string, number>()
    for await (const d of this.#messages.find({ serverTs: { $lt: serverTs } }, { projection: { chatId: 1, seq: 1 } })) {
      if (d.seq > (newest.get(d.chatId) ?? 0)) newest.set(d.chatId, d.seq)
    }
    for (const [chatId, seq] of newest) await this.raiseCounter(chatId, seq)
    const n = (await this.#messages.deleteMany({ serverTs: { $lt: serverTs } })).deletedCount
    await this.#clientIds.deleteMany({ serverTs: { $lt: serverTs } })
    return n
  }

  async eraseSender (chatId: string, userId: string, at: number): Promise<number> {
    const n = (await this.#messages.updateMany({ chatId, senderUser: userId }, { $set: { body: 'null', media: null } })).modifiedCount
    await this.#messages.updateMany({ chatId, senderUser: userId, deletedAt: null }, { $set: { deletedAt: at } })
    await this.#reactions.deleteMany({ chatId, userId })
    await this.#receipts.deleteOne({ _id: `${chatId}\n${userId}` })
    return n
  }

  async purgeExpired (now: number): Promise<string[]> {
    const expired = await this.#messages.find({ expiresAt: { $lte: now } }, { projection: { chatId: 1, seq: 1, senderDevice: 1, clientId: 1 } }).toArray()
    if (expired.length === 0) return []
    // As for retention: the counters keep the newest expired seq of each chat, so it is never reused.
    const newest = new Map<string, number>()
    for (const d of expired) if (d.seq > (newest.get(d.chatId) ?? 0)) newest.set(d.chatId, d.seq)
    for (const [chatId, seq] of newest) await this.raiseCounter(chatId, seq)
    for (const d of expired) {
      await this.#reactions.deleteMany({ chatId: d.chatId, seq: d.seq })
      await this.#clientIds.deleteOne({ _id: clientKey(d.senderDevice, d.clientId) })
    }
    await this.#messages.deleteMany({ expiresAt: { $lte: now } })
    return [...newest.keys()]
  }

  async pendingFanout (limit: number): Promise<StoredMessage[]> {
    if (limit <= 0) return []
    return (await this.#messages.find({ fannedOut: false }).sort({ serverTs: 1, chatId: 1, seq: 1 }).limit(limit).toArray()).map(toMessage)
  }

  async markFannedOut (chatId: string, seq: number): Promise<void> {
    await this.#messages.updateOne({ _id: msgId(chatId, seq) }, { $set: { fannedOut: true } })
  }

  async advanceReceipt (chatId: string, userId: string, delivered: number, read: number, at: number): Promise<Watermark | undefined> {
    const _id = `${chatId}\n${userId}`
    // Compare-and-set on the current values: concurrent advances retry, and the watermark only rises.
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.#receipts.findOne({ _id })
      const nextRead = Math.max(cur?.read ?? 0, read)
      const nextDelivered = Math.max(cur?.delivered ?? 0, delivered, nextRead)
      if (cur && nextRead === cur.read && nextDelivered === cur.delivered) return undefined
      if (!cur && nextRead === 0 && nextDelivered === 0) return undefined
      const next: ReceiptDoc = { _id, chatId, userId, delivered: nextDelivered, read: nextRead, updatedAt: at }
      if (!cur) {
        try {
          await this.#receipts.insertOne(next)
          return toWatermark(next)
        } catch (err) {
          if (isDuplicateKey(err)) continue
          throw err
        }
      }
      const r = await this.#receipts.updateOne({ _id, delivered: cur.delivered, read: cur.read }, { $set: { delivered: nextDelivered, read: nextRead, updatedAt: at } })
      if (r.matchedCount === 1) return toWatermark(next)
    }
    throw new Error(`receipt of ${userId} in ${chatId} kept changing concurrently`)
  }

  async getReceipt (chatId: string, userId: string): Promise<Watermark | undefined> {
    const r = await this.#receipts.findOne({ _id: `${chatId}\n${userId}` })
    return r ? toWatermark(r) : undefined
  }

  async receipts (chatId: string): Promise<Watermark[]> {
    return (await this.#receipts.find({ chatId }).sort({ userId: 1 }).toArray()).map(toWatermark)
  }

  async authorsBetween (chatId: string, afterSeq: number, upToSeq: number): Promise<string[]> {
    return this.#messages.distinct('senderUser', { chatId, seq: { $gt: afterSeq, $lte: upToSeq } }) as Promise<string[]>
  }

  async countUnread (chatId: string, afterSeq: number, userId: string, cap: number): Promise<number> {
    return await this.#messages.countDocuments({ chatId, seq: { $gt: afterSeq }, senderUser: { $ne: userId }, type: { $in: ['text', 'media', 'reply'] }, deletedAt: null, expiresAt: { $not: { $lte: Date.now() } } }, { limit: cap })
  }

  /** Raises the counters of chats still waiting for it (the client is closed by its owner, shared with the other stores). */
  async close (): Promise<void> {
    const waiting = [...this.#idle.entries()]
    this.#idle.clear()
    for (const [chatId, timer] of waiting) {
      clearTimeout(timer)
      const last = this.#last.get(chatId)
      if (last !== undefined) await this.raiseCounter(chatId, last)
    }
  }
}
