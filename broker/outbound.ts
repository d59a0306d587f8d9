// What the broker writes to a connection, where aedes 2.0.0-beta.1 falls
// short of MQTT 5:
//
// - Its CONNACK carries a fixed set of properties (Shared Subscription
//   Available = 0, and the limits it is given). In chat mode mqchat also
//   refuses retained messages and wildcard subscriptions, so a device must be
//   told Retain Available = 0 and Wildcard Subscription Available = 0
//   [MQTT-3.2.2-14, 3.2.2.3.11].
// - A refusal from the authenticate hook can only carry a 3.1.1 return code,
//   which aedes maps to one MQTT 5 reason code: "server unavailable" (3)
//   becomes 0x88, where a server at its connection limit means 0x89 Server busy.
// - It announces a client's Receive Maximum but does not keep to it on what
//   it sends [MQTT-3.3.4-9]: QoS 1 and 2 PUBLISHes in flight to the client,
//   unacknowledged, must not exceed it. The window here holds the rest back
//   until a PUBACK or PUBCOMP frees a place. It counts every PUBLISH on the
//   connection, so a chat device's inbox (which keeps its own window) and the
//   events aedes sends it (presence; the cluster's queued events) share one.
//
// aedes writes every packet with mqtt-packet's writeToStream, looked up on
// the module at each call, and so does the local inbox: it is wrapped once
// here, and a packet to a stream registered here is edited or held. Any other
// packet passes with one WeakMap lookup. test/e2e/mqtt5.test.ts checks the
// CONNACK and the window on chat devices, test/e2e/connection-limit.test.ts
// the busy refusal, and the compat suite's v5 behaviour cases the window in
// open mode. A newer aedes that does these should replace this module.
import mqttPacket from 'mqtt-packet'

type Properties = NonNullable<mqttPacket.IConnackPacket['properties']>
type WriteOptions = { protocolVersion?: number } | undefined
interface Parsed { cmd?: string, messageId?: number, reasonCode?: number }
interface PacketEmitter { emit (event: string | symbol, ...args: unknown[]): boolean }

interface Outbound {
  connack?: Properties
  refusal?: number
  window?: ReceiveWindow
}

const streams = new WeakMap<object, Outbound>()
let write: typeof mqttPacket.writeToStream | undefined

function outboundOf (stream: object): Outbound {
  if (write === undefined) wrap()
  let o = streams.get(stream)
  if (o === undefined) streams.set(stream, o = {})
  return o
}

/** Adds `properties` to the MQTT 5 CONNACK that accepts the connection on `stream`. */
export function announceOnConnack (stream: object, properties: Properties): void {
  outboundOf(stream).connack = properties
}

/** Sends `reasonCode` instead of aedes' own in the MQTT 5 CONNACK that refuses the connection on `stream`. */
export function refuseConnackWith (stream: object, reasonCode: number): void {
  outboundOf(stream).refusal = reasonCode
}

/**
 * Keeps the QoS 1 and 2 PUBLISHes in flight on `stream` at most `max`: the
 * rest wait, in order, for the client's PUBACK or PUBCOMP (or a PUBREC with
 * an error code), read from `parser`'s packets. More than `maxHeld` waiting
 * calls `onOverflow`; those held are dropped with the connection, and a
 * persistent session has them stored.
 */
export function keepReceiveMaximum (stream: object, parser: PacketEmitter, max: number, maxHeld: number, onOverflow: () => void): void {
  const window = new ReceiveWindow(stream, max, maxHeld, onOverflow)
  outboundOf(stream).window = window
  const emit = parser.emit.bind(parser)
  parser.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'packet') window.acknowledged(args[0] as Parsed)
    return emit(event, ...args)
  }
}

/**
 * A held packet is reported to its writer as backpressure (writeToStream
 * returns false), and aedes then waits for the stream's 'drain' before it
 * writes that client more: once the held ones are all written, 'drain' is
 * emitted here. So a session's stored queue, replayed on reconnect one packet
 * at a time, waits its turn; only deliveries arriving at once (each writer
 * holds one) can reach `maxHeld`. A client that acknowledges nothing for
 * MQCHAT_DRAIN_TIMEOUT_MS while held back is dropped by aedes, as one whose
 * socket does not drain.
 */
class ReceiveWindow {
  readonly #inFlight = new Set<number>()
  #held: Array<[mqttPacket.IPublishPacket, WriteOptions]> = []
  #overflowed = false
  constructor (private readonly stream: object, private readonly max: number, private readonly maxHeld: number, private readonly onOverflow: () => void) {}

  /** Writes `packet` now (the stream's own answer), or holds it (false: wait for 'drain'). */
  send (packet: mqttPacket.IPublishPacket, opts: WriteOptions): boolean {
    const id = packet.messageId
    // A resent packet (its id already in flight) takes no new place.
    if (id === undefined || this.#inFlight.has(id)) return write!(packet, this.stream as never, opts)
    if (this.#inFlight.size < this.max && this.#held.length === 0) {
      this.#inFlight.add(id)
      return write!(packet, this.stream as never, opts)
    }
    if (this.#held.length >= this.maxHeld) {
      if (!this.#overflowed) { this.#overflowed = true; this.onOverflow() }
      return false
    }
    this.#held.push([packet, opts])
    return false
  }

  acknowledged (p: Parsed): void {
    if (p.messageId === undefined) return
    if (p.cmd === 'puback' || p.cmd === 'pubcomp' || (p.cmd === 'pubrec' && (p.reasonCode ?? 0) >= 0x80)) {
      if (!this.#inFlight.delete(p.messageId) || this.#held.length === 0) return
      while (this.#held.length > 0 && this.#inFlight.size < this.max) {
        const [packet, opts] = this.#held.shift()!
        if (packet.messageId !== undefined) this.#inFlight.add(packet.messageId)
        write!(packet, this.stream as never, opts)
      }
      if (this.#held.length === 0) (this.stream as NodeJS.EventEmitter).emit('drain')
    }
  }
}

function wrap (): void {
  const original = mqttPacket.writeToStream
  write = original
  mqttPacket.writeToStream = ((packet: mqttPacket.Packet, stream: NodeJS.WritableStream, opts?: WriteOptions): boolean => {
    const o = streams.get(stream)
    if (o === undefined) return original(packet, stream, opts)
    if (packet.cmd === 'publish') {
      return o.window !== undefined && packet.qos > 0 ? o.window.send(packet, opts) : original(packet, stream, opts)
    }
    if (packet.cmd === 'connack' && opts?.protocolVersion === 5) {
      if ((packet.reasonCode ?? 0) !== 0 && o.refusal !== undefined) {
        return original({ ...packet, reasonCode: o.refusal }, stream, opts)
      }
      if ((packet.reasonCode ?? 0) === 0 && o.connack !== undefined) {
        return original({ ...packet, properties: { ...packet.properties, ...o.connack } }, stream, opts)
      }
    }
    return original(packet, stream, opts)
  }) as typeof mqttPacket.writeToStream
}
