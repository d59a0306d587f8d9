// @xmpp/client for the tests, with one upstream race closed.
import { client, xml, type Client } from '@xmpp/client'

/**
 * A client as @xmpp/client makes it, except that a write resolves once the
 * socket has the data instead of at the write's callback. The library's
 * Connection.open() writes the stream header, awaits that write, and only
 * then listens for the server's header. On Node 24 a TLS socket on loopback
 * may run the write's callback after the server's answer has been read and
 * parsed; the 'open' event is then missed, open() waits out its 2 s timeout
 * and the sign-in fails with a TimeoutError (about once in 30 STARTTLS
 * sign-ins on an idle machine here, several times per test file under load;
 * not seen on Node 22). With the write resolved at once, the listener is in
 * place before any answer can be read; a failed write still reaches the
 * client as the socket's 'error'.
 */
export function xmppClient (options: Parameters<typeof client>[0]): Client {
  const c = client(options)
  c.write = async function (this: Client, data: string): Promise<void> {
    if (this.status === 'closing') throw new Error('Connection is closing')
    if (this.socket === null) throw new Error(`not connected (${this.status})`)
    this.socket.write(data)
  }
  return c
}

/**
 * Sends initial presence once stream management is on, as real clients order
 * it. The server sends a device's events once it is available; if presence
 * went out before <enable/>, events may arrive ahead of <enabled/>, and
 * @xmpp/client counts them but resets its count only a microtask after
 * reading <enabled/>: an <r/> in the same read is then answered with an h that
 * counts stanzas sent before stream management began, which the server
 * rightly ends as handled-count-too-high (XEP-0198). `smMs` bounds the wait
 * for a server that does not offer stream management.
 */
export async function announce (c: Client, smMs = 5000): Promise<void> {
  const until = Date.now() + smMs
  while (!c.streamManagement.enabled && Date.now() < until && c.status === 'online') await new Promise((resolve) => setTimeout(resolve, 10))
  await c.send(xml('presence'))
}
