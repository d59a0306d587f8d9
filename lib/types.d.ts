// qlobber ships no type declarations; these cover the parts mqchat uses.
declare module 'qlobber' {
  interface QlobberOptions { separator?: string; wildcard_one?: string; wildcard_some?: string; match_empty_levels?: boolean }
  export class QlobberTrue {
    constructor (options?: QlobberOptions)
    add (topic: string): this
    test (topic: string): boolean
  }
}
declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberOptions { separator?: string; wildcard_one?: string; wildcard_some?: string }
  export default class QlobberSub {
    constructor (options?: QlobberOptions)
    add (topic: string, sub: Record<string, unknown>): this
    remove (topic: string, sub: { clientId: string; topic: string }): this
    match (topic: string): Array<Record<string, unknown>>
    subscriptionsCount: number
  }
}

// @xmpp/xml and @xmpp/jid (xmpp.js 0.14) ship no type declarations; these cover the parts mqchat uses.
declare module '@xmpp/xml' {
  import { EventEmitter } from 'node:events'
  export class Element {
    constructor (name: string, attrs?: Record<string, string | undefined>)
    name: string
    attrs: Record<string, string | undefined>
    children: Array<Element | string>
    parent: Element | null
    getName (): string
    getNS (): string | undefined
    getChild (name: string, xmlns?: string): Element | undefined
    getChildren (name: string, xmlns?: string): Element[]
    getChildText (name: string, xmlns?: string): string | null
    getChildElements (): Element[]
    text (): string
    is (name: string, xmlns?: string): boolean
    append (...children: Array<Element | string>): this
    toString (): string
  }
  export class Parser extends EventEmitter {
    /** The stream's root element once its start tag is read, and the element being read. */
    root: Element | null
    cursor: Element | null
    write (data: string): void
    /** Character data, appended to the element being read (overridable: bound in the constructor). */
    onText (str: string): void
  }
  export function xml (name: string, attrs?: Record<string, string | number | undefined> | null, ...children: Array<Element | string | undefined>): Element
  export function escapeXML (s: string): string
  export default xml
}
declare module '@xmpp/jid' {
  export interface JID { local: string, domain: string, resource: string, bare (): JID, toString (): string }
  export function jid (address: string): JID
  export default jid
}
// @xmpp/client (a devDependency: the XMPP tests' reference client).
declare module '@xmpp/client' {
  import { EventEmitter } from 'node:events'
  import type { Element } from '@xmpp/xml'
  export type { Element } from '@xmpp/xml'
  export { xml } from '@xmpp/xml'
  export interface Client extends EventEmitter {
    start (): Promise<{ toString (): string }>
    stop (): Promise<void>
    send (el: Element): Promise<void>
    iqCaller: { get (el: Element, to?: string): Promise<Element>, request (iq: Element, timeoutMs?: number): Promise<Element> }
    /** Reconnects after a lost connection, a second later; stop() does not stop it (a stream that fails to close stays 'disconnect' and keeps reconnecting). */
    reconnect: { stop (): void }
    /** The stream management module (XEP-0198): its id is set once enabled; emits 'resumed'. */
    streamManagement: EventEmitter & { enabled: boolean, id: string, inbound: number }
    /** The connection's state: 'online' once signed in and bound; 'disconnect', 'offline' and others after. */
    status: string
    /** After STARTTLS, @xmpp/tls's wrapper around the TLS socket; without TLS, the TCP socket itself. */
    socket: { socket?: { destroy (): void }, destroy (): void, write (data: string, cb?: (err?: Error) => void): boolean } | null
    /** Writes to the socket; send() and open() go through it. */
    write (data: string): Promise<void>
  }
  /** Called with the mechanisms both sides support; calls `authenticate` with the credentials and the mechanism chosen. */
  export type Credentials = (authenticate: (credentials: { username: string, password: string }, mechanism: string) => Promise<void>, mechanisms: string[]) => Promise<void>
  export function client (options: { service: string, domain: string, username?: string, password?: string, resource?: string, credentials?: Credentials }): Client
}
