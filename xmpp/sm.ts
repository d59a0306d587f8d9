// Stream management (XEP-0198) for one resource: stanza counts both ways and
// the outbound stanzas the client has not acknowledged yet. It belongs to
// the session, not to the connection, so a resumed stream picks up where the
// broken one stopped: unacknowledged stanzas are sent again, in order, and
// acknowledged ones never are.
//
// Without stream management a stanza counts as delivered once it is written
// to the socket; with it, once the client's <a h='…'/> covers it. Each
// stanza's `done` runs then: for an inbox event that is its PUBACK, so the
// device's MQTT session keeps what the client has not confirmed.
import type { Element } from '@xmpp/xml'

export const NS_SM = 'urn:xmpp:sm:3'

const MOD = 2 ** 32

interface Pending { el: Element, done?: () => void }

export class StreamManagement {
  enabled = false
  /** Stanzas received from the client since enable (the h we report). */
  inbound = 0
  #acked = 0
  #sent = 0
  #queue: Pending[] = []
  #write: ((el: Element) => Promise<void>) | undefined
  #requestMore: (() => void) | undefined

  /** Connects the current stream's writer; `request` asks the client for an ack (<r/>). */
  attach (write: (el: Element) => Promise<void>, request: () => void): void {
    this.#write = write
    this.#requestMore = request
  }

  /** The stream is gone; stanzas queue until a resumption attaches a new one. */
  detach (): void {
    this.#write = undefined
    this.#requestMore = undefined
  }

  get unacked (): number { return this.#queue.length }

  enable (): void {
    this.enabled = true
    this.inbound = 0
    this.#acked = 0
    this.#sent = 0
  }

  /** Sends a stanza; `done` runs once it is delivered (see above). */
  async send (el: Element, done?: () => void): Promise<void> {
    if (!this.enabled) {
      // Nowhere to write (the connection is gone): not delivered, so not done.
      if (!this.#write) return
      await this.#write(el)
      done?.()
      return
    }
    this.#queue.push({ el, done })
    this.#sent = (this.#sent + 1) % MOD
    if (!this.#write) return
    this.#requestMore?.()
    await this.#write(el)
  }

  /**
   * The client has handled `h` stanzas: those are done. Returns false when h
   * counts more than was sent (a protocol violation).
   */
  ack (h: number): boolean {
    const n = (h - this.#acked + MOD) % MOD
    if (n > this.#queue.length) return false
    for (const p of this.#queue.splice(0, n)) p.done?.()
    this.#acked = h % MOD
    return true
  }

  /** After a resumption at the client's h: the stanzas it did not get, to send again in order. */
  resend (): Element[] {
    return this.#queue.map((p) => p.el)
  }
}
