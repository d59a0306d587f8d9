// The inbound QoS 2 window: how many QoS 2 PUBLISHes a connection may have
// sent and not yet released (PUBREL). Each held one is a record in the
// session store until its PUBREL comes, so a client that keeps sending new
// packet ids and never releases them would grow that store up to the 16-bit
// id space. One over the window closes the connection, before the broker
// sees the packet: no PUBREC, nothing stored (MQTT 3.1.1 has no reason code
// to send; an MQTT 5 client gets DISCONNECT 0x93, Receive Maximum exceeded).
//
// It sits on the connection's parsed packets (the MQTT parser's 'packet'
// events, which aedes handles), so it holds for every protocol level and
// does not depend on the broker engine (aedes 1.2 has such a limit, the 2.0
// line does not). A resent PUBLISH (same id, DUP) takes no second place.
import type { Duplex } from 'node:stream'

interface Parsed { cmd?: string, qos?: number, messageId?: number }
interface PacketEmitter { emit (event: string | symbol, ...args: unknown[]): boolean }

/** `end` closes the connection (by default at once; the broker tells an MQTT 5 client why first). */
export function limitUnreleased (conn: Duplex, parser: PacketEmitter, limit: number, onExceeded: (held: number) => void, end = (): void => { conn.destroy() }): void {
  const held = new Set<number>()
  let closed = false
  const emit = parser.emit.bind(parser)
  parser.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== 'packet') return emit(event, ...args)
    // Packets after the one that closed the connection (same chunk) are not handed on either.
    if (closed) return false
    const p = args[0] as Parsed
    if (p.cmd === 'publish' && p.qos === 2 && p.messageId !== undefined) {
      if (!held.has(p.messageId) && held.size >= limit) {
        closed = true
        onExceeded(held.size)
        end()
        return false
      }
      held.add(p.messageId)
    } else if (p.cmd === 'pubrel' && p.messageId !== undefined) {
      held.delete(p.messageId)
    }
    return emit(event, ...args)
  }
}
