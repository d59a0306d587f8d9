// A bound XMPP resource: the device's MQTT link on one side, its XMPP
// stream on the other. Inbox events become stanzas; stanzas become chat
// publishes. The chat rules stay in the bridge: this only translates.
import { randomBytes } from 'node:crypto'
import { xml, type Element } from '@xmpp/xml'
import jid from '@xmpp/jid'
import type { Aedes } from 'aedes'
import { NS, type StanzaHandler, type XmppStream } from './stream.js'
import { linkDevice, type DeviceLink } from './link.js'

export interface SessionHost {
  aedes: Aedes
  domain: string
  /** The direct chat between two users, created on first use (as sending to a contact does in any messenger). */
  directChat (userId: string, other: string): Promise<string | undefined>
}

const STANZA_ID = 'urn:xmpp:sid:0'
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/

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
}

const bodyText = (body: unknown): string => typeof body === 'string' ? body : JSON.stringify(body)
const isGroup = (chat: string): boolean => !chat.startsWith('dm_')

export class XmppSession implements StanzaHandler {
  #link!: DeviceLink

  private constructor (private readonly stream: XmppStream, private readonly host: SessionHost, private readonly who: { userId: string, deviceId: string }) {}

  static async open (stream: XmppStream, host: SessionHost, who: { userId: string, deviceId: string, token: string }): Promise<XmppSession> {
    const s = new XmppSession(stream, host, who)
    s.#link = await linkDevice(host.aedes, who.deviceId, who.token, (topic, payload) => s.#event(topic, payload), () => {
      stream.streamError('conflict', 'this device signed in elsewhere, or was revoked')
    })
    return s
  }

  get #bare (): string { return `${this.who.userId}@${this.host.domain}` }
  get #full (): string { return `${this.#bare}/${this.who.deviceId}` }

  /** An inbox event, as stanzas; resolving acknowledges it. */
  async #event (topic: string, payload: string): Promise<void> {
    if (!topic.endsWith('/inbox')) return
    let e: InboxEvent
    try { e = JSON.parse(payload) as InboxEvent } catch { return }
    const out = this.#stanzaOf(e)
    if (out) await this.stream.send(out)
  }

  #stanzaOf (e: InboxEvent): Element | undefined {
    if (e.type === 'msg' && e.chat && e.seq !== undefined) {
      // Messages the user's other devices sent come with carbons (not yet): skipped here.
      if (e.from === this.who.userId) return undefined
      const group = isGroup(e.chat)
      const from = group ? `${e.chat}@groups.${this.host.domain}/${e.from ?? ''}` : `${e.from ?? ''}@${this.host.domain}/${e.device ?? ''}`
      return xml('message', { type: group ? 'groupchat' : 'chat', from, to: this.#full, id: e.id },
        xml('body', {}, bodyText(e.body)),
        xml('stanza-id', { xmlns: STANZA_ID, id: `${e.chat}:${e.seq}`, by: group ? `${e.chat}@groups.${this.host.domain}` : this.#bare }))
    }
    if (e.type === 'error') {
      return xml('message', { type: 'error', id: e.id, from: this.host.domain, to: this.#full },
        xml('error', { type: 'cancel' }, xml(e.code === 'rate_limited' ? 'resource-constraint' : e.code === 'not_member' ? 'forbidden' : 'not-acceptable', { xmlns: NS.stanzas }), xml('text', { xmlns: NS.stanzas }, `${e.code ?? 'error'}: ${e.message ?? ''}`)))
    }
    return undefined
  }

  async stanza (el: Element): Promise<void> {
    if (el.is('message')) return this.#message(el)
    if (el.is('iq') && (el.attrs.type === 'get' || el.attrs.type === 'set')) {
      // Not served yet: answered as RFC 6120 §8.2.3 requires, never ignored.
      await this.stream.send(this.#iqError(el, 'service-unavailable'))
    }
    // Presence: not mapped yet (ignored).
  }

  async #message (el: Element): Promise<void> {
    const body = el.getChildText('body')
    if (body === null) return // chat states, markers: not mapped yet
    const error = (condition: string, text: string): Promise<void> =>
      this.stream.send(xml('message', { type: 'error', id: el.attrs.id, from: el.attrs.to, to: this.#full }, xml('error', { type: 'cancel' }, xml(condition, { xmlns: NS.stanzas }), xml('text', { xmlns: NS.stanzas }, text))))
    let to
    try { to = jid(el.attrs.to ?? '') } catch { return error('jid-malformed', 'to must be <userId>@' + this.host.domain) }
    let chat: string | undefined
    if (to.domain === this.host.domain && to.local !== '') {
      chat = await this.host.directChat(this.who.userId, to.local)
      if (chat === undefined) return error('item-not-found', `no user ${to.local}`)
    } else if (to.domain === `groups.${this.host.domain}` && to.local !== '') {
      chat = to.local
    } else {
      return error('remote-server-not-found', 'this server does not federate')
    }
    const id = el.attrs.id !== undefined && CLIENT_ID.test(el.attrs.id) ? el.attrs.id : `x-${randomBytes(8).toString('hex')}`
    await this.#link.publish(`chat/${chat}/msg`, JSON.stringify({ id, type: 'text', body }))
  }

  #iqError (el: Element, condition: string): Element {
    return xml('iq', { type: 'error', id: el.attrs.id, from: el.attrs.to, to: this.#full }, xml('error', { type: 'cancel' }, xml(condition, { xmlns: NS.stanzas })))
  }

  async close (): Promise<void> {
    await this.#link.close()
  }
}
