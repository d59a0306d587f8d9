// MQTT 5 rules for one inbound packet that mqtt-packet and aedes do not
// enforce (or enforce by crashing). Pure functions over a packet's bytes;
// the framing is in packet-guard.ts. A violation is a Malformed Packet
// (0x81) or a Protocol Error (0x82): the server answers with that reason
// code (CONNACK before the session exists, DISCONNECT after) and closes the
// connection [MQTT-4.13.1-1].
//
// The properties are checked here in full, before mqtt-packet reads them:
// it turns a string property without its value into `null` (aedes 2.0.0-beta.1
// then throws on a PUBLISH's Response Topic and the process ends), a user
// property without its value into a TypeError inside the parser, and a
// repeated property into an array where aedes expects one value.

import { badUtf8, CONNECT, Fields, PUBLISH } from './packet-rules.js'

export const MALFORMED = 0x81
export const PROTOCOL_ERROR = 0x82

/** A rule broken: the reason code the client is told (0: none, the connection just closes), and why. */
export interface Violation { reasonCode: number, reason: string }

/** What one connection's earlier packets settled that a later one must respect. */
export interface V5State {
  /** The CONNECT's Session Expiry Interval: with 0, a DISCONNECT may not set another [MQTT-3.14.2-2]. */
  sessionExpiry: number
}

type Kind = 'byte' | 'u16' | 'u32' | 'var' | 'string' | 'binary' | 'pair'

// Packet types a property may appear in (from a client), 0 standing for a CONNECT's will properties.
const WILL = 0
const PUBACK = 4
const PUBREC = 5
const PUBREL = 6
const PUBCOMP = 7
const SUBSCRIBE = 8
const UNSUBSCRIBE = 10
const DISCONNECT = 14
const AUTH = 15

interface PropertyRule { name: string, kind: Kind, in: readonly number[], repeatable?: boolean, values?: readonly number[], nonZero?: boolean }

/** MQTT 5 §2.2.2.2, as far as a client may send them (AUTH is refused whole: no property lists it). */
const PROPERTIES = new Map<number, PropertyRule>([
  [0x01, { name: 'Payload Format Indicator', kind: 'byte', in: [PUBLISH, WILL], values: [0, 1] }],
  [0x02, { name: 'Message Expiry Interval', kind: 'u32', in: [PUBLISH, WILL] }],
  [0x03, { name: 'Content Type', kind: 'string', in: [PUBLISH, WILL] }],
  [0x08, { name: 'Response Topic', kind: 'string', in: [PUBLISH, WILL] }],
  [0x09, { name: 'Correlation Data', kind: 'binary', in: [PUBLISH, WILL] }],
  // A client's PUBLISH must not carry one [MQTT-3.3.4-6].
  [0x0b, { name: 'Subscription Identifier', kind: 'var', in: [SUBSCRIBE], nonZero: true }],
  [0x11, { name: 'Session Expiry Interval', kind: 'u32', in: [CONNECT, DISCONNECT] }],
  [0x15, { name: 'Authentication Method', kind: 'string', in: [CONNECT] }],
  [0x16, { name: 'Authentication Data', kind: 'binary', in: [CONNECT] }],
  [0x17, { name: 'Request Problem Information', kind: 'byte', in: [CONNECT], values: [0, 1] }],
  [0x18, { name: 'Will Delay Interval', kind: 'u32', in: [WILL] }],
  [0x19, { name: 'Request Response Information', kind: 'byte', in: [CONNECT], values: [0, 1] }],
  [0x1c, { name: 'Server Reference', kind: 'string', in: [DISCONNECT] }],
  [0x1f, { name: 'Reason String', kind: 'string', in: [PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT] }],
  [0x21, { name: 'Receive Maximum', kind: 'u16', in: [CONNECT], nonZero: true }],
  [0x22, { name: 'Topic Alias Maximum', kind: 'u16', in: [CONNECT] }],
  [0x23, { name: 'Topic Alias', kind: 'u16', in: [PUBLISH], nonZero: true }],
  [0x26, { name: 'User Property', kind: 'pair', in: [WILL, CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT], repeatable: true }],
  [0x27, { name: 'Maximum Packet Size', kind: 'u32', in: [CONNECT], nonZero: true }],
  // Only a server sends these (in CONNACK).
  [0x12, { name: 'Assigned Client Identifier', kind: 'string', in: [] }],
  [0x13, { name: 'Server Keep Alive', kind: 'u16', in: [] }],
  [0x1a, { name: 'Response Information', kind: 'string', in: [] }],
  [0x24, { name: 'Maximum QoS', kind: 'byte', in: [] }],
  [0x25, { name: 'Retain Available', kind: 'byte', in: [] }],
  [0x28, { name: 'Wildcard Subscription Available', kind: 'byte', in: [] }],
  [0x29, { name: 'Subscription Identifier Available', kind: 'byte', in: [] }],
  [0x2a, { name: 'Shared Subscription Available', kind: 'byte', in: [] }]
])

/** Reason codes a client may send, per packet (MQTT 5 §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.14.2.1, §3.15.2.1). */
const REASON_CODES = new Map<number, ReadonlySet<number>>([
  [PUBACK, new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])],
  [PUBREC, new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])],
  [PUBREL, new Set([0x00, 0x92])],
  [PUBCOMP, new Set([0x00, 0x92])],
  [DISCONNECT, new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99])]
])

const malformed = (reason: string): Violation => ({ reasonCode: MALFORMED, reason })
const protocolError = (reason: string): Violation => ({ reasonCode: PROTOCOL_ERROR, reason })

/** MQTT 5's field types on top of 3.1.1's; each read returns undefined when the body ends early. */
class Reader extends Fields {
  u32 (): number | undefined {
    if (this.left < 4) return undefined
    const v = this.b.readUInt32BE(this.at)
    this.at += 4
    return v
  }

  /** A Variable Byte Integer; null when it is longer than four bytes. */
  varint (): number | null | undefined {
    let v = 0
    for (let i = 0, m = 1; i < 4; i++, m *= 128) {
      const byte = this.u8()
      if (byte === undefined) return undefined
      v += (byte & 0x7f) * m
      if ((byte & 0x80) === 0) return v
    }
    return null
  }
}

/**
 * Checks one property block (length, then properties) of a packet of type
 * `of`, and advances past it. The whole block is read first: a malformed
 * property anywhere in it wins over one that is only out of place.
 * `seen` receives the identifiers found.
 */
function properties (r: Reader, of: number, seen = new Set<number>(), numbers?: Map<number, number>): Violation | undefined {
  const length = r.varint()
  if (length === null) return malformed('a property length over four bytes')
  if (length === undefined || length > r.left) return malformed('a property length past the end of the packet')
  const block = new Reader(r.b, r.at + length)
  block.at = r.at
  r.at += length
  let misplaced: Violation | undefined
  while (block.left > 0) {
    const id = block.varint()
    if (id === null || id === undefined) return malformed('a property identifier cut short')
    const rule = PROPERTIES.get(id)
    if (!rule) return malformed(`unknown property 0x${id.toString(16)}`)
    let value: number | null | undefined = 0
    switch (rule.kind) {
      case 'byte': value = block.u8(); break
      case 'u16': value = block.u16(); break
      case 'u32': value = block.u32(); break
      case 'var': value = block.varint(); break
      case 'binary': if (block.bytes() === undefined) value = undefined; break
      case 'string': case 'pair': {
        for (let n = rule.kind === 'pair' ? 2 : 1; n > 0; n--) {
          const s = block.bytes()
          if (s === undefined) { value = undefined; break }
          const bad = badUtf8(s, false)
          if (bad !== undefined) return malformed(`${bad} (${rule.name})`)
          if (id === 0x08 && (s.includes(0x23) || s.includes(0x2b))) misplaced ??= protocolError('a wildcard in the Response Topic [MQTT-3.3.2-14]')
        }
        break
      }
    }
    if (value === undefined || value === null) return malformed(`${rule.name} without its value`)
    if (id === 0x0b && value === 0) return malformed('Subscription Identifier 0')
    // A whole property out of place is a protocol error, except in (UN)SUBSCRIBE, where it makes the
    // packet malformed: Mosquitto's outcomes, which MQTT 5 leaves open (§4.13).
    if (!rule.in.includes(of)) {
      misplaced ??= (of === SUBSCRIBE || of === UNSUBSCRIBE ? malformed : protocolError)(`${rule.name} is not allowed here`)
      continue
    }
    if (seen.has(id) && rule.repeatable !== true) misplaced ??= protocolError(`${rule.name} given twice`)
    seen.add(id)
    if (rule.values && !rule.values.includes(value)) return protocolError(`${rule.name} ${value}`)
    if (rule.nonZero === true && value === 0) return protocolError(`${rule.name} 0`)
    numbers?.set(id, value)
  }
  return misplaced
}

function connect (body: Buffer, state: V5State): Violation | undefined {
  const r = new Reader(body)
  r.bytes() // protocol name
  r.u8() // level
  const flags = r.u8()
  if (flags === undefined || r.u16() === undefined) return malformed('a CONNECT cut short')
  if ((flags & 0x01) !== 0) return malformed('the reserved connect flag set [MQTT-3.1.2-3]')
  const will = (flags & 0x04) !== 0
  if (!will && (flags & 0x38) !== 0) return malformed('will QoS or retain without a will [MQTT-3.1.2-11]')
  if (((flags >> 3) & 3) === 3) return malformed('will QoS 3 [MQTT-3.1.2-12]')
  const numbers = new Map<number, number>()
  const v = properties(r, CONNECT, new Set(), numbers)
  if (v) return v
  state.sessionExpiry = numbers.get(0x11) ?? 0
  // No CONNACK fits a Maximum Packet Size under 5 bytes, and none may be sent over it [MQTT-3.1.2-24]: closed unanswered.
  const maxPacket = numbers.get(0x27)
  if (maxPacket !== undefined && maxPacket < 5) return { reasonCode: 0, reason: `Maximum Packet Size ${maxPacket}, too small for any CONNACK` }
  const strings: Array<[string, Buffer | undefined]> = [['client id', r.bytes()]]
  if (will) {
    const w = properties(r, WILL)
    if (w) return w
    strings.push(['will topic', r.bytes()])
    if (r.bytes() === undefined) return malformed('a will payload cut short')
  }
  if ((flags & 0x80) !== 0) strings.push(['user name', r.bytes()])
  if ((flags & 0x40) !== 0 && r.bytes() === undefined) return malformed('a password cut short')
  for (const [what, s] of strings) {
    if (s === undefined) return malformed(`a CONNECT cut short (${what})`)
    const bad = badUtf8(s)
    if (bad !== undefined) return malformed(`${bad} (${what})`)
  }
  if (r.left > 0) return malformed('bytes after the fields the connect flags announce')
  return undefined
}

/** An acknowledgement: packet id, then optionally a reason code and properties (§3.4.2.2). */
function acknowledgement (type: number, body: Buffer): Violation | undefined {
  const r = new Reader(body)
  const id = r.u16()
  if (id === undefined) return malformed('an acknowledgement without its packet identifier')
  if (id === 0) return protocolError('packet identifier 0 [MQTT-2.2.1-3]')
  if (r.left === 0) return undefined
  const code = r.u8()!
  if (!REASON_CODES.get(type)!.has(code)) return protocolError(`reason code 0x${code.toString(16)} is not one of this packet's`)
  if (r.left === 0) return undefined
  const v = properties(r, type)
  if (v) return v
  return r.left > 0 ? malformed('bytes after the properties') : undefined
}

function subscribe (type: number, body: Buffer): Violation | undefined {
  const r = new Reader(body)
  const id = r.u16()
  if (id === undefined) return malformed('a packet identifier cut short')
  if (id === 0) return protocolError('packet identifier 0 [MQTT-2.2.1-3]')
  const v = properties(r, type)
  if (v) return v
  let filters = 0
  while (r.left > 0) {
    const filter = r.bytes()
    if (filter === undefined) return malformed('a topic filter cut short')
    if (filter.length === 0) return malformed('an empty topic filter [MQTT-4.7.3-1]')
    const bad = badUtf8(filter)
    if (bad !== undefined) return malformed(`${bad} (topic filter)`)
    const share = /^\$share\/([^/]*)(\/?)(.*)$/s.exec(filter.toString('utf8'))
    if (type === SUBSCRIBE && share && (share[1] === '' || share[2] === '' || share[3] === '')) return protocolError('a shared subscription without a share name or topic filter [MQTT-4.8.2-1]')
    if (type === SUBSCRIBE) {
      const options = r.u8()
      if (options === undefined) return malformed('subscription options missing')
      if ((options & 0xc0) !== 0) return malformed('reserved subscription option bits set [MQTT-3.8.3-5]')
      if ((options & 3) === 3) return malformed('subscription QoS 3')
      if (((options >> 4) & 3) === 3) return malformed('Retain Handling 3 [MQTT-3.8.3-4]')
      if ((options & 0x04) !== 0 && filter.toString('latin1').startsWith('$share/')) return protocolError('No Local on a shared subscription [MQTT-3.8.3-4]')
    }
    filters++
  }
  if (filters === 0) return malformed(type === SUBSCRIBE ? 'a SUBSCRIBE without topic filters [MQTT-3.8.3-2]' : 'an UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]')
  return undefined
}

/** DISCONNECT: nothing, or a reason code, then optionally properties. */
function disconnect (body: Buffer, state: V5State): Violation | undefined {
  if (body.length === 0) return undefined
  const r = new Reader(body)
  const code = r.u8()!
  if (!REASON_CODES.get(DISCONNECT)!.has(code)) return protocolError(`reason code 0x${code.toString(16)} is not one of this packet's`)
  if (r.left === 0) return undefined
  const numbers = new Map<number, number>()
  const v = properties(r, DISCONNECT, new Set(), numbers)
  if (v) return v
  if (r.left > 0) return malformed('bytes after the properties')
  const expiry = numbers.get(0x11)
  return state.sessionExpiry === 0 && expiry !== undefined && expiry !== 0 ? protocolError('a Session Expiry Interval on DISCONNECT after 0 on CONNECT [MQTT-3.14.2-2]') : undefined
}

/**
 * The violation in one MQTT 5 packet from a client, or undefined. `body` is
 * the whole packet after the fixed header, except for PUBLISH, where it is
 * at least the topic, packet id and properties (see `neededBytesV5`).
 */
export function packetViolationV5 (type: number, flags: number, length: number, body: Buffer, state: V5State): Violation | undefined {
  switch (type) {
    case CONNECT: return connect(body, state)
    case PUBLISH: {
      const qos = (flags >> 1) & 3
      if (qos === 3) return malformed('PUBLISH QoS 3 [MQTT-3.3.1-4]')
      if (qos === 0 && (flags & 0x08) !== 0) return malformed('DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]')
      const r = new Reader(body)
      const topic = r.bytes()
      if (topic === undefined) return malformed('a topic cut short')
      const bad = badUtf8(topic)
      if (bad !== undefined) return malformed(`${bad} (topic)`)
      if (topic.includes(0x23) || topic.includes(0x2b)) return malformed('a wildcard in a topic name [MQTT-3.3.2-2]')
      if (qos > 0) {
        const id = r.u16()
        if (id === undefined) return malformed('a packet identifier cut short')
        if (id === 0) return protocolError('packet identifier 0 [MQTT-2.2.1-3]')
      }
      const seen = new Set<number>()
      const v = properties(r, PUBLISH, seen)
      if (v) return v
      return topic.length === 0 && !seen.has(0x23) ? malformed('an empty topic without a Topic Alias [MQTT-3.3.2-1]') : undefined
    }
    case PUBACK: case PUBREC: case PUBCOMP:
      return flags !== 0 ? malformed('reserved flags set') : acknowledgement(type, body)
    case PUBREL:
      return flags !== 2 ? malformed('PUBREL flags other than 0010 [MQTT-3.6.1-1]') : acknowledgement(type, body)
    case SUBSCRIBE: case UNSUBSCRIBE:
      return flags !== 2 ? malformed('reserved flags other than 0010 [MQTT-3.8.1-1]') : subscribe(type, body)
    case 12: // PINGREQ
      return length !== 0 ? malformed('a PINGREQ with a body') : flags !== 0 ? malformed('reserved flags set') : undefined
    case DISCONNECT:
      return flags !== 0 ? malformed('reserved flags set [MQTT-3.14.1-1]') : disconnect(body, state)
    case AUTH: // no CONNECT can name an Authentication Method mqchat offers, so no AUTH may follow [MQTT-4.12.0-1]
      return protocolError('enhanced authentication is not offered')
    case 2: case 13: // CONNACK, PINGRESP: only a server sends them
      return protocolError('a packet only a server may send')
    case 9: case 11: // SUBACK, UNSUBACK: likewise (Mosquitto calls one with reserved flags set malformed first)
      return flags !== 0 ? malformed('reserved flags set') : protocolError('a packet only a server may send')
    default: // 0: reserved
      return protocolError('packet type 0')
  }
}

/** How many body bytes `packetViolationV5` needs, given what has arrived so far. */
export function neededBytesV5 (type: number, flags: number, length: number, head: Buffer): number {
  if (type !== PUBLISH) return length
  if (head.length < 2) return Math.min(length, 2)
  let at = 2 + head.readUInt16BE(0) + (((flags >> 1) & 3) > 0 ? 2 : 0)
  // The property length: up to four bytes, then the properties it counts.
  for (let i = 0, m = 1, n = 0; i < 4; i++, m *= 128) {
    if (head.length <= at) return Math.min(length, at + 1)
    const byte = head[at++]!
    n += (byte & 0x7f) * m
    if ((byte & 0x80) === 0) return Math.min(length, at + n)
  }
  return Math.min(length, at)
}
