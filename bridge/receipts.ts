// chat/<chatId>/receipt: "delivered up to seq N" / "read up to seq N".
//
// Watermarks per (chat, member) only rise; read implies delivered. A change
// is announced as a `receipt` event to the reader's own other devices (their
// unread state) and to the users whose messages it newly covers (their ✓✓
// and blue ticks) — not to every member: in a 1024-member group that would be
// a million events per message. Read receipts switched off (by the reader or
// by the author) hide `read` from the author; the reader's own devices always
// see it.
import type { ChatService } from '../core/chats.js'
import type { DeviceService } from '../core/devices.js'
import { DomainError } from '../core/errors.js'
import type { SettingsService } from '../core/settings.js'
import type { Device, HistoryStore, Watermark } from '../store/types.js'
import { KeyedQueue } from '../lib/serial.js'
import type { InboxSender } from './index.js'

export type ReceiptKind = 'delivered' | 'read'

export function parseReceipt (payload: Buffer): { kind: ReceiptKind, seq: number } {
  let v: unknown
  try {
    v = JSON.parse(payload.toString('utf8'))
  } catch {
    throw new DomainError('bad_request', 'the receipt is not valid JSON')
  }
  const r = v as { type?: unknown, seq?: unknown } | null
  if (r === null || typeof r !== 'object' || (r.type !== 'delivered' && r.type !== 'read')) throw new DomainError('bad_request', 'a receipt is {"type":"delivered"|"read","seq":N}')
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) throw new DomainError('bad_request', 'seq must be a positive whole number')
  return { kind: r.type, seq: r.seq }
}

export function receiptEvent (w: Watermark, withRead: boolean): string {
  return JSON.stringify(withRead
    ? { type: 'receipt', chat: w.chatId, user: w.userId, delivered: w.delivered, read: w.read, ts: w.updatedAt }
    : { type: 'receipt', chat: w.chatId, user: w.userId, delivered: w.delivered, ts: w.updatedAt })
}

export class Receipts {
  // One change at a time per (chat, member), so each announcement covers exactly its own range.
  #queue = new KeyedQueue()

  constructor (
    private readonly history: HistoryStore,
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly settings: SettingsService,
    private readonly send: InboxSender
  ) {}

  async accept (device: Device, chatId: string, payload: Buffer): Promise<Watermark | undefined> {
    if (!this.chats.isMember(chatId, device.userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
    const { kind, seq } = parseReceipt(payload)
    return this.advance(device, chatId, kind, seq)
  }

  advance (device: Device, chatId: string, kind: ReceiptKind, seq: number): Promise<Watermark | undefined> {
    return this.#queue.run(`${chatId}\n${device.userId}`, () => this.advanceNow(device, chatId, kind, seq))
  }

  private async advanceNow (device: Device, chatId: string, kind: ReceiptKind, seq: number): Promise<Watermark | undefined> {
    const last = await this.history.lastSeq(chatId)
    if (seq > last) throw new DomainError('bad_request', `seq ${seq} is beyond the chat's last message (${last})`)
    const before = await this.history.getReceipt(chatId, device.userId)
    const after = await this.history.advanceReceipt(chatId, device.userId, seq, kind === 'read' ? seq : 0, Date.now())
    if (!after) return undefined
    await this.announce(device, before, after)
    return after
  }

  private async announce (from: Device, before: Watermark | undefined, after: Watermark): Promise<void> {
    const reader = after.userId
    const full = receiptEvent(after, true)
    for (const d of this.devices.activeIds(reader)) if (d !== from.id) this.send(d, full, 'receipt')

    const readChanged = after.read > (before?.read ?? 0)
    const deliveredChanged = after.delivered > (before?.delivered ?? 0)
    // Authors of messages sent before the reader joined are not told: the reader never had those.
    const joined = (this.chats.fromSeqOf(after.chatId, reader) ?? 1) - 1
    const fromSeq = Math.max(joined, readChanged ? (before?.read ?? 0) : (before?.delivered ?? 0))
    const authors = fromSeq < after.delivered ? await this.history.authorsBetween(after.chatId, fromSeq, after.delivered) : []
    const readerShares = this.settings.of(reader).readReceipts
    for (const author of authors) {
      if (author === reader || !this.chats.isMember(after.chatId, author)) continue
      const withRead = readerShares && this.settings.of(author).readReceipts
      if (!withRead && !deliveredChanged) continue
      const payload = withRead ? full : receiptEvent(after, false)
      for (const d of this.devices.activeIds(author)) this.send(d, payload, 'receipt')
    }
  }

  /** Who has a message delivered and read, as `asUser` may see it. */
  async info (chatId: string, seq: number, asUser: string): Promise<{ delivered: string[], read: string[] }> {
    // A message sent while asUser was not a member does not exist for them.
    const message = await this.chats.readerOf(this.history, asUser).get(chatId, seq)
    if (!message) throw new DomainError('not_found', 'message not found', 404)
    const marks = await this.history.receipts(chatId)
    const seesRead = this.settings.of(asUser).readReceipts
    const members = this.chats.memberIds(chatId)
    // Members who joined after the message never had it, whatever their watermark says.
    const others = marks.filter((w) => w.userId !== message.senderUser && members.has(w.userId) && this.chats.receives(chatId, w.userId, seq))
    return {
      delivered: others.filter((w) => w.delivered >= seq).map((w) => w.userId),
      read: others.filter((w) => w.read >= seq && seesRead && (w.userId === asUser || this.settings.of(w.userId).readReceipts)).map((w) => w.userId)
    }
  }
}
