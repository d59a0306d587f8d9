// Device inboxes as positions (the local profile's delivery model;
// docs/architecture.md § Inbox).
//
// A message is stored once, in history. What a device is owed in a chat is
// the history after its position there: the highest seq it acknowledged.
// Events that are not chat messages (receipts, chat changes, refusals) go to
// a short per-device log, kept until the device acknowledges them.
//
// For each connected device whose inbox subscription is active, an
// `Attached` record sends what it is owed, at most `window` PUBLISHes
// unacknowledged at a time: first its event log, then each chat from its
// position, from the recent-messages cache or else from history, then every
// new message as it is committed. Per chat, sends follow seq order by
// construction: a message is written live only when the one before it in
// that chat has been sent, otherwise the chat is marked behind and read in
// order. PUBACKs raise positions in memory; positions are written in
// batches every `flushMs` and when the device goes, so a crash costs at most
// some same-seq repeats, never a message.
//
// The sender's own device is "owed" its messages too: it gets them as `ack`
// events (the single tick), so the ack needs no stored copy either.
import { bodyFor, isPairwiseBody } from '../bridge/e2ee.js'
import type { Logger } from 'pino'
import type { ChatService } from '../core/chats.js'
import type { DeviceService } from '../core/devices.js'
import type { EventLogStore, HistoryStore, Position, PositionStore, StoredMessage } from '../store/types.js'
import type { RecentMessages } from '../bridge/recent.js'
import { ackEvent, msgEvent, purgedEvent, overflowEvent, tooLargeEvent } from '../bridge/events.js'

/** Where the inbox writes: one connected device's MQTT connection. */
export interface InboxConnection {
  /** Writes a QoS 1 PUBLISH to dev/<id>/inbox with this payload; returns its packet id. */
  send (payload: Buffer): number
  /** Ends the connection (the device starts again from its positions when it reconnects). */
  close (): void
  /** The device's own bound on unacknowledged PUBLISHes it receives (MQTT 5 Receive Maximum); none for 3.1.1. */
  readonly receiveMaximum?: number
  /** The largest inbox payload the device accepts (from its MQTT 5 Maximum Packet Size); none for 3.1.1. */
  readonly maxPayloadBytes?: number
}

export interface InboxOptions {
  /** Unacknowledged inbox PUBLISHes per connection (MQCHAT_INBOX_WINDOW). */
  window: number
  /** How often acknowledged positions are written (MQCHAT_INBOX_FLUSH_MS). */
  flushMs: number
  /** A device's event log bound (MQCHAT_MAX_QUEUE): past it the oldest go and the device is told to sync. */
  maxEvents: number
  /** Messages read from history per step of a catch-up. */
  pageSize: number
  /**
   * The devices' event logs (the local profile). Without one (the cluster),
   * events that are not chat messages do not come through the inbox.
   */
  events?: EventLogStore
}

/** Where the inbox reads what is not in its memory cache: history, or (the cluster) a shared cache in front of it. */
export type InboxHistory = Pick<HistoryStore, 'after'>

type Sent = { kind: 'msg', chat: string, seq: number } | { kind: 'event', n: number } | { kind: 'transient' }

/** A cached payload pair per message: the `msg` event for others, the `ack` for its sender. */
const payloads = new WeakMap<StoredMessage, { msg?: Buffer, ack?: Buffer }>()
function payloadOf (m: StoredMessage, forSender: boolean, deviceId: string): Buffer {
  // A pairwise encrypted message differs per device: each is given its own ciphertext alone.
  if (!forSender && isPairwiseBody(m.body)) return Buffer.from(msgEvent({ ...m, body: bodyFor(m.body, deviceId) }))
  let p = payloads.get(m)
  if (!p) payloads.set(m, p = {})
  if (forSender) return (p.ack ??= Buffer.from(ackEvent(m, false)))
  return (p.msg ??= Buffer.from(msgEvent(m)))
}

class Attached {
  /** Acknowledged position per chat (what is persisted). */
  readonly acked = new Map<string, number>()
  /** Highest seq handed to the connection (or passed over) per chat. */
  readonly sent = new Map<string, number>()
  // The rest is transient: created when first needed and dropped when empty again, since most attached
  // devices are idle and each empty Map or Set costs about 200 bytes (docs/architecture.md § What a connection holds).
  /** Seqs written and not yet acknowledged, per chat, ascending. */
  #pending: Map<string, number[]> | undefined
  /** What each unacknowledged packet id carries. */
  #inflight: Map<number, Sent> | undefined
  /** Chats that may have messages after `sent` not yet written. */
  #behind: Set<string> | undefined
  /** Chats whose position changed since the last flush. */
  #dirty: Set<string> | undefined
  /** Event numbers start at 1; event 0 is the overflow note. */
  eventsSent = -1
  eventsAcked = -1
  eventsDirty = false
  eventPending: number[] = []
  eventsBehind = true
  /** True while its positions are read (an asynchronous store): nothing is written before they are known. */
  loading = false
  pumping = false
  again = false
  gone = false
  constructor (readonly deviceId: string, readonly userId: string, readonly conn: InboxConnection) {}

  get inflight (): number { return this.#inflight?.size ?? 0 }
  written (id: number, s: Sent): void {
    (this.#inflight ??= new Map()).set(id, s)
    if (s.kind !== 'msg') return
    this.#pending ??= new Map()
    const list = this.#pending.get(s.chat)
    if (list) list.push(s.seq)
    else this.#pending.set(s.chat, [s.seq])
  }

  /** What a PUBACK's packet id acknowledged (undefined: not an inbox PUBLISH), no longer pending. */
  acknowledged (id: number): Sent | undefined {
    const s = this.#inflight?.get(id)
    if (s === undefined) return undefined
    this.#inflight!.delete(id)
    if (this.#inflight!.size === 0) this.#inflight = undefined
    const list = s.kind === 'msg' ? this.#pending?.get(s.chat) : undefined
    if (s.kind === 'msg' && list) {
      const i = list.indexOf(s.seq)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0) {
        this.#pending!.delete(s.chat)
        if (this.#pending!.size === 0) this.#pending = undefined
      }
    }
    return s
  }

  /** The lowest seq of a chat written and not yet acknowledged. */
  firstPending (chatId: string): number | undefined { return this.#pending?.get(chatId)?.[0] }

  isBehind (chatId: string): boolean { return this.#behind?.has(chatId) ?? false }
  get anyBehind (): boolean { return this.#behind !== undefined }
  markBehind (chatId: string): void { (this.#behind ??= new Set()).add(chatId) }
  nextBehind (): string | undefined { return this.#behind?.values().next().value }
  caughtUp (chatId: string): void {
    if (this.#behind?.delete(chatId) === true && this.#behind.size === 0) this.#behind = undefined
  }

  markDirty (chatId: string): void { (this.#dirty ??= new Set()).add(chatId) }
  /** The chats whose positions changed since the last call. */
  takeDirty (): Iterable<string> {
    const d = this.#dirty ?? []
    this.#dirty = undefined
    return d
  }
}

export class Inbox {
  #attached = new Map<string, Attached>()
  /** Attached devices with positions to write at the next flush. */
  #dirty = new Set<Attached>()
  #last: Map<string, number>
  #eventCounts: Map<string, number>
  /** Absent devices whose log overflowed since they were last attached, with how many events went (their event 0 says so). */
  #overflowed = new Map<string, number>()
  #timer: NodeJS.Timeout
  /** Position writes in progress (an asynchronous store). */
  #saving = new Set<Promise<unknown>>()

  #events: EventLogStore | undefined

  constructor (
    private readonly store: PositionStore,
    private readonly history: InboxHistory,
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly recent: RecentMessages,
    private readonly log: Logger,
    private readonly opts: InboxOptions
  ) {
    this.#last = store.lastSeqs()
    this.#events = opts.events
    this.#eventCounts = opts.events?.eventCounts() ?? new Map()
    this.#timer = setInterval(() => {
      this.flush()
      // Expired disappearing messages leave the cache within seconds (it never serves them): the cluster's brokers run no purge.
      this.recent.dropExpired(Date.now())
    }, opts.flushMs)
    this.#timer.unref()
  }

  /** Devices with a connection attached (for tests and metrics). */
  get attached (): number { return this.#attached.size }

  // ---- what the bridge tells it

  /** A message is committed: every attached member device that is in step gets it now; the others when they catch up. */
  committed (m: StoredMessage): void {
    if (m.seq > (this.#last.get(m.chatId) ?? 0)) this.#last.set(m.chatId, m.seq)
    if (m.type === 'edit' || m.type === 'delete') this.recent.forget(m.chatId)
    this.recent.add(m)
    for (const userId of this.chats.memberIds(m.chatId)) {
      for (const deviceId of this.devices.activeIds(userId)) {
        const a = this.#attached.get(deviceId)
        if (a === undefined) continue
        if (a.loading) { a.markBehind(m.chatId); continue }
        const receives = this.chats.receivesMessage(userId, m)
        const sent = this.sentOf(a, m.chatId)
        if (!a.pumping && !a.isBehind(m.chatId) && sent === m.seq - 1 && (!receives || a.inflight < this.windowOf(a))) {
          a.sent.set(m.chatId, m.seq)
          if (receives) this.write(a, m)
          else this.settle(a, m.chatId)
        } else if (sent < m.seq) {
          a.markBehind(m.chatId)
          this.pump(a)
        }
      }
    }
  }

  /** A durable event for one device (receipt, chat change, refusal): logged, and sent now if it is attached. */
  event (deviceId: string, payload: string): void {
    const log = this.#events
    if (log === undefined) throw new Error('this inbox keeps no event logs')
    const n = log.appendEvent(deviceId, payload)
    const count = (this.#eventCounts.get(deviceId) ?? 0) + 1
    this.#eventCounts.set(deviceId, count)
    const a = this.#attached.get(deviceId)
    if (count > this.opts.maxEvents && a === undefined) {
      // Only an absent device's log is trimmed (an attached one drains as it acknowledges).
      // The device is told by its event 0, which comes first and is never trimmed.
      const dropped = log.trimEvents(deviceId, this.opts.maxEvents)
      const total = (this.#overflowed.get(deviceId) ?? 0) + dropped
      if (!this.#overflowed.has(deviceId)) this.log.info({ deviceId, dropped, bound: this.opts.maxEvents }, 'inbox event log over its bound: oldest events dropped; the device is told to sync')
      this.#overflowed.set(deviceId, total)
      log.putFirstEvent(deviceId, overflowEvent(total))
      this.#eventCounts.set(deviceId, this.opts.maxEvents + 1)
      return
    }
    if (a === undefined) return
    if (!a.pumping && !a.eventsBehind && a.eventsSent === n - 1 && a.inflight < this.windowOf(a)) {
      this.writeEvent(a, n, Buffer.from(payload))
    } else {
      a.eventsBehind = true
      this.pump(a)
    }
  }

  /** An event only an attached device gets (a repeated ack: the device asked again and will again). */
  transient (deviceId: string, payload: string): void {
    const a = this.#attached.get(deviceId)
    if (a === undefined) return
    const id = a.conn.send(Buffer.from(payload))
    a.written(id, { kind: 'transient' })
  }

  /** A new device starts at every chat's current end: it is owed what comes after its creation. */
  provision (deviceId: string, userId: string): void {
    const rows = [...this.chats.chatIdsOf(userId)].map((chatId) => ({ deviceId, chatId, seq: this.#last.get(chatId) ?? 0 }))
    this.store.savePositions(rows)
  }

  /** A revoked device: forgotten. */
  drop (deviceId: string): void {
    const a = this.#attached.get(deviceId)
    if (a) { a.gone = true; this.#attached.delete(deviceId); this.#dirty.delete(a) }
    this.track(this.store.dropDevice(deviceId), (err) => this.log.error({ err, deviceId }, 'forgetting a revoked device\'s positions failed'))
    this.#eventCounts.delete(deviceId)
  }

  /** Retention removed old messages: cached copies may be among them. */
  purged (): void { this.recent.clear() }
  /** Expired disappearing messages were deleted from these chats: their cached copies go too. */
  expired (chats: string[]): void { for (const c of chats) this.recent.forget(c) }

  // ---- what the broker tells it

  /** A device's connection is ready for its inbox (connected and subscribed): sending starts from its positions. */
  attach (deviceId: string, userId: string, conn: InboxConnection): void {
    const previous = this.#attached.get(deviceId)
    if (previous?.conn === conn) return
    if (previous) this.detachRecord(previous)
    const a = new Attached(deviceId, userId, conn)
    a.eventsBehind = (this.#eventCounts.get(deviceId) ?? 0) > 0
    this.#overflowed.delete(deviceId)
    this.#attached.set(deviceId, a)
    const stored = this.store.positions(deviceId)
    if (!(stored instanceof Promise)) {
      this.start(a, stored)
      return
    }
    // Until its positions are known, what is committed only marks its chats behind (see committed()).
    a.loading = true
    stored.then((positions) => {
      a.loading = false
      if (!a.gone) this.start(a, positions)
    }, (err: unknown) => {
      this.log.error({ err, deviceId }, 'reading a device\'s positions failed; its connection is closed to start again')
      if (!a.gone) { a.gone = true; this.#attached.delete(deviceId) }
      a.conn.close()
    })
  }

  /** Once its positions are known: every chat past them is behind, and sending starts. */
  private start (a: Attached, positions: Map<string, number>): void {
    for (const [chatId, seq] of positions) {
      a.acked.set(chatId, seq)
      a.sent.set(chatId, seq)
    }
    for (const chatId of this.chats.chatIdsOf(a.userId)) {
      if ((this.#last.get(chatId) ?? 0) > this.sentOf(a, chatId)) a.markBehind(chatId)
    }
    this.pump(a)
  }

  /**
   * Chats' last seqs learnt from elsewhere (the cluster: after its feed of
   * committed messages was interrupted): raised, and every attached device
   * behind one of them catches up.
   */
  raiseLast (last: Map<string, number>): void {
    for (const [chatId, seq] of last) {
      if (seq > (this.#last.get(chatId) ?? 0)) this.#last.set(chatId, seq)
    }
    for (const a of this.#attached.values()) {
      if (a.loading) continue
      let behind = false
      for (const chatId of this.chats.chatIdsOf(a.userId)) {
        if ((this.#last.get(chatId) ?? 0) > this.sentOf(a, chatId)) { a.markBehind(chatId); behind = true }
      }
      if (behind) this.pump(a)
    }
  }

  /** The connection ended or unsubscribed its inbox: positions are written now; what was unacknowledged is sent again next time. */
  detach (deviceId: string, conn: InboxConnection): void {
    const a = this.#attached.get(deviceId)
    if (a?.conn !== conn) return
    this.detachRecord(a)
  }

  /** A PUBACK on a connection: true if it was for an inbox PUBLISH. */
  acked (deviceId: string, conn: InboxConnection, messageId: number): boolean {
    const a = this.#attached.get(deviceId)
    if (a?.conn !== conn) return false
    const s = a.acknowledged(messageId)
    if (s === undefined) return false
    if (s.kind === 'msg') {
      this.settle(a, s.chat)
    } else if (s.kind === 'event') {
      const i = a.eventPending.indexOf(s.n)
      if (i >= 0) a.eventPending.splice(i, 1)
      const count = (this.#eventCounts.get(a.deviceId) ?? 1) - 1
      if (count > 0) this.#eventCounts.set(a.deviceId, count)
      else this.#eventCounts.delete(a.deviceId)
      const upTo = a.eventPending.length > 0 ? a.eventPending[0]! - 1 : a.eventsSent
      if (upTo > a.eventsAcked) {
        a.eventsAcked = upTo
        a.eventsDirty = true
        this.#dirty.add(a)
      }
    }
    if (a.anyBehind || a.eventsBehind) this.pump(a)
    return true
  }

  /** Writes every position acknowledged since the last flush (one transaction). */
  flush (): void {
    const rows: Position[] = []
    // Only devices whose positions moved since the last flush: an idle connection costs nothing here.
    for (const a of this.#dirty) this.collect(a, rows)
    this.#dirty.clear()
    if (rows.length === 0) return
    const again = (err: unknown): void => {
      this.log.error({ err }, 'writing inbox positions failed; they are written with the next flush')
      for (const r of rows) {
        const a = this.#attached.get(r.deviceId)
        if (a) { a.markDirty(r.chatId); this.#dirty.add(a) }
      }
    }
    try {
      this.track(this.store.savePositions(rows), again)
    } catch (err) {
      again(err)
    }
  }

  /** Waits for the position writes in progress (an asynchronous store). */
  async idle (): Promise<void> {
    while (this.#saving.size > 0) await Promise.all(this.#saving)
  }

  close (): void {
    clearInterval(this.#timer)
    this.flush()
    for (const a of this.#attached.values()) a.gone = true
    this.#attached.clear()
  }

  // ---- inside

  private detachRecord (a: Attached): void {
    a.gone = true
    this.#attached.delete(a.deviceId)
    this.#dirty.delete(a)
    const rows: Position[] = []
    this.collect(a, rows)
    if (rows.length === 0) return
    const failed = (err: unknown): void => { this.log.error({ err, deviceId: a.deviceId }, 'writing inbox positions failed; the device gets those messages again') }
    try {
      this.track(this.store.savePositions(rows), failed)
    } catch (err) {
      failed(err)
    }
  }

  /** A store write that may be asynchronous: tracked until it is done (idle() waits for it); `failed` if it rejects. */
  private track (result: void | Promise<void>, failed: (err: unknown) => void): void {
    if (!(result instanceof Promise)) return
    const p: Promise<void> = result.catch(failed).finally(() => this.#saving.delete(p))
    this.#saving.add(p)
  }

  private collect (a: Attached, rows: Position[]): void {
    for (const chatId of a.takeDirty()) rows.push({ deviceId: a.deviceId, chatId, seq: a.acked.get(chatId) ?? 0 })
    if (a.eventsDirty) {
      a.eventsDirty = false
      this.#events?.ackEvents(a.deviceId, a.eventsAcked)
    }
  }

  /** Where a device starts in a chat it has no position in: just before its membership began. */
  private sentOf (a: Attached, chatId: string): number {
    const sent = a.sent.get(chatId)
    if (sent !== undefined) return sent
    const start = (this.chats.fromSeqOf(chatId, a.userId) ?? 1) - 1
    a.sent.set(chatId, start)
    a.acked.set(chatId, start)
    return start
  }

  /** The position after the pending PUBLISHes of a chat that were acknowledged in order. */
  private settle (a: Attached, chatId: string): void {
    const first = a.firstPending(chatId)
    const upTo = first !== undefined ? first - 1 : (a.sent.get(chatId) ?? 0)
    if (upTo > (a.acked.get(chatId) ?? 0)) {
      a.acked.set(chatId, upTo)
      a.markDirty(chatId)
      this.#dirty.add(a)
    }
  }

  /** Unacknowledged PUBLISHes a connection may have: ours, or the device's Receive Maximum if smaller [MQTT-3.3.4-7]. */
  private windowOf (a: Attached): number {
    const own = a.conn.receiveMaximum
    return own !== undefined && own < this.opts.window ? own : this.opts.window
  }

  private write (a: Attached, m: StoredMessage): void {
    this.writeAt(a, m.chatId, m.seq, payloadOf(m, m.senderDevice === a.deviceId, a.deviceId))
  }

  /** Writes a PUBLISH that stands at `seq` in a chat's order: its PUBACK settles the device's position there. */
  private writeAt (a: Attached, chatId: string, seq: number, payload: Buffer): void {
    // A message the device's connection cannot take [MQTT-3.1.2-25] stands as a notice in its place, so the
    // device learns of it (and reads it over HTTP) and its position moves on.
    const max = a.conn.maxPayloadBytes
    if (max !== undefined && payload.length > max) payload = Buffer.from(tooLargeEvent(chatId, seq, payload.length))
    const id = a.conn.send(payload)
    a.written(id, { kind: 'msg', chat: chatId, seq })
  }

  private writeEvent (a: Attached, n: number, payload: Buffer): void {
    const id = a.conn.send(payload)
    a.written(id, { kind: 'event', n })
    a.eventPending.push(n)
    a.eventsSent = n
  }

  /** Sends what the device is owed, up to its window. One loop per device at a time. */
  private pump (a: Attached): void {
    if (a.pumping) { a.again = true; return }
    a.pumping = true
    this.fill(a).catch((err: unknown) => {
      this.log.error({ err, deviceId: a.deviceId }, 'reading a device\'s inbox failed; its connection is closed to start again')
      if (!a.gone) this.detachRecord(a)
      a.conn.close()
    }).finally(() => { a.pumping = false })
  }

  private async fill (a: Attached): Promise<void> {
    const room = (): number => this.windowOf(a) - a.inflight
    do {
      a.again = false
      while (!a.gone && room() > 0) {
        if (a.eventsBehind) {
          const events = this.#events?.events(a.deviceId, a.eventsSent, room()) ?? []
          if (events.length === 0) a.eventsBehind = false
          for (const e of events) this.writeEvent(a, e.n, Buffer.from(e.payload))
          continue
        }
        const chatId = a.nextBehind()
        if (chatId === undefined) break
        // Nothing before the user's current membership is sent (as live): a position below its start moves up to it.
        const start = (this.chats.fromSeqOf(chatId, a.userId) ?? 1) - 1
        if (this.sentOf(a, chatId) < start) { a.sent.set(chatId, start); this.settle(a, chatId) }
        const from = this.sentOf(a, chatId)
        const last = this.#last.get(chatId) ?? 0
        if (from >= last || !this.chats.isMember(chatId, a.userId)) { a.caughtUp(chatId); continue }
        const limit = Math.min(room(), this.opts.pageSize)
        let page = this.recent.after(chatId, from, limit)
        if (page === undefined) {
          // The page as stored, filtered below as live delivery filters: the position moves past
          // everything read, so a page of messages this user may not see never stops the catch-up.
          page = await this.history.after(chatId, from, limit)
          if (a.gone) return
          // Seqs have no holes but the ones retention makes, at the start of a chat: a page that does not
          // start right after the position (or nothing, short of the last seq) means messages this device
          // never had were purged. It is told, in the chat's order, and moves on.
          const next = page[0]?.seq ?? last + 1
          if (next > from + 1) {
            this.writePurged(a, chatId, from + 1, next - 1)
            continue
          }
        }
        if (page.length === 0) { a.caughtUp(chatId); continue }
        for (const m of page) {
          if (m.seq <= this.sentOf(a, chatId)) continue
          a.sent.set(chatId, m.seq)
          if (this.chats.receivesMessage(a.userId, m)) this.write(a, m)
        }
        this.settle(a, chatId)
      }
    } while (a.again && !a.gone)
  }

  private writePurged (a: Attached, chatId: string, from: number, to: number): void {
    a.sent.set(chatId, to)
    this.writeAt(a, chatId, to, Buffer.from(purgedEvent(chatId, from, to)))
  }
}
