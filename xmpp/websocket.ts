// XMPP over WebSocket (RFC 7395): the same XmppStream, behind a framing
// adapter. On a WebSocket every message is one whole element and the stream
// header is replaced by <open/> and <close/> in the framing namespace; the
// adapter turns those into the stream header and end tag the stream parser
// expects, and the stream's header, features and errors back into framing.
// TLS is the WebSocket's (wss), so no STARTTLS is offered.
import { EventEmitter } from 'node:events'
import type { WebSocket } from 'ws'
import type { Transport } from './stream.js'

const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing'
const STREAM_NS = 'http://etherx.jabber.org/streams'

const attr = (text: string, name: string): string | undefined => new RegExp(`\\s${name}=(['"])([^'"]*)\\1`).exec(text)?.[2]
const quote = (v: string): string => v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;')

export class WebSocketTransport extends EventEmitter implements Transport {
  #closed = false
  /** Told of a binary frame (the stream ends it with a stream error). */
  onBinary: () => void = () => { this.destroy() }

  constructor (private readonly ws: WebSocket) {
    super()
    ws.on('message', (data, isBinary) => {
      // Frames are text (RFC 7395 §3.2): a binary one is not XML text.
      if (isBinary) { this.onBinary(); return }
      this.#fromClient(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8'))
    })
    ws.on('close', () => { this.#closed = true; this.emit('close') })
    ws.on('error', (err) => this.emit('error', err))
  }

  /** A client frame, as stream text for the parser. */
  #fromClient (text: string): void {
    const t = text.trim()
    let out = t
    if (/^<open[\s/>]/.test(t) && attr(t, 'xmlns') === FRAMING) {
      const to = attr(t, 'to')
      const version = attr(t, 'version')
      out = `<stream:stream xmlns='jabber:client' xmlns:stream='${STREAM_NS}'${to !== undefined ? ` to='${quote(to)}'` : ''}${version !== undefined ? ` version='${quote(version)}'` : ''}>`
    } else if (/^<close[\s/>]/.test(t) && attr(t, 'xmlns') === FRAMING) {
      out = '</stream:stream>'
    }
    this.emit('data', Buffer.from(out, 'utf8'))
  }

  /** Stream text from the server, as frames; `cb` once the last one is written. */
  #toClient (text: string, cb?: (err?: Error | null) => void): void {
    if (this.#closed) { cb?.(new Error('the WebSocket is closed')); return }
    let sent = false
    let t = text
    if (t.startsWith('<?xml')) t = t.slice(t.indexOf('?>') + 2)
    if (t.startsWith('<stream:stream')) {
      const head = t.slice(0, t.indexOf('>') + 1)
      const id = attr(head, 'id')
      const from = attr(head, 'from')
      this.ws.send(`<open xmlns='${FRAMING}'${id !== undefined ? ` id='${id}'` : ''}${from !== undefined ? ` from='${from}'` : ''} version='1.0' xml:lang='en'/>`)
      t = t.slice(head.length)
    }
    let closing = false
    if (t.endsWith('</stream:stream>')) {
      closing = true
      t = t.slice(0, -'</stream:stream>'.length)
    }
    if (t !== '') {
      // Without the enclosing stream element, stream-namespace elements declare their prefix (RFC 7395 §3.3.3).
      if (t.startsWith('<stream:')) t = t.replace(/^<stream:(\w+)/, `<stream:$1 xmlns:stream='${STREAM_NS}'`)
      this.ws.send(t, (err) => cb?.(err ?? null))
      sent = true
    }
    if (closing) {
      this.ws.send(`<close xmlns='${FRAMING}'/>`)
      this.ws.close(1000)
    }
    if (!sent) cb?.(null)
  }

  write (text: string, cb?: (err?: Error | null) => void): boolean {
    this.#toClient(text, cb)
    return true
  }

  end (text: string): this {
    this.#toClient(text)
    if (!this.#closed) this.ws.close(1000)
    return this
  }

  destroy (): this {
    this.ws.terminate()
    return this
  }
}
