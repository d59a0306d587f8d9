// A bound XMPP resource: the device's MQTT link on one side, its XMPP
// stream on the other. Inbox events become stanzas; stanzas become chat
// publishes. The chat rules stay in the bridge: this only translates
// (docs/protocol.md §6 is the mapping).
//
// A session outlives its connection when the client enabled resumable
// stream management: it is detached, keeps its MQTT link and the stanzas the
// client has not acknowledged, and a new stream can resume it.
import { randomBytes } from 'node:crypto'
import { xml, type Element } from '@xmpp/xml'
import jid from '@xmpp/jid'
import type { Aedes } from 'aedes'
import type { ChatService } from '../core/chats.js'
import { NS, errorChild, stanzaError, type StanzaHandler, type XmppStream } from './stream.js'
import { linkDevice, type Delivery, type DeviceLink } from './link.js'
import { StreamManagement } from './sm.js'
import { affiliation, mucStanza, occupantPresence, type MUC } from './muc.js'
import { archiveQuery, ENCRYPTED_NOTICE, NS_MAM } from './mam.js'
import type { HistoryStore } from '../store/types.js'
import { isDirectChatId } from '../core/ids.js'
import { CHAT_ID, parseMessageRef } from './ids.js'

export interface SessionHost {
  aedes: Aedes
  domain: string
  chats: ChatService
  history: HistoryStore
  /** The direct chat between two users, created on first use (as sending to a contact does in any messenger). */
  directChat (userId: string, other: string): Promise<string | undefined>
  /** The direct chat between two users if it exists. */
  existingDirectChat (userId: string, other: string): string | undefined
  /** How long a detached resumable session waits for its client. */
  resumeSeconds: number
  /** The MQTT keepalive of the device link (0 = none): within the broker's keepalive limit. */
  linkKeepaliveSeconds: number
  /** Resumable sessions by stream management id. */
  resumable: Map<string, XmppSession>
  /** Events held for a resource that has not sent initial presence, at most (see #hold). */
  maxHeldEvents: number
  log?: { info (obj: object, msg: string): void }
}

export const XNS = {
  sid: 'urn:xmpp:sid:0',
  receipts: 'urn:xmpp:receipts',
  markers: 'urn:xmpp:chat-markers:0',
  chatStates: 'http://jabber.org/protocol/chatstates',
  carbons: 'urn:xmpp:carbons:2',
  forward: 'urn:xmpp:forward:0',
  delay: 'urn:xmpp:delay',
  hints: 'urn:xmpp:hints',
  roster: 'jabber:iq:roster',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  idle: 'urn:xmpp:idle:1'
} as const

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/
const CHAT_STATES = ['active', 'composing', 'paused', 'inactive', 'gone']
/** Own sent messages kept per chat for receipts (oldest dropped first). */
const OWN_KEPT = 500

interface InboxEvent {
  type: string
  chat?: string
  seq?: number
  id?: string
  from?: string
  device?: string
  kind?: string
  body?: unknown
  ts?: number
  code?: string
  message?: string
  user?: string
  delivered?: number
  read?: number
  state?: string
  duplicate?: boolean
}

/** A message this device sent, waiting for receipts. */
interface Own { seq: number, id: string, receipt: boolean, markable: boolean, delivered: boolean }
/** A message sent but not yet acknowledged by the bridge. */
interface Sending { body: string, receipt: boolean, markable: boolean }

/** What an XMPP client reads of a body: its text, or the JSON; an end-to-end encrypted message only says so (XMPP devices hold no mqchat keys). */
const bodyText = (body: unknown): string => typeof body === 'string'
  ? body
  : body !== null && typeof body === 'object' && 'e2ee' in body ? ENCRYPTED_NOTICE : JSON.stringify(body)
const isGroup = (chat: string): boolean => !isDirectChatId(chat)

export class XmppSession implements StanzaHandler {
  #link!: DeviceLink
  /** The link is being made again (#hold). */
  #relinking: Promise<DeviceLink> | undefined
  /** The link being made, until linkDevice returns. */
  #connecting: Promise<DeviceLink> | undefined
  /** Events held since the link was made, before initial presence. */
  #held = 0
  #linkToken: object | undefined
  #stream: XmppStream | undefined
  readonly sm = new StreamManagement()
  #smId: string | undefined
  #expiry: NodeJS.Timeout | undefined
  #closed = false
  #ended!: () => void
  /** Resolves when the session has ended for good. */
  readonly ended = new Promise<void>((resolve) => { this.#ended = resolve })
  #linkedAt = Date.now()
  #carbons = false
  #presenceSent = false
  /** The contacts the client was told of, once it asked for the roster. */
  #roster: Set<string> | undefined
  /** Users whose presence this resource is subscribed to (the broker granted it: they are the user's contacts). */
  #watching = new Set<string>()
  /** When a presence subscription was last refused, per user: tried again at most once a minute. */
  #refusedAt = new Map<string, number>()
  #sending = new Map<string, Sending>()
  #own = new Map<string, Own[]>()
  /** The newest seq each reader's received / displayed marker named, per chat. */
  #marked = new Map<string, { received: number, displayed: number }>()
  /**
   * Outbound stanzas are written in event order, from the client's initial
   * presence on: a resource receives messages once it is available (RFC 6121
   * §8.5.3), so the queue waits for it.
   */
  #available!: () => void
  #out: Promise<void> = new Promise((resolve) => { this.#available = resolve })
  #requested = false
  /** An <r/> of ours is on the wire and unanswered. */
  #asked = false
  #askedAt: NodeJS.Timeout | undefined

  private constructor (private readonly host: SessionHost, readonly who: { userId: string, deviceId: string }) {}

  static async open (stream: XmppStream, host: SessionHost, who: { userId: string, deviceId: string }): Promise<XmppSession> {
    const s = new XmppSession(host, who)
    s.attach(stream)
    s.#link = await s.#connect()
    return s
  }

  /** Signs the device in to the broker; its queued events start to flow. */
  async #connect (): Promise<DeviceLink> {
    // Only the current link's messages count: one dropped by #hold may still have some on their way.
    const token = {}
    this.#linkToken = token
    const connecting = linkDevice(this.host.aedes, this.who.deviceId, this.host.linkKeepaliveSeconds, (d) => { if (this.#linkToken === token) this.#delivery(d) }, () => {
      // The broker ended the link: the device signed in elsewhere (MQTT or another XMPP stream), or was revoked.
      this.#stream?.streamError('conflict', 'this device signed in elsewhere, or was revoked')
      void this.#end()
    })
    // Events flow as soon as the broker has the link, before linkDevice returns: #hold may need it meanwhile.
    this.#connecting = connecting
    const link = await connecting.finally(() => { if (this.#connecting === connecting) this.#connecting = undefined })
    this.#linkedAt = Date.now()
    return link
  }

  /**
   * The link, made again if it was dropped while the resource had not sent
   * initial presence (#hold). One reconnection at a time.
   */
  async #linkNow (): Promise<DeviceLink> {
    if (this.#relinking === undefined) return this.#link
    return await this.#relinking
  }

  /**
   * Before initial presence a resource gets nothing (RFC 6121 §8.5.3), so its
   * events wait. They wait in memory up to maxHeldEvents; past that the link
   * is dropped unacknowledged, so everything stays queued in the device's MQTT
   * session, in order, and the link is made again at initial presence (or
   * when the client publishes). Returns false when the event is not held.
   */
  #hold (): boolean {
    if (this.#presenceSent) return true
    if (this.#relinking !== undefined) return false
    if (++this.#held <= this.host.maxHeldEvents) return true
    this.host.log?.info({ deviceId: this.who.deviceId, held: this.host.maxHeldEvents }, 'xmpp resource without initial presence: its events wait in its queue, not in memory')
    // The events held so far are let go (their promise never settles), none of them acknowledged.
    this.#out = new Promise((resolve) => { this.#available = resolve })
    this.#held = 0
    this.#linkToken = undefined
    const old = this.#connecting ?? Promise.resolve(this.#link)
    this.#relinking = (async () => {
      await (await old).close()
      await this.#waitForReason()
      if (this.#closed) return old
      this.#link = await this.#connect()
      this.#relinking = undefined
      return this.#link
    })()
    this.#relinking.catch(() => {})
    return false
  }

  /**
   * The link for a publish of the client's, or undefined while it is dropped
   * awaiting initial presence (#hold). It is not made again for a publish: each
   * remaking replays the queue, and a client publishing without ever sending
   * presence would have it replayed over and over.
   */
  #upLink (): DeviceLink | undefined {
    return this.#relinking === undefined ? this.#link : undefined
  }

  /** Resolves at initial presence (or when the session ends). */
  #reason!: () => void
  #reasonP: Promise<void> = new Promise((resolve) => { this.#reason = resolve })
  async #waitForReason (): Promise<void> { await this.#reasonP }

  get bare (): string { return `${this.who.userId}@${this.host.domain}` }
  get full (): string { return `${this.bare}/${this.who.deviceId}` }
  get groupsDomain (): string { return `groups.${this.host.domain}` }
  get domain (): string { return this.host.domain }

  /** Binds this session to a (new) stream. */
  attach (stream: XmppStream): void {
    const old = this.#stream
    this.#stream = stream
    if (this.#expiry) { clearTimeout(this.#expiry); this.#expiry = undefined }
    this.sm.attach((el) => stream.send(el), () => this.#requestAck())
    if (old && old !== stream) old.streamError('conflict', 'this session was resumed on another connection')
  }

  /** Resumes on a new stream after the client handled `h` of our stanzas; false if h is impossible. */
  async resume (stream: XmppStream, h: number): Promise<boolean> {
    if (!this.sm.ack(h)) return false
    clearTimeout(this.#askedAt)
    this.#requested = false
    this.#asked = false
    // Written in one go, before anything newer can be: <resumed/>, then what the client missed, in order.
    const resumed = stream.send(xml('resumed', { xmlns: NS.sm, previd: this.#smId, h: String(this.sm.inbound) }))
    const again = this.sm.resend().map((el) => stream.send(el))
    this.attach(stream)
    await Promise.all([resumed, ...again])
    this.#requestAck()
    return true
  }

  enableSm (resume: boolean): { id?: string, max?: number } {
    this.sm.enable()
    if (!resume || this.host.resumeSeconds === 0) return {}
    this.#smId = randomBytes(12).toString('base64url')
    this.host.resumable.set(this.#smId, this)
    return { id: this.#smId, max: this.host.resumeSeconds }
  }

  /**
   * Asks the client to acknowledge what it has: one <r/> after a burst of
   * stanzas, and no new one while an answer is due (or for 5 s).
   */
  #requestAck (): void {
    if (this.#requested || !this.sm.enabled) return
    this.#requested = true
    setImmediate(() => {
      if (this.sm.unacked === 0 || !this.#stream) { this.#requested = false; return }
      this.#stream.send(xml('r', { xmlns: NS.sm })).catch(() => {})
      this.#asked = true
      this.#askedAt = setTimeout(() => { this.#requested = false; this.#asked = false; this.#requestAck() }, 5000)
      this.#askedAt.unref()
    })
  }

  /**
   * Called as an <a/> arrives, before it is handled: true when it is the
   * answer to our outstanding <r/>, which it then settles (so of several
   * <a/> in a row only the first is an answer).
   */
  takeAnswer (): boolean {
    const asked = this.#asked
    this.#asked = false
    return asked
  }

  /** The client's <a h/>: false when h counts more than was sent. */
  acked (h: number): boolean {
    if (!this.sm.ack(h)) return false
    clearTimeout(this.#askedAt)
    this.#requested = false
    if (this.sm.unacked > 0) this.#requestAck()
    return true
  }

  /** Sends a stanza now (answers to the client's own requests). */
  send (el: Element): Promise<void> {
    return this.sm.send(el)
  }

  /** Sends an event's stanza once the resource is available, in event order; `done` runs once it is delivered (StreamManagement). */
  #deliver (el: Element, done?: () => void): void {
    const p = this.#out.then(() => this.sm.send(el, done))
    this.#out = p.catch(() => {})
  }

  /** A message from the broker: the inbox (QoS 1), the live topic or a presence (QoS 0). */
  #delivery (d: Delivery): void {
    let e: InboxEvent
    try { e = JSON.parse(d.payload.toString()) as InboxEvent } catch { d.ack(); return }
    let out: Element[] = []
    try {
      if (d.topic.endsWith('/inbox')) out = this.#inboxStanzas(e)
      else if (d.topic.endsWith('/live')) out = this.#liveStanzas(e)
      else if (d.topic.startsWith('presence/')) out = this.#presenceStanzas(d.topic.slice('presence/'.length), e)
    } catch { out = [] }
    if (out.length === 0) { d.ack(); return }
    if (!this.#hold()) return
    out.forEach((el, i) => { this.#deliver(el, i === out.length - 1 ? d.ack : undefined) })
  }

  #delay (ts: number | undefined): Element | undefined {
    return ts !== undefined && ts < this.#linkedAt - 1000 ? xml('delay', { xmlns: XNS.delay, from: this.host.domain, stamp: new Date(ts).toISOString() }) : undefined
  }

  #inboxStanzas (e: InboxEvent): Element[] {
    switch (e.type) {
      case 'msg': return this.#messageStanzas(e)
      case 'ack': return this.#acked(e)
      case 'receipt': return this.#receiptStanzas(e)
      case 'error': return this.#errorStanzas(e)
      case 'chat': return [...this.#rosterPushes(e), ...this.#roomChanges(e)]
      default: return []
    }
  }

  #messageStanzas (e: InboxEvent): Element[] {
    if (e.chat === undefined || e.seq === undefined) return []
    // Someone who wrote to the user may have just become a contact: their presence may be visible now.
    if (this.#presenceSent && e.from !== undefined && !this.#watching.has(e.from)) this.#watch([e.from]).catch(() => {})
    const ref = `${e.chat}:${e.seq}`
    const group = isGroup(e.chat)
    const room = `${e.chat}@${this.groupsDomain}`
    const own = e.from === this.who.userId
    const payload = [
      xml('body', {}, bodyText(e.body)),
      xml('stanza-id', { xmlns: XNS.sid, id: ref, by: group ? room : this.bare }),
      e.id !== undefined ? xml('origin-id', { xmlns: XNS.sid, id: e.id }) : undefined,
      this.#delay(e.ts)
    ]
    if (group) {
      // Every occupant sees every message, its own (from other devices) included, as a room does.
      return [xml('message', { type: 'groupchat', from: `${room}/${e.from ?? ''}`, to: this.full, id: ref }, ...payload, xml('markable', { xmlns: XNS.markers }))]
    }
    if (own) {
      // Sent from one of the user's other devices: a carbon copy (XEP-0280), if the client asked for them.
      if (!this.#carbons) return []
      const other = this.host.chats.otherMember(e.chat, this.who.userId) ?? ''
      const inner = xml('message', { type: 'chat', from: `${this.bare}/${e.device ?? ''}`, to: `${other}@${this.host.domain}`, id: ref }, ...payload)
      return [xml('message', { type: 'chat', from: this.bare, to: this.full }, xml('sent', { xmlns: XNS.carbons }, xml('forwarded', { xmlns: XNS.forward }, inner)))]
    }
    return [xml('message', { type: 'chat', from: `${e.from ?? ''}@${this.host.domain}/${e.device ?? ''}`, to: this.full, id: ref },
      ...payload, xml('request', { xmlns: XNS.receipts }), xml('markable', { xmlns: XNS.markers }))]
  }

  /** The bridge stored one of this device's messages: remember it for receipts; in a group, reflect it (XEP-0045 §7.4). */
  #acked (e: InboxEvent): Element[] {
    if (e.chat === undefined || e.seq === undefined || e.id === undefined) return []
    const key = `${e.chat}\n${e.id}`
    const s = this.#sending.get(key)
    if (!s) return []
    this.#sending.delete(key)
    if (e.duplicate === true) {
      // The device used this id before. The same text again is a resend (dropped, as for MQTT); a different
      // text is a client reusing ids across connections (RFC 6120 asks for ids unique within one stream only).
      void this.#reusedId(e.chat, e.seq, e.id, s)
      return []
    }
    let list = this.#own.get(e.chat)
    if (!list) this.#own.set(e.chat, list = [])
    if (!list.some((o) => o.seq === e.seq)) list.push({ seq: e.seq, id: e.id, receipt: s.receipt, markable: s.markable, delivered: false })
    if (list.length > OWN_KEPT) list.splice(0, list.length - OWN_KEPT)
    if (!isGroup(e.chat)) return []
    const room = `${e.chat}@${this.groupsDomain}`
    return [xml('message', { type: 'groupchat', from: `${room}/${this.who.userId}`, to: this.full, id: e.id },
      xml('body', {}, s.body), xml('stanza-id', { xmlns: XNS.sid, id: `${e.chat}:${e.seq}`, by: room }), xml('origin-id', { xmlns: XNS.sid, id: e.id }))]
  }

  /** After a duplicate ack: sends the message again under a fresh id if it is not the one stored under that id. */
  async #reusedId (chat: string, seq: number, id: string, s: Sending): Promise<void> {
    try {
      const stored = await this.host.history.get(chat, seq)
      if (stored && stored.body === JSON.stringify(s.body)) return
      const fresh = `${id.slice(0, 40)}.again-${randomBytes(6).toString('hex')}`
      this.#sending.set(`${chat}\n${fresh}`, s)
      await this.#upLink()?.publish(`chat/${chat}/msg`, JSON.stringify({ id: fresh, type: 'text', body: s.body }))
    } catch {
      // The link is gone: the client did not get an ack stanza for it either, and may send it again.
    }
  }

  /** Another member's watermarks rose: receipts (XEP-0184) and markers (XEP-0333) for this device's messages they cover. */
  #receiptStanzas (e: InboxEvent): Element[] {
    if (e.chat === undefined || e.user === undefined || e.user === this.who.userId) return []
    const list = this.#own.get(e.chat)
    if (!list) return []
    const delivered = e.delivered ?? 0
    const read = e.read ?? 0
    const group = isGroup(e.chat)
    const from = group ? `${e.chat}@${this.groupsDomain}/${e.user}` : `${e.user}@${this.host.domain}`
    const type = group ? 'groupchat' : 'chat'
    const out: Element[] = []
    if (!group) {
      for (const o of list) {
        if (o.seq > delivered || o.delivered) continue
        o.delivered = true
        if (o.receipt) out.push(xml('message', { type, from, to: this.full, id: `r-${randomBytes(6).toString('hex')}` }, xml('received', { xmlns: XNS.receipts, id: o.id })))
      }
    }
    // Markers are cumulative: one for the newest message each watermark covers.
    const newest = (upTo: number): Own | undefined => list.filter((o) => o.markable && o.seq <= upTo).at(-1)
    const markerId = (o: Own): string => group ? `${e.chat ?? ''}:${o.seq}` : o.id
    // Each marker once per (chat, reader): a watermark rising past others' messages only repeats it otherwise.
    const key = `${e.chat}\n${e.user}`
    const marked = this.#marked.get(key) ?? { received: 0, displayed: 0 }
    const r = newest(delivered)
    const d = newest(read)
    if (r && r.seq > marked.received && (!d || d.seq < r.seq)) out.push(xml('message', { type, from, to: this.full }, xml('received', { xmlns: XNS.markers, id: markerId(r) })))
    if (d && d.seq > marked.displayed) out.push(xml('message', { type, from, to: this.full }, xml('displayed', { xmlns: XNS.markers, id: markerId(d) })))
    this.#marked.set(key, { received: Math.max(marked.received, r?.seq ?? 0), displayed: Math.max(marked.displayed, d?.seq ?? 0) })
    if (this.#marked.size > 10_000) this.#marked.delete(this.#marked.keys().next().value as string)
    // In a direct chat a read covers everything before it: no need to keep those.
    if (!group && read > 0) this.#own.set(e.chat, list.filter((o) => o.seq > read))
    return out
  }

  /** Contacts gained or lost through a membership change, as roster pushes; new contacts' presence is subscribed. */
  #rosterPushes (e: InboxEvent & { change?: string, users?: string[] }): Element[] {
    const roster = this.#roster
    if (!roster || e.chat === undefined) return []
    const me = this.who.userId
    const concerned = new Set([...(e.users ?? []), ...((e.users ?? []).includes(me) || e.change === 'created' ? this.host.chats.memberIds(e.chat) : [])])
    concerned.delete(me)
    const push = (u: string, subscription: string): Element => xml('iq', { type: 'set', id: `push-${randomBytes(6).toString('hex')}`, to: this.full },
      xml('query', { xmlns: XNS.roster }, xml('item', { jid: `${u}@${this.host.domain}`, subscription })))
    const out: Element[] = []
    const added: string[] = []
    for (const u of concerned) {
      const shares = this.host.chats.sharesChat(me, u)
      if (shares && !roster.has(u)) { roster.add(u); added.push(u); out.push(push(u, 'both')) }
      if (!shares && roster.has(u)) { roster.delete(u); out.push(push(u, 'remove')) }
    }
    if (added.length > 0 && this.#presenceSent) this.#watch(added).catch(() => {})
    return out
  }

  /** Membership changes of a group, as room presence (XEP-0045 §9, §10): occupants come and go, the subject follows the name. */
  #roomChanges (e: InboxEvent & { change?: string, users?: string[], name?: string, role?: string }): Element[] {
    if (e.chat === undefined || !isGroup(e.chat)) return []
    const room = `${e.chat}@${this.groupsDomain}`
    const me = this.who.userId
    const occupant = (u: string, affil: string, role: string, ...codes: string[]): Element => occupantPresence(room, u, this.full, this.host.domain, affil, role, codes)
    const users = e.users ?? []
    switch (e.change) {
      case 'member_added': return users.filter((u) => u !== me).map((u) => occupant(u, 'member', 'participant'))
      // 321: removed because the affiliation changed; 110: this is you.
      case 'member_removed': return users.map((u) => u === me ? occupant(u, 'none', 'none', '110', '321') : occupant(u, 'none', 'none', '321'))
      case 'role_changed': return users.map((u) => occupant(u, affiliation(e.role ?? 'member'), 'participant', ...(u === me ? ['110'] : [])))
      case 'renamed': return [xml('message', { type: 'groupchat', from: room, to: this.full, id: `subject-${e.chat}-${randomBytes(4).toString('hex')}` }, xml('subject', {}, e.name ?? ''))]
      default: return []
    }
  }

  #errorStanzas (e: InboxEvent): Element[] {
    if (e.chat !== undefined && e.id !== undefined) this.#sending.delete(`${e.chat}\n${e.id}`)
    const condition = e.code === 'rate_limited' ? 'resource-constraint' : e.code === 'not_member' ? 'forbidden' : 'not-acceptable'
    return [xml('message', { type: 'error', id: e.id, from: this.host.domain, to: this.full },
      errorChild(e.code === 'rate_limited' ? 'wait' : 'cancel', condition, `${e.code ?? 'error'}: ${e.message ?? ''}`))]
  }

  /** Typing (chat states, XEP-0085): never stored, so marked no-store. */
  #liveStanzas (e: InboxEvent): Element[] {
    if (e.type !== 'typing' || e.chat === undefined || e.user === undefined || e.user === this.who.userId) return []
    const group = isGroup(e.chat)
    const from = group ? `${e.chat}@${this.groupsDomain}/${e.user}` : `${e.user}@${this.host.domain}`
    return [xml('message', { type: group ? 'groupchat' : 'chat', from, to: this.full },
      xml(e.state === 'typing' ? 'composing' : 'paused', { xmlns: XNS.chatStates }), xml('no-store', { xmlns: XNS.hints }))]
  }

  /** A contact's presence (the retained presence/<userId> message). */
  #presenceStanzas (userId: string, e: InboxEvent & { last_seen?: number }): Element[] {
    if (userId === this.who.userId) return []
    const from = `${userId}@${this.host.domain}`
    if (e.state === 'online') return [xml('presence', { from, to: this.full })]
    return [xml('presence', { from, to: this.full, type: 'unavailable' },
      e.last_seen !== undefined ? xml('idle', { xmlns: XNS.idle, since: new Date(e.last_seen).toISOString() }) : undefined)]
  }

  // ---- from the client ----

  async stanza (el: Element): Promise<void> {
    if (el.is('message')) await this.#message(el)
    else if (el.is('iq')) await this.#iq(el)
    else if (el.is('presence')) await this.#presence(el)
    if (this.sm.enabled) this.sm.inbound = (this.sm.inbound + 1) % 2 ** 32
  }

  #stanzaError (el: Element, condition: string, text?: string, type = 'cancel'): Element {
    return stanzaError(el, { from: el.attrs.to ?? this.host.domain, to: this.full }, type, condition, text)
  }

  /** The chat a message's `to` names: a user's direct chat (created on first use) or a group. */
  async #chatOf (el: Element, create: boolean): Promise<{ chat: string } | { error: Element }> {
    let to
    try { to = jid(el.attrs.to ?? '') } catch { return { error: this.#stanzaError(el, 'jid-malformed', `to must be <userId>@${this.host.domain} or <chatId>@${this.groupsDomain}`) } }
    if (to.domain === this.host.domain && to.local !== '') {
      const chat = create ? await this.host.directChat(this.who.userId, to.local) : this.host.existingDirectChat(this.who.userId, to.local)
      return chat === undefined ? { error: this.#stanzaError(el, 'item-not-found', `no user ${to.local}`) } : { chat }
    }
    if (to.domain === this.groupsDomain && to.local !== '') {
      if (to.resource !== '') return { error: this.#stanzaError(el, 'feature-not-implemented', 'private messages inside a group are not offered; write to the user directly') }
      return CHAT_ID.test(to.local) ? { chat: to.local } : { error: this.#stanzaError(el, 'item-not-found', `no group ${to.local}`) }
    }
    return { error: this.#stanzaError(el, 'remote-server-not-found', 'this server does not federate') }
  }

  async #message (el: Element): Promise<void> {
    if (el.attrs.type === 'error') return
    // Receipts and markers name a message by the id the gateway gave it: <chatId>:<seq>.
    const receipt = el.getChild('received', XNS.receipts) ?? el.getChild('received', XNS.markers)
    const displayed = el.getChild('displayed', XNS.markers) ?? el.getChild('acknowledged', XNS.markers)
    for (const [marker, type] of [[receipt, 'delivered'], [displayed, 'read']] as const) {
      const ref = parseMessageRef(marker?.attrs.id)
      if (ref) await this.#upLink()?.publish(`chat/${ref.chat}/receipt`, JSON.stringify({ type, seq: ref.seq }))
    }
    const body = el.getChildText('body')
    const state = el.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === XNS.chatStates && CHAT_STATES.includes(c.name))
    if (body === null && state === undefined) return
    // A chat state alone does not start a conversation: only a message creates the direct chat.
    const target = await this.#chatOf(el, body !== null)
    if ('error' in target) {
      if (body !== null) await this.send(target.error)
      return
    }
    const { chat } = target
    if (body === null) {
      // A standalone chat state: typing while composing, paused otherwise.
      await this.#upLink()?.publish(`chat/${chat}/typing`, JSON.stringify({ state: state?.name === 'composing' ? 'typing' : 'paused' }), 0)
      return
    }
    const link = this.#upLink()
    if (link === undefined) {
      await this.send(this.#stanzaError(el, 'resource-constraint', 'send initial presence first: your queued events are waiting for it', 'wait'))
      return
    }
    const id = el.attrs.id !== undefined && CLIENT_ID.test(el.attrs.id) ? el.attrs.id : `x-${randomBytes(8).toString('hex')}`
    this.#sending.set(`${chat}\n${id}`, { body, receipt: el.getChild('request', XNS.receipts) !== undefined, markable: el.getChild('markable', XNS.markers) !== undefined })
    if (this.#sending.size > 10_000) this.#sending.delete(this.#sending.keys().next().value as string)
    await link.publish(`chat/${chat}/msg`, JSON.stringify({ id, type: 'text', body }))
  }

  async #iq (el: Element): Promise<void> {
    if (el.attrs.type !== 'get' && el.attrs.type !== 'set') return
    const result = (...children: Element[]): Element => xml('iq', { type: 'result', id: el.attrs.id, from: el.attrs.to ?? this.host.domain, to: this.full }, ...children)
    const query = el.children.find((c): c is Element => typeof c !== 'string')
    const ns = query?.attrs.xmlns
    const to = el.attrs.to
    if (query?.is('query', NS_MAM) && el.attrs.type === 'set') {
      for (const reply of await archiveQuery(this.#archive(), el)) await this.send(reply)
      return
    }
    if ((to !== undefined && to.endsWith(`@${this.groupsDomain}`)) || to === this.groupsDomain) {
      for (const reply of await mucStanza(this.#muc(), el)) await this.send(reply)
      return
    }
    if (query?.is('ping', NS.ping) || query?.is('session', NS.session)) return this.send(result())
    if (ns === XNS.carbons && el.attrs.type === 'set' && (query?.name === 'enable' || query?.name === 'disable')) {
      this.#carbons = query.name === 'enable'
      return this.send(result())
    }
    if (ns === XNS.roster) {
      if (el.attrs.type === 'set') return this.send(this.#stanzaError(el, 'not-allowed', 'contacts are the people you share chats with'))
      const contacts = this.#contacts()
      // From now on this resource gets roster pushes (RFC 6121 §2.1.6) as chats add and remove contacts.
      this.#roster = new Set(contacts)
      return this.send(result(xml('query', { xmlns: XNS.roster }, ...contacts.map((u) => xml('item', { jid: `${u}@${this.host.domain}`, subscription: 'both' })))))
    }
    if (ns === XNS.discoInfo && el.attrs.type === 'get' && (to === undefined || to === this.host.domain || to === this.bare)) {
      return this.send(result(xml('query', { xmlns: XNS.discoInfo },
        to === this.bare ? xml('identity', { category: 'account', type: 'registered' }) : xml('identity', { category: 'server', type: 'im', name: 'mqchat' }),
        ...[XNS.discoInfo, XNS.discoItems, NS.ping, XNS.carbons, XNS.receipts, XNS.markers, XNS.chatStates, NS.sm, NS_MAM].map((v) => xml('feature', { var: v })))))
    }
    if (ns === XNS.discoItems && el.attrs.type === 'get' && (to === undefined || to === this.host.domain)) {
      return this.send(result(xml('query', { xmlns: XNS.discoItems }, xml('item', { jid: this.groupsDomain, name: 'groups' }))))
    }
    // Not served: answered as RFC 6120 §8.2.3 requires, never ignored.
    await this.send(this.#stanzaError(el, 'service-unavailable'))
  }

  #archive (): Parameters<typeof archiveQuery>[0] {
    return {
      who: this.who,
      bare: this.bare,
      full: this.full,
      domain: this.host.domain,
      groupsDomain: this.groupsDomain,
      chats: this.host.chats,
      history: this.host.chats.readerOf(this.host.history, this.who.userId),
      existingDirectChat: (other) => this.host.existingDirectChat(this.who.userId, other),
      directChats: () => [...this.host.chats.chatIdsOf(this.who.userId)].filter(isDirectChatId)
    }
  }

  #muc (): MUC {
    return { session: this, chats: this.host.chats }
  }

  /** Users sharing at least one chat with this one: the roster, and whose presence the user sees (from the membership mirror). */
  #contacts (): string[] {
    const users = new Set<string>()
    for (const chat of this.host.chats.chatIdsOf(this.who.userId)) for (const u of this.host.chats.memberIds(chat)) if (u !== this.who.userId) users.add(u)
    return [...users].sort()
  }

  async #presence (el: Element): Promise<void> {
    const to = el.attrs.to
    if (to !== undefined && to.includes(`@${this.groupsDomain}`)) {
      for (const reply of await mucStanza(this.#muc(), el)) await this.send(reply)
      return
    }
    const type = el.attrs.type
    if (to === undefined && (type === undefined || type === 'available') && !this.#presenceSent) {
      // Initial presence: from now on the client gets its contacts' presence.
      this.#presenceSent = true
      this.#available()
      this.#reason()
      await this.#watch(this.#contacts())
      return
    }
    if (type === 'subscribe' && to !== undefined) {
      // Subscriptions follow contacts: granted when the other has taken part in a chat the two share, refused otherwise.
      let other: string
      try { other = jid(to).local } catch { return }
      await this.send(xml('presence', { from: jid(to).bare().toString(), to: this.bare, type: this.host.chats.isContactOf(this.who.userId, other) ? 'subscribed' : 'unsubscribed' }))
    }
  }

  /**
   * Subscribes to the presence of those of `users` who are contacts
   * (ChatService.isContactOf) and not watched yet; the others are tried
   * again when they write to the user. The broker refuses a contact who
   * blocked the user: that is retried at most once a minute.
   */
  async #watch (users: string[]): Promise<void> {
    const now = Date.now()
    const me = this.who.userId
    const fresh = users.filter((u) => u !== me && !this.#watching.has(u) && this.host.chats.isContactOf(me, u) && now - (this.#refusedAt.get(u) ?? 0) > 60_000)
    if (fresh.length === 0) return
    const granted = await (await this.#linkNow()).subscribe(fresh.map((u) => `presence/${u}`))
    fresh.forEach((u, i) => {
      if (granted[i] !== undefined && granted[i] < 128) {
        this.#watching.add(u)
        this.#refusedAt.delete(u)
      } else this.#refusedAt.set(u, now)
    })
  }

  /** The connection ended: detached if the client may resume, else the session ends. */
  async close (stream?: XmppStream): Promise<void> {
    if (stream !== undefined && stream !== this.#stream) return
    this.#stream = undefined
    this.sm.detach()
    if (this.#smId !== undefined && !this.#closed) {
      this.#expiry = setTimeout(() => { void this.#end() }, this.host.resumeSeconds * 1000)
      this.#expiry.unref()
      return
    }
    await this.#end()
  }

  /** Ends the session for good. What the client did not acknowledge stays queued in the device's MQTT session. */
  async #end (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#expiry) clearTimeout(this.#expiry)
    if (this.#smId !== undefined) this.host.resumable.delete(this.#smId)
    this.#reason()
    await this.#relinking?.catch(() => {})
    await this.#link?.close()
    this.#ended()
  }

  /** The server is stopping. */
  async shutdown (): Promise<void> { await this.#end() }
}
