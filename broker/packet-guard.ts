// Inbound packet guard. It stands between a connection's bytes and aedes'
// MQTT parser (it wraps the parser's parse(), which aedes calls with every
// chunk it reads), frames packets itself, and passes on to the parser only
// what may be parsed:
// - a PUBLISH over the size limit is not read: its topic, packet id and the
//   start of its payload are, then a small stand-in PUBLISH (same topic,
//   packet id and flags; `oversizeMarker` as its payload) goes to the parser
//   in its place, and the rest of its bytes are dropped as they arrive. The
//   chat layer refuses the stand-in (`too_large`) and the broker acknowledges
//   it, so the session goes on: a client that resends an unacknowledged
//   PUBLISH after every reconnect (as MQTT requires) is not stuck on it;
// - any other packet over the size limit closes the connection as soon as its
//   fixed header announces it (mqtt-packet would buffer it whole);
// - a first CONNECT naming a protocol level other than 3, 4 or 5 is answered
//   with CONNACK 0x01 [MQTT-3.1.2-2] (mqtt-packet refuses to parse it, so
//   aedes would only close);
// - the per-packet rules of packet-rules.ts (MQTT 3.1/3.1.1) and
//   packet-rules-v5.ts (MQTT 5: malformed or forbidden fields that
//   mqtt-packet and aedes let through, or crash on) close the connection on
//   a violation [MQTT-4.8.0-1], before the packet reaches the parser. An
//   MQTT 5 client is told why first: a CONNACK with the reason code when
//   the CONNECT broke a rule, else a DISCONNECT (once its CONNACK is out;
//   MQTT 5 forbids a DISCONNECT before it), also for an oversize packet
//   (0x95, Packet too large).
// Bytes are passed on as slices of the chunks read, never copied, except the
// few a rule needs (whole small control packets; a PUBLISH's topic and id).
import type { Duplex } from 'node:stream'
import { connectLevel, CONNECT, neededBytes, packetViolation, PUBLISH } from './packet-rules.js'
import { neededBytesV5, packetViolationV5 } from './packet-rules-v5.js'

const KNOWN_LEVELS = new Set([3, 4, 5])
const CONNACK_UNACCEPTABLE_VERSION = Buffer.from([0x20, 0x02, 0x00, 0x01])
const PACKET_TOO_LARGE = 0x95
/** An MQTT 5 CONNACK refusing with `code`, no properties. */
const connackV5 = (code: number): Buffer => Buffer.from([0x20, 0x03, 0x00, code, 0x00])
/** An MQTT 5 DISCONNECT with `code` and no properties (the remaining length 1 leaves their length out, §3.14.2.2.1). */
export const disconnectV5 = (code: number): Buffer => Buffer.from([0xe0, 0x01, code])

/** Sends `goodbye` after what was written before, then closes: once sent, or after a second when the peer does not read. */
function closeWith (conn: Duplex, goodbye: Buffer): void {
  conn.end(goodbye)
  const timer = setTimeout(() => conn.destroy(), 1000)
  timer.unref()
  conn.once('finish', () => { clearTimeout(timer); conn.destroy() })
}
/** The bytes of a packet before any arrived (shared: this runs for every packet). */
const NOTHING = Buffer.alloc(0)
/** How much of an oversize PUBLISH's payload is read: enough to find the envelope's client id. */
const OVERSIZE_PAYLOAD_PREFIX = 512

/** The stand-in payload's prefix: a NUL byte, which no JSON envelope starts with. */
const MARKER = '\u0000mqchat-oversize '

/** The payload standing in for an oversize PUBLISH: its size, and the start of its own payload. */
export function oversizeMarker (size: number, payloadStart: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${MARKER}${size}\n`, 'latin1'), payloadStart])
}

/** The size and payload start of a stand-in PUBLISH, or undefined for any other payload. */
export function readOversizeMarker (payload: Buffer): { size: number, payloadStart: Buffer } | undefined {
  if (payload.length < MARKER.length || payload[0] !== 0 || payload.toString('latin1', 0, MARKER.length) !== MARKER) return undefined
  const nl = payload.indexOf(0x0a, MARKER.length)
  const size = Number(payload.toString('latin1', MARKER.length, nl))
  if (nl < 0 || !Number.isSafeInteger(size)) return undefined
  return { size, payloadStart: payload.subarray(nl + 1) }
}

export interface GuardOptions {
  maxBytes: number
  /** A packet other than PUBLISH over the limit: the connection is closed. */
  onOversize: (size: number) => void
  /** A PUBLISH over the limit, replaced by a stand-in. Without it such a PUBLISH closes the connection too. */
  onOversizePublish?: (size: number) => void
  /** Called when a packet breaks a rule of packet-rules.ts; without it the rules are off. */
  onViolation?: (reason: string) => void
  /** Called when the first CONNECT names an unknown protocol level; without it that check is off. */
  onUnknownLevel?: (level: number) => void
  /** Whether the connection's CONNACK has been sent (an MQTT 5 DISCONNECT may only follow it). */
  connackSent?: () => boolean
}

/** What aedes parses a connection's bytes with (its client's `_parser`). */
export interface PacketParser { parse (chunk: Buffer): unknown }

/** What the guard offers the rest of the broker: ending the connection as it does itself. */
export interface PacketGuard {
  /**
   * Ends the connection and passes nothing more to the parser. An MQTT 5
   * client whose CONNACK is out is told `reasonCode` in a DISCONNECT first
   * (a CONNACK with it, when its CONNECT is what broke a rule); 0 or any
   * other client: closed at once.
   */
  close (reasonCode: number): void
}

export function guardPackets (conn: Duplex, parser: PacketParser, o: GuardOptions): PacketGuard {
  const parse = parser.parse.bind(parser)
  let state: 'type' | 'length' | 'body' = 'type'
  let type = 0
  let flags = 0
  let length = 0
  let multiplier = 1
  let headerBytes = 0
  let remaining = 0
  let first = true
  const rules = o.onViolation !== undefined
  /** The connection's CONNECT named MQTT 5. */
  let v5 = false
  /** The reason code an MQTT 5 client is told when the current packet ends the connection. */
  let reasonCode = 0
  const v5State = { sessionExpiry: 0 }
  let dead = false
  /** Collecting the bytes a rule (or a stand-in) needs; the packet is held until then. */
  let collecting = false
  let parts: Buffer[] = []
  let have = 0
  let need = 0
  /** An oversize PUBLISH: its bytes are not passed on. */
  let oversize = false
  /** The current packet's bytes from earlier chunks, not passed on yet (its header, what was collected). */
  let held: Buffer[] = []

  const close = (code: number): void => {
    if (dead) return
    dead = true
    if (v5 && code !== 0) {
      // Told why, then closed.
      const goodbye = type === CONNECT && first ? connackV5(code) : o.connackSent?.() === true ? disconnectV5(code) : undefined
      if (goodbye) { closeWith(conn, goodbye); return }
    }
    conn.destroy()
  }

  /** Checks the collected head of the current packet; false when the connection was closed. */
  const check = (body: Buffer): boolean => {
    collecting = false
    parts = []
    const wasFirst = first
    if (first && type === CONNECT) {
      const level = connectLevel(body)
      if (level !== undefined && !KNOWN_LEVELS.has(level) && o.onUnknownLevel) {
        o.onUnknownLevel(level)
        dead = true
        conn.end(CONNACK_UNACCEPTABLE_VERSION)
        return false
      }
      v5 = level === 5
    }
    if (!rules) { first = false; return true }
    let violation: string | undefined
    if (v5) {
      const v = packetViolationV5(type, flags, length, body, v5State)
      reasonCode = v?.reasonCode ?? 0
      violation = v?.reason
    } else {
      violation = packetViolation(type, flags, length, body)
    }
    if (violation === undefined) { first = false; return true }
    o.onViolation?.(violation)
    // `first` stays as it was while the connection closes: a CONNECT's violation is answered with a CONNACK.
    first = wasFirst
    return false
  }
  const needed = (head: Buffer): number => v5 ? neededBytesV5(type, flags, length, head) : neededBytes(type, flags, length, head)

  /** The stand-in for an oversize PUBLISH, from its collected head (topic, packet id, payload start). */
  const standIn = (head: Buffer): Buffer => {
    // Topic, packet id and (MQTT 5) properties, the bytes a rule reads, are kept; the payload is replaced.
    const payloadAt = needed(head)
    const body = Buffer.concat([head.subarray(0, payloadAt), oversizeMarker(length + headerBytes, head.subarray(payloadAt))])
    const len: number[] = []
    let n = body.length
    do {
      let byte = n % 128
      n = Math.floor(n / 128)
      if (n > 0) byte |= 0x80
      len.push(byte)
    } while (n > 0)
    return Buffer.concat([Buffer.from([(PUBLISH << 4) | flags, ...len]), body])
  }

  const wantsRules = (): boolean => rules || (first && o.onUnknownLevel !== undefined)

  parser.parse = (chunk: Buffer): unknown => {
    if (dead) return undefined
    let i = 0
    /** Start of this chunk's bytes not passed on yet. */
    let from = 0
    /** Where the current packet starts in this chunk (0 when it began in an earlier one). */
    let packetStart = 0
    /** Passes chunk[from, to) on to the parser: one call per run of bytes, not one per packet. */
    const pass = (to: number): void => {
      if (to > from) parse(chunk.subarray(from, to))
      from = to
    }
    /**
     * The current packet may be parsed: its bytes from earlier chunks go first.
     * (Bytes are held only for a packet that began in an earlier chunk, so
     * nothing of this chunk comes before them.)
     */
    const decided = (): void => {
      for (const h of held) parse(h)
      held = []
    }
    /**
     * The current packet ends the connection (a broken rule, or over the
     * limit): the packets before it are parsed (as they would have been had
     * they come in a chunk of their own), nothing of it is.
     */
    const refuse = (): undefined => {
      if (dead) return undefined
      held = []
      pass(packetStart)
      close(reasonCode)
      return undefined
    }
    while (i < chunk.length && !dead) {
      if (state === 'body') {
        if (collecting) {
          const n = Math.min(remaining, chunk.length - i, need - have)
          parts.push(chunk.subarray(i, i + n))
          have += n
          remaining -= n
          i += n
          if (have === need) {
            const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
            parts = [head]
            const more = oversize ? Math.min(length, needed(head) + OVERSIZE_PAYLOAD_PREFIX) : needed(head)
            if (more > have) {
              need = more
            } else if (!check(head)) {
              return refuse()
            } else if (oversize) {
              // The oversize packet's bytes so far are dropped; the stand-in goes in their place.
              held = []
              pass(packetStart)
              from = i
              parse(standIn(head))
            } else {
              decided()
            }
          }
        } else {
          const take = Math.min(remaining, chunk.length - i)
          remaining -= take
          i += take
          if (oversize) from = i
        }
        if (remaining === 0) {
          state = 'type'
          oversize = false
        }
        continue
      }
      const byte = chunk[i]!
      if (state === 'type') {
        packetStart = i++
        state = 'length'
        type = byte >> 4
        flags = byte & 0x0f
        length = 0
        multiplier = 1
        headerBytes = 1
        continue
      }
      i++
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      headerBytes++
      if ((byte & 0x80) !== 0 && headerBytes < 5) continue
      remaining = length
      if (length + headerBytes > o.maxBytes) {
        if (type !== PUBLISH || first || o.onOversizePublish === undefined) {
          o.onOversize(length + headerBytes)
          reasonCode = PACKET_TOO_LARGE
          return refuse()
        }
        o.onOversizePublish(length + headerBytes)
        oversize = true
      }
      state = remaining === 0 ? 'type' : 'body'
      if (oversize || wantsRules()) {
        collecting = true
        parts = []
        have = 0
        need = oversize ? Math.min(length, 2) : needed(NOTHING)
        if (need === 0) {
          if (!check(NOTHING)) return refuse()
          decided()
        }
      } else {
        first = false
        decided()
      }
    }
    if (dead) return undefined
    if (state === 'length' || collecting) {
      // The current packet is undecided (its header is incomplete, or a rule waits for more of it):
      // what came before it is passed on, its own bytes are held.
      pass(Math.max(from, packetStart))
      if (chunk.length > from) held.push(chunk.subarray(from))
    } else if (!oversize) {
      pass(chunk.length)
    }
    return undefined
  }
  return { close }
}
