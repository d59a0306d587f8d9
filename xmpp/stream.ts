// One XMPP client-to-server stream (RFC 6120): stream header, STARTTLS,
// SASL (SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN; the password is a device
// token of the user), resource binding (the resource is the
// device id), then stanzas. Every refusal is the stream or stanza error the
// RFC names; a stream error ends this connection only.
import { randomBytes } from 'node:crypto'
import { Socket } from 'node:net'
import { TLSSocket, type SecureContext } from 'node:tls'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import { Parser, xml, type Element } from '@xmpp/xml'
import { RestrictedXml } from './restricted.js'
import { TokenBuckets } from '../lib/rate.js'
import { SCRAM_MECHANISMS, ScramError, ScramExchange, type ScramCredentials, type ScramHash } from '../lib/scram.js'

export const NS = {
  client: 'jabber:client',
  stream: 'http://etherx.jabber.org/streams',
  streamErrors: 'urn:ietf:params:xml:ns:xmpp-streams',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  tls: 'urn:ietf:params:xml:ns:xmpp-tls',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  ping: 'urn:xmpp:ping',
  sm: 'urn:xmpp:sm:3'
} as const

/** An <error/> child (RFC 6120 §8.3): its type, the defined condition and an optional text. */
export function errorChild (type: string, condition: string, text?: string): Element {
  return xml('error', { type }, xml(condition, { xmlns: NS.stanzas }), text !== undefined ? xml('text', { xmlns: NS.stanzas }, text) : undefined)
}

/** The error reply to a stanza: its name and id, addressed as given; `before` goes ahead of the <error/> child. */
export function stanzaError (el: Element, addr: { from?: string, to?: string }, type: string, condition: string, text?: string, before?: Element): Element {
  return xml(el.name, { type: 'error', id: el.attrs.id, ...addr }, before, errorChild(type, condition, text))
}

/**
 * @xmpp/xml's parser, except for character data between stanzas. That
 * parser appends it to the stream's root element, which lives as long as the
 * stream, so whitespace pings (or spaces sent between stanzas on purpose)
 * would grow it without end. Here it is dropped. Until it is (at the next
 * "<") it counts against the stanza size limit like any unfinished input.
 * Text other than whitespace there is not XMPP and is an error.
 */
export class StreamParser extends Parser {
  override onText (str: string): void {
    if (this.root === null || this.cursor !== this.root) { super.onText(str); return }
    if (/[^ \t\r\n]/.test(str)) this.emit('error', new Error('only whitespace may come between stanzas'))
  }
}

/** What the stream needs from the rest of the server. */
export interface StreamHost {
  domain: string
  /** undefined: no TLS (plaintext development mode). */
  tls: SecureContext | undefined
  maxStanzaBytes: number
  /** Sustained stanzas per second from the client (bursts of 5 ×). */
  stanzaRate: number
  /** The device a SASL PLAIN login names, or undefined (not-authorized). */
  login (user: string, token: string): { userId: string, deviceId: string } | undefined
  /** For a SCRAM login: the user's salt and iteration count, and the keys of each of its devices (none for an unknown user). */
  scram (user: string): { salt: Buffer, iterations: number, devices: Array<{ userId: string, deviceId: string, keys: ScramCredentials }> }
  /** After binding: the device's session; stanzas go to it. */
  bind (stream: XmppStream, who: { userId: string, deviceId: string }): Promise<StanzaHandler>
  /** A stream management resumption (XEP-0198): the detached session, now on this stream; undefined when there is none to resume. */
  resume (stream: XmppStream, who: { userId: string, deviceId: string }, previd: string, h: number): Promise<StanzaHandler | undefined>
  log: Logger
  /** The connection must be signed in and bound within this long. */
  authTimeoutMs: number
  /** A bound stream silent for half this long is pinged; silent for all of it, it ends. */
  idleTimeoutMs: number
  /** After SASL success: may this device have one more stream signed in but not yet bound? */
  signedIn (stream: XmppStream, deviceId: string): boolean
  /** The stream is bound (a session or a resumption), or gone: it no longer counts as not yet signed in (called again on close). */
  settled (stream: XmppStream): void
}

/** Streams of one device signed in (SASL) but not yet bound, at most. */
export const MAX_UNBOUND_PER_DEVICE = 3

/** What a stream runs over: a TCP socket (STARTTLS upgrades it), or a WebSocket's framing adapter. */
export interface Transport {
  on (event: 'data', fn: (b: Buffer) => void): unknown
  on (event: 'error', fn: (err: Error) => void): unknown
  on (event: 'close', fn: () => void): unknown
  removeListener (event: 'data', fn: (b: Buffer) => void): unknown
  write (text: string, cb?: (err?: Error | null) => void): boolean
  end (text: string): unknown
  destroy (): unknown
}

export interface StanzaHandler {
  stanza (el: Element): Promise<void>
  sm: { enabled: boolean, inbound: number }
  /** An <a/> arrived: true when it answers our outstanding <r/> (XEP-0198), which it settles. */
  takeAnswer: () => boolean
  /** The client's <a h/>: false when h counts more than was sent. */
  acked (h: number): boolean
  enableSm (resume: boolean): { id?: string, max?: number }
  /** The stream ended. */
  close (stream: XmppStream): Promise<void>
}

type State = 'tls' | 'auth' | 'bind' | 'ready' | 'closed'

const MAX_AUTH_ATTEMPTS = 3

/** Mechanisms offered, strongest first. */
const MECHANISMS = [...SCRAM_MECHANISMS.map(([name]) => name), 'PLAIN']

/** A SCRAM exchange under way: the first message is awaited (`exchange` undefined) or the final one. */
interface ScramState { mechanism: string, hash: ScramHash, exchange?: ScramExchange, user?: string, authzid?: string }

export class XmppStream {
  #socket: Transport
  #decoder = new StringDecoder('utf8')
  #guard = new RestrictedXml()
  #parser!: Parser
  #pendingBytes = 0
  #state: State
  #authAttempts = 0
  #who: { userId: string, deviceId: string } | undefined
  #scram: ScramState | undefined
  #session: StanzaHandler | undefined
  /**
   * <starttls/> was read and the handshake has not begun. A client sends
   * nothing in this window (it waits for <proceed/>): anything that arrives
   * in it was sent in the clear and ends the stream, lest it be taken for
   * something sent over TLS (the STARTTLS command injection of CVE-2011-0411).
   */
  #tlsPending = false
  /** The sign-in deadline until bound, then the idle check. */
  #timer: NodeJS.Timeout | undefined
  #lastInput = Date.now()
  #pinged = false
  /** Stanzas are handled one at a time, in arrival order. */
  #queue: Promise<void> = Promise.resolve()
  #flood: TokenBuckets
  readonly #onData = (b: Buffer): void => {
    this.#lastInput = Date.now()
    this.#input(this.#decoder.write(b))
  }

  constructor (socket: Transport, private readonly host: StreamHost) {
    this.#socket = socket
    this.#state = host.tls ? 'tls' : 'auth'
    this.#flood = new TokenBuckets(host.stanzaRate, host.stanzaRate * 5)
    socket.on('data', this.#onData)
    socket.on('error', () => {})
    socket.on('close', () => { void this.#closed() })
    this.#newParser()
    this.#timer = setTimeout(() => {
      this.streamError('connection-timeout', `sign in and bind a resource within ${host.authTimeoutMs / 1000} s`)
    }, host.authTimeoutMs)
    this.#timer.unref()
  }

  get jid (): string | undefined { return this.#who ? `${this.#who.userId}@${this.host.domain}/${this.#who.deviceId}` : undefined }

  /** Writes a stanza; resolves once it is handed to the operating system. */
  send (el: Element): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new Error('stream closed'))
    return new Promise((resolve, reject) => this.#socket.write(el.toString(), (err) => err ? reject(err) : resolve()))
  }

  /** Ends the stream with a stream error (RFC 6120 §4.9). */
  streamError (condition: string, text?: string): void {
    if (this.#state === 'closed') return
    this.host.log.info({ jid: this.jid, condition, text }, 'xmpp stream error')
    const err = xml('stream:error', {}, xml(condition, { xmlns: NS.streamErrors }), text ? xml('text', { xmlns: NS.streamErrors }, text) : undefined)
    this.#socket.end(err.toString() + '</stream:stream>')
    this.#state = 'closed'
    setTimeout(() => this.#socket.destroy(), 2000).unref()
    void this.#closed()
  }

  #newParser (): void {
    const p = new StreamParser()
    p.on('start', (el: Element) => { this.#open(el) })
    p.on('element', (el: Element) => {
      // A stream error ends the stream: what the same read still held is not acted on.
      if (this.#state === 'closed') return
      this.#pendingBytes = 0
      if (this.#tlsPending) { this.#injected(); return }
      if (this.#state === 'tls' && el.is('starttls', NS.tls)) this.#tlsPending = true
      // The answer to our own <r/> is not the client's to pace: we ask at most
      // once per answer, so a client catching up on a long queue answers as
      // often as we ask. Any other element, an unasked <a/> too, is charged.
      const answer = el.name === 'a' && el.attrs.xmlns === NS.sm && this.#session?.takeAnswer() === true
      if (!answer && !this.#flood.take('')) { this.streamError('policy-violation', `more than ${this.host.stanzaRate} stanzas per second`); return }
      this.#queue = this.#queue.then(() => this.#stanza(el)).catch((err: Error) => {
        this.host.log.warn({ err, jid: this.jid }, 'xmpp stanza failed')
        this.streamError('internal-server-error')
      })
    })
    p.on('end', () => {
      if (this.#state !== 'closed') this.#socket.end('</stream:stream>')
      this.#state = 'closed'
      void this.#closed()
    })
    p.on('error', (err: Error) => { this.streamError('not-well-formed', err.message) })
    this.#parser = p
  }

  #input (text: string): void {
    if (this.#state === 'closed' || text === '') return
    if (this.#tlsPending) { if (text.trim() !== '') this.#injected(); return }
    const forbidden = this.#guard.check(text)
    if (forbidden) { this.streamError('restricted-xml', `${forbidden} is not allowed in an XMPP stream`); return }
    this.#pendingBytes += Buffer.byteLength(text)
    if (this.#pendingBytes > this.host.maxStanzaBytes) { this.streamError('policy-violation', `a stanza is limited to ${this.host.maxStanzaBytes} bytes`); return }
    try {
      this.#parser.write(text)
    } catch (err) {
      this.streamError('not-well-formed', (err as Error).message)
    }
  }

  #open (el: Element): void {
    if (el.name !== 'stream:stream' || el.attrs['xmlns:stream'] !== NS.stream) { this.streamError('invalid-namespace'); return }
    const header = `<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.stream}' id='${randomBytes(8).toString('hex')}' from='${this.host.domain}' version='1.0' xml:lang='en'>`
    this.#socket.write(header)
    if (el.attrs.xmlns !== NS.client) { this.streamError('invalid-namespace', 'only jabber:client streams are served'); return }
    if (el.attrs.to !== undefined && el.attrs.to.toLowerCase() !== this.host.domain) { this.streamError('host-unknown', `this server is ${this.host.domain}`); return }
    if (el.attrs.version !== '1.0') { this.streamError('unsupported-version'); return }
    const features = xml('stream:features')
    if (this.#state === 'tls') features.append(xml('starttls', { xmlns: NS.tls }, xml('required')))
    else if (this.#state === 'auth') features.append(xml('mechanisms', { xmlns: NS.sasl }, ...MECHANISMS.map((m) => xml('mechanism', {}, m))))
    else if (this.#state === 'bind') features.append(xml('bind', { xmlns: NS.bind }), xml('session', { xmlns: NS.session }, xml('optional')), xml('sm', { xmlns: NS.sm }))
    this.#socket.write(features.toString())
  }

  /** A new stream on the same connection (after STARTTLS or SASL success). */
  #restart (): void {
    this.#guard.restart()
    this.#pendingBytes = 0
    this.#newParser()
  }

  async #stanza (el: Element): Promise<void> {
    if (this.#state === 'closed') return
    switch (this.#state) {
      case 'tls':
        if (el.is('starttls', NS.tls)) return this.#startTls()
        return this.streamError('policy-violation', 'STARTTLS is required before anything else')
      case 'auth':
        if (el.is('auth', NS.sasl)) return this.#auth(el)
        if (el.is('response', NS.sasl)) return this.#response(el)
        if (el.is('abort', NS.sasl)) return this.#saslFailure('aborted')
        return this.streamError('not-authorized', 'authenticate first')
      case 'bind':
        return this.#bind(el)
      case 'ready':
        if (el.attrs.xmlns === NS.sm) return this.#streamManagement(el)
        await this.#session?.stanza(el)
    }
  }

  /** XEP-0198 elements after binding: enable, ack requests and acks. */
  async #streamManagement (el: Element): Promise<void> {
    const session = this.#session
    if (!session) return
    if (el.name === 'enable') {
      if (session.sm.enabled) { await this.send(xml('failed', { xmlns: NS.sm }, xml('unexpected-request', { xmlns: NS.stanzas }))); return }
      const r = session.enableSm(el.attrs.resume === 'true' || el.attrs.resume === '1')
      await this.send(xml('enabled', { xmlns: NS.sm, ...(r.id !== undefined ? { id: r.id, resume: 'true', max: String(r.max) } : {}) }))
      return
    }
    if (!session.sm.enabled) return
    if (el.name === 'r') { await this.send(xml('a', { xmlns: NS.sm, h: String(session.sm.inbound) })); return }
    if (el.name === 'a') {
      const h = Number(el.attrs.h)
      if (!Number.isSafeInteger(h) || h < 0 || !session.acked(h)) this.streamError('undefined-condition', `the acknowledged count ${el.attrs.h ?? ''} is more than was sent (handled-count-too-high)`)
    }
  }

  #injected (): void {
    this.streamError('policy-violation', 'nothing may follow <starttls/> before the TLS handshake')
  }

  #startTls (): void {
    const ctx = this.host.tls
    if (this.#state === 'closed') return
    if (!ctx || !(this.#socket instanceof Socket)) return
    this.#socket.write(xml('proceed', { xmlns: NS.tls }).toString())
    const raw = this.#socket
    raw.removeListener('data', this.#onData)
    const secure = new TLSSocket(raw, { isServer: true, secureContext: ctx })
    secure.on('data', this.#onData)
    secure.on('error', (err) => { this.host.log.info({ err: err.message }, 'xmpp TLS handshake failed'); secure.destroy() })
    secure.on('close', () => { void this.#closed() })
    this.#socket = secure
    this.#decoder = new StringDecoder('utf8')
    this.#state = 'auth'
    this.#tlsPending = false
    this.#restart()
  }

  /** A SASL failure (RFC 6120 §6.4.5); the third in a row ends the stream. */
  #saslFailure (condition: string, text?: string): Promise<void> {
    this.#scram = undefined
    this.#authAttempts++
    const sent = this.send(xml('failure', { xmlns: NS.sasl }, xml(condition), text ? xml('text', {}, text) : undefined))
    if (this.#authAttempts >= MAX_AUTH_ATTEMPTS) this.streamError('policy-violation', 'too many failed logins')
    return sent.catch(() => {})
  }

  /** The user a SASL user name names: the user id, or the bare JID. */
  #userOf (name: string): string { return name.includes('@') ? name.slice(0, name.indexOf('@')) : name }

  /** An authorization identity is allowed when absent or the user's own bare JID. */
  #authzOk (authzid: string | undefined, userId: string): boolean {
    return authzid === undefined || authzid === '' || authzid.split('/')[0] === `${userId}@${this.host.domain}`
  }

  async #success (who: { userId: string, deviceId: string }, mechanism: string, additional?: string): Promise<void> {
    this.#scram = undefined
    if (!this.host.signedIn(this, who.deviceId)) {
      this.streamError('policy-violation', `more than ${MAX_UNBOUND_PER_DEVICE} streams of this device are signed in but not bound`)
      return
    }
    this.#who = who
    this.host.log.info({ jid: this.jid, mechanism }, 'xmpp sign-in')
    await this.send(xml('success', { xmlns: NS.sasl }, additional !== undefined ? Buffer.from(additional).toString('base64') : undefined))
    this.#state = 'bind'
    this.#restart()
  }

  async #auth (el: Element): Promise<void> {
    if (this.#scram) return this.#saslFailure('malformed-request', 'an exchange is already under way')
    const mechanism = el.attrs.mechanism as string | undefined
    const text = el.text().trim()
    const scram = SCRAM_MECHANISMS.find(([name]) => name === mechanism)
    if (scram) {
      this.#scram = { mechanism: scram[0], hash: scram[1] }
      // No initial response (RFC 6120 §6.4.2): an empty challenge asks for the client-first message.
      if (text === '' || text === '=') { await this.send(xml('challenge', { xmlns: NS.sasl })); return }
      return this.#scramStep(text)
    }
    if (mechanism !== 'PLAIN') return this.#saslFailure('invalid-mechanism')
    const raw = Buffer.from(text, 'base64').toString('utf8')
    const [authzid, authcid, token] = raw.split('\u0000')
    if (authcid === undefined || token === undefined) return this.#saslFailure('malformed-request')
    const found = this.host.login(this.#userOf(authcid), token)
    if (!found || !this.#authzOk(authzid, found.userId)) {
      return this.#saslFailure('not-authorized', 'the user is the user id, the password is a device token of that user')
    }
    return this.#success(found, 'PLAIN')
  }

  async #response (el: Element): Promise<void> {
    if (!this.#scram) return this.#saslFailure('malformed-request', 'no SASL exchange is under way')
    return this.#scramStep(el.text().trim())
  }

  /** The next SCRAM message from the client: client-first, then client-final. */
  async #scramStep (base64: string): Promise<void> {
    const st = this.#scram as ScramState
    const message = Buffer.from(base64, 'base64').toString('utf8')
    try {
      if (!st.exchange) {
        st.exchange = new ScramExchange(st.hash)
        const first = st.exchange.start(message, (name) => this.host.scram(this.#userOf(name)))
        st.user = this.#userOf(first.user)
        st.authzid = first.authzid
        await this.send(xml('challenge', { xmlns: NS.sasl }, Buffer.from(first.serverFirst).toString('base64')))
        return
      }
      // The devices are read again now: one revoked during the exchange no longer counts.
      const devices = this.host.scram(st.user as string).devices
      const { index, serverFinal } = st.exchange.finish(message, devices.map((d) => d.keys[st.hash]))
      const found = devices[index] as { userId: string, deviceId: string }
      if (!this.#authzOk(st.authzid, found.userId)) return this.#saslFailure('invalid-authzid')
      return this.#success({ userId: found.userId, deviceId: found.deviceId }, st.mechanism, serverFinal)
    } catch (err) {
      if (!(err instanceof ScramError)) throw err
      return this.#saslFailure(err.condition, err.condition === 'not-authorized' ? 'the user is the user id, the password is a device token of that user' : err.message)
    }
  }

  async #bind (el: Element): Promise<void> {
    const who = this.#who
    if (!who) return
    if (el.is('enable', NS.sm)) {
      // XEP-0198 §3: only after binding.
      await this.send(xml('failed', { xmlns: NS.sm }, xml('unexpected-request', { xmlns: NS.stanzas })))
      return
    }
    if (el.is('resume', NS.sm)) {
      const h = Number(el.attrs.h)
      const resumed = Number.isSafeInteger(h) && h >= 0 ? await this.host.resume(this, who, el.attrs.previd ?? '', h) : undefined
      if (!resumed) {
        await this.send(xml('failed', { xmlns: NS.sm }, xml('item-not-found', { xmlns: NS.stanzas })))
        return
      }
      this.#session = resumed
      this.#ready()
      return
    }
    if (!el.is('iq') || el.attrs.type !== 'set' || !el.getChild('bind', NS.bind)) {
      if (el.is('iq') && el.attrs.type !== 'result' && el.attrs.type !== 'error') {
        await this.send(stanzaError(el, {}, 'cancel', 'not-allowed'))
        return
      }
      return this.streamError('not-authorized', 'bind a resource first')
    }
    // The resource is the device id, whatever the client asked for (RFC 6120 §7.6.2.2 lets the server choose).
    this.#session = await this.host.bind(this, who)
    this.#ready()
    await this.send(xml('iq', { type: 'result', id: el.attrs.id }, xml('bind', { xmlns: NS.bind }, xml('jid', {}, this.jid))))
  }

  #closing: Promise<void> | undefined
  /** Bound: no longer counted as signing in; from now on silence is what ends the stream. */
  #ready (): void {
    this.#state = 'ready'
    this.#settle()
    this.#lastInput = Date.now()
    this.#idleCheck()
  }

  #settle (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.host.settled(this)
  }

  /** XEP-0199 from the server's side: half the idle time without input brings a ping, which any live client answers. */
  #idleCheck (): void {
    if (this.#state !== 'ready') return
    const idle = this.host.idleTimeoutMs
    const silent = Date.now() - this.#lastInput
    if (silent >= idle) { this.streamError('connection-timeout', `nothing received for ${Math.round(silent / 1000)} s`); return }
    if (silent >= idle / 2) {
      if (!this.#pinged) {
        this.#pinged = true
        this.send(xml('iq', { type: 'get', id: `ping-${randomBytes(4).toString('hex')}`, to: this.jid }, xml('ping', { xmlns: NS.ping }))).catch(() => {})
      }
    } else {
      this.#pinged = false
    }
    const next = silent >= idle / 2 ? idle - silent : idle / 2 - silent
    this.#timer = setTimeout(() => { this.#idleCheck() }, Math.max(next, 10))
    this.#timer.unref()
  }

  #closed (): Promise<void> {
    this.#settle()
    this.#state = 'closed'
    this.#closing ??= (async () => {
      await this.#session?.close(this).catch(() => {})
    })()
    return this.#closing
  }
}
