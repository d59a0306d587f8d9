// Message history on MongoDB, without multi-document transactions. The hot
// path is inserts, in batches: a message is one document, and nothing else is
// written for it. Reads and updates are kept off that path because FerretDB
// 1.24 (the test-time server) scans the collection for them: for any filter
// on its PostgreSQL backend, _id included (measured: 7–9 ms a lookup at 20,000
// messages, whatever the field), and for anything but _id on SQLite
// (bench/README.md § the cluster profile).
//
// append() keeps each chat's appends in call order, and stores them in runs
// (one chat's messages at a time; across processes, the bridge's partition
// ownership keeps one writer per chat):
//   1. an edit, delete or reaction first looks for a repeat of (sending
//      device, client id), then applies its effect on the target: each is
//      idempotent, so a crash before step 2 is repaired when the sender's
//      retry (or the chat stream's redelivery) repeats the append. It waits
//      for the chat's run in flight, and starts a run of its own;
//   2. every other append waiting for the chat joins one run: consecutive
//      seqs after the last one stored (this process's, else lastSeq), and
//      every chat's run of the turn goes in one ordered insertMany, so a run
//      is stored as a prefix. The seq is the unique _id, so two writers can
//      never share one; the loser of such a race reads the last seq again.
//      The unique (device, client id) index refuses a repeat, which is then
//      found through that index; the appends after it go in the next run,
//      under the seqs it did not take. So no seq is taken before its message
//      exists, and a crash leaves no gap. While a run is in flight, the
//      chat's new appends wait and form the next one: a busy chat's messages
//      travel in batches;
//   3. the chat counter, a lower bound of the last seq that lastSeq steps up
//      from, is raised every 64 messages and when the chat has been idle for
//      a second; retention raises it before it deletes, so that seqs are
//      never reused after the newest messages were purged.
// The `fannedOut` flag is the outbox, as in the SQLite adapter (the cluster
// stores every message settled: its chat stream is the outbox).
import type { Collection, Db, MongoServerError } from 'mongodb'
import { isExpired, type AppendOptions, type AppendResult, type HistoryStore, type MessageEffect, type NewMessage, type Reaction, type StoredMessage, type Watermark } from '../types.js'
import { isDuplicateKey } from './database.js'
import { OrderedInsert, type RunOutcome } from './ordered-insert.js'

/**
 * A stored message as a document: fields at their default (null, false) are
 * left out, as is `fannedOut` once true. FerretDB's cost to store a document
 * follows its fields (measured on its PostgreSQL backend, batches of 64: 78 µs
 * of CPU a message with all 18 fields, 50 µs without the defaults). Queries
 * match a missing field as MongoDB does: `{deletedAt: null}` finds it, and
 * `{expiresAt: {$lte: t}}` does not. Documents written with every field (before
 * 2026-12) read the same.
 */
interface MessageDoc {
  _id: string
  chatId: string
  seq: number
  senderUser: string
  senderDevice: string
  clientId: string
  type: string
  body: string
  serverTs: number
  clientTs?: number | null
  ref?: number | null
  forwarded?: boolean
  editedAt?: number | null
  deletedAt?: number | null
  media?: string | null
  expiresAt?: number | null
  /** Present (false) while the fan-out is pending; gone or true once done. */
  fannedOut?: boolean
}
/** An append waiting for its chat's writer. `effect` is cleared once applied. */
interface Append {
  m: NewMessage
  effect: MessageEffect | undefined
  settled: boolean
  /** Times its seq was found taken by another writer. */
  attempts: number
  resolve: (r: AppendResult) => void
  reject: (err: unknown) => void
}
/** A chat's appends, in call order; `busy` while a run of them (or its preparation) is in flight. */
interface ChatWriter { chatId: string, queue: Append[], busy: boolean }
interface CounterDoc { _id: string, last: number }
interface ReactionDoc { _id: string, chatId: string, seq: number, userId: string, emoji: string }
interface ReceiptDoc { _id: string, chatId: string, userId: string, delivered: number, read: number, updatedAt: number }

/** The chat counter is raised at least every this many messages of a chat (see counterFollows). */
const COUNTER_EVERY = 64
const COUNTER_IDLE_MS = 1000

const msgId = (chatId: string, seq: number): string => `${chatId}\n${seq}`
const toMessage = (d: MessageDoc): StoredMessage => ({
  chatId: d.chatId,
  seq: d.seq,
  senderUser: d.senderUser,
  senderDevice: d.senderDevice,
  clientId: d.clientId,
  type: d.type,
  body: d.body,
  clientTs: d.clientTs ?? null,
  serverTs: d.serverTs,
  ref: d.ref ?? null,
  forwarded: d.forwarded === true,
  editedAt: d.editedAt ?? null,
  deletedAt: d.deletedAt ?? null,
  media: d.media ?? null,
  ...(d.expiresAt !== null && d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {})
})
const toDoc = (a: Append, seq: number): MessageDoc => {
  const m = a.m
  const d: MessageDoc = { _id: msgId(m.chatId, seq), chatId: m.chatId, seq, senderUser: m.senderUser, senderDevice: m.senderDevice, clientId: m.clientId, type: m.type, body: m.body, serverTs: m.serverTs }
  if (m.clientTs !== null) d.clientTs = m.clientTs
  if (m.ref !== undefined && m.ref !== null) d.ref = m.ref
  if (m.forwarded === true) d.forwarded = true
  if (m.media !== undefined && m.media !== null) d.media = m.media
  if (m.expiresAt !== undefined && m.expiresAt !== null) d.expiresAt = m.expiresAt
  if (!a.settled) d.fannedOut = false
  return d
}
/** Expired messages are never read, purged or not yet. */
const live = (d: MessageDoc | null, now = Date.now()): d is MessageDoc => d !== null && !isExpired(d, now)
const toWatermark = (r: ReceiptDoc): Watermark => ({ chatId: r.chatId, userId: r.userId, delivered: r.delivered, read: r.read, updatedAt: r.updatedAt })

export class MongoHistory implements HistoryStore {
  #messages: Collection<MessageDoc>
  #counters: Collection<CounterDoc>
  #reactions: Collection<ReactionDoc>
  #receipts: Collection<ReceiptDoc>
  /** A turn's runs of messages as one ordered insertMany. */
  #insertRun: OrderedInsert<MessageDoc>
  /** Each chat's appends waiting or in flight. */
  #writers = new Map<string, ChatWriter>()
  /** Chats whose next run goes in this turn's insert. */
  #due: ChatWriter[] = []
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
    this.#insertRun = new OrderedInsert(this.#messages)
  }

  async init (): Promise<void> {
    // The hot queries, one index each: a chat's messages by seq (history,
    // sync, the next seq), and a device's client id (idempotency).
    await this.#messages.createIndex({ chatId: 1, seq: 1 }, { unique: true, name: 'messages_by_chat_seq' })
    await this.#messages.createIndex({ senderDevice: 1, clientId: 1 }, { unique: true, name: 'messages_by_client_id' })
    // Sparse: only the documents that carry the field, the few pending a fan-out or set to expire (the others
    // leave it out), so MongoDB does not index every message twice more. (FerretDB takes the option and
    // indexes every document.)
    await this.#messages.createIndex({ fannedOut: 1 }, { name: 'messages_pending_fanout_sparse', sparse: true })
    await this.#messages.createIndex({ serverTs: 1 }, { name: 'messages_by_time' })
    await this.#messages.createIndex({ expiresAt: 1 }, { name: 'messages_by_expiry_sparse', sparse: true })
    // Retention is the purge job alone (purgeBefore), which raises chat counters before it deletes; a TTL
    // index would delete behind their back. Databases from before these changes drop their TTL index and
    // the dense forms of the two indexes above.
    for (const old of ['messages_ttl', 'messages_pending_fanout', 'messages_by_expiry']) await this.#messages.dropIndex(old).catch(() => { /* none */ })
    // Repeats are found through the messages' own (device, client id) index; a collection that recorded them apart goes.
    await this.#messages.db.collection('client_ids').drop().catch(() => { /* none */ })
    await this.#reactions.createIndex({ chatId: 1, seq: 1, userId: 1 }, { name: 'reactions_by_chat_seq' })
    await this.#receipts.createIndex({ chatId: 1, userId: 1 }, { name: 'receipts_by_chat' })
  }

  append (m: NewMessage, effect?: MessageEffect, opts: AppendOptions = {}): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      let w = this.#writers.get(m.chatId)
      if (!w) this.#writers.set(m.chatId, w = { chatId: m.chatId, queue: [], busy: false })
      w.queue.push({ m, effect, settled: opts.settled === true, attempts: 0, resolve, reject })
      this.#ready(w)
    })
  }

  /** A chat with appends waiting and none in flight joins the next turn's insert. */
  #ready (w: ChatWriter): void {
    if (w.busy || w.queue.length === 0) return
    w.busy = true
    this.#due.push(w)
    if (this.#due.length === 1) setImmediate(() => { this.#write() })
  }

  /** A chat's turn is over: the next one if more appends wait, else the writer goes. */
  #done (w: ChatWriter): void {
    w.busy = false
    if (w.queue.length > 0) this.#ready(w)
    else if (this.#writers.get(w.chatId) === w) this.#writers.delete(w.chatId)
  }

  /**
   * One turn: every due chat's waiting appends, up to its first edit, delete
   * or reaction, as a run of consecutive seqs after the last one stored; all
   * the runs in one ordered insert (store/mongo/ordered-insert.ts).
   */
  #write (): void {
    const due = this.#due
    this.#due = []
    const runs: Array<{ w: ChatWriter, appends: Append[], docs: MessageDoc[] }> = []
    for (const w of due) {
      const last = this.#last.get(w.chatId)
      const head = w.queue[0]!
      if (last === undefined || head.effect) {
        // The chat's last seq is read first; an effect is applied (after a look for a repeat) before its message is stored.
        this.#prepare(w, head, last === undefined).then(() => this.#done(w), (err: unknown) => this.#fail(w, err))
        continue
      }
      const appends: Append[] = []
      for (const a of w.queue) {
        if (a.effect) break
        appends.push(a)
      }
      runs.push({ w, appends, docs: appends.map((a, i) => toDoc(a, last + 1 + i)) })
    }
    for (const r of runs) {
      this.#insertRun.insert(r.docs).then(
        (o) => this.#stored(r.w, r.appends, r.docs, o),
        (err: unknown) => { this.#fail(r.w, err) }
      )
    }
  }

  /** Before a chat's run: its last seq read, or the effect of the append at its head applied (or the append found to be a repeat). */
  async #prepare (w: ChatWriter, head: Append, readLast: boolean): Promise<void> {
    if (readLast) this.#last.set(w.chatId, await this.lastSeq(w.chatId))
    if (!head.effect) return
    if (await this.#repeat(w, head)) return
    await this.apply(w.chatId, head.effect)
    // Applied: from here on it is stored like any other message (an effect is idempotent, so a repeat applies it again harmlessly).
    head.effect = undefined
  }

  /** What the insert did with a run: the stored prefix is recorded and settled, a refusal handled, the rest sent again. */
  async #stored (w: ChatWriter, appends: Append[], docs: MessageDoc[], o: RunOutcome): Promise<void> {
    try {
      w.queue.splice(0, o.stored)
      if (o.stored > 0) {
        const stored = docs.slice(0, o.stored)
        this.#last.set(w.chatId, stored.at(-1)!.seq)
        this.#settle(appends.slice(0, o.stored), stored)
      }
      if (o.error) await this.#refused(w, appends[o.stored]!, o.error)
      this.#done(w)
    } catch (err) {
      this.#fail(w, err)
    }
  }

  /** Stored messages are answered (and the chat counter follows). */
  #settle (appends: Append[], docs: MessageDoc[]): void {
    docs.forEach((d, i) => appends[i]!.resolve({ message: toMessage(d), duplicate: false }))
    this.counterFollows(docs[0]!.chatId, docs.at(-1)!.seq).catch(() => { /* raised by the next append, on idle, or by retention */ })
  }

  /**
   * A message the server refused: a repeat (the unique (device, client id)
   * index), found through that index and answered as such; or its seq taken
   * by another writer (the _id), so the chat's last seq is read again and the
   * message goes in the next run; anything else fails the chat's waiting appends.
   */
  async #refused (w: ChatWriter, a: Append, err: MongoServerError): Promise<void> {
    if (!isDuplicateKey(err)) throw err
    if (await this.#repeat(w, a)) return
    // Another writer took this seq: the chat's last seq is read again, and the message takes the next one.
    this.#last.delete(w.chatId)
    if (++a.attempts > 5) throw err
  }

  /** The append at the head of its chat's queue, if its device sent that client id before: answered with the original. */
  async #repeat (w: ChatWriter, a: Append): Promise<boolean> {
    const earlier = await this.findByClientId(a.m.senderDevice, a.m.clientId)
    if (!earlier) return false
    w.queue.shift()
    a.resolve({ message: earlier, duplicate: true })
    return true
  }

  /**
   * The chat's waiting appends all fail: they come after the one that failed,
   * and storing them would put them before it (its sender sends it again).
   */
  #fail (w: ChatWriter, err: unknown): void {
    this.#last.delete(w.chatId)
    for (const a of w.queue.splice(0)) a.reject(err)
    this.#done(w)
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

  /**
   * Through the unique (device, client id) index. (FerretDB 1.24 scans for it,
   * as it does for any filter on its PostgreSQL backend, _id included; this is
   * only on a repeat's path, and before an edit, delete or reaction.)
   */
  async findByClientId (senderDevice: string, clientId: string): Promise<StoredMessage | undefined> {
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
    const expired = await this.#messages.find({ expiresAt: { $lte: now } }, { projection: { chatId: 1, seq: 1 } }).toArray()
    if (expired.length === 0) return []
    // As for retention: the counters keep the newest expired seq of each chat, so it is never reused.
    const newest = new Map<string, number>()
    for (const d of expired) if (d.seq > (newest.get(d.chatId) ?? 0)) newest.set(d.chatId, d.seq)
    for (const [chatId, seq] of newest) await this.raiseCounter(chatId, seq)
    for (const d of expired) await this.#reactions.deleteMany({ chatId: d.chatId, seq: d.seq })
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
