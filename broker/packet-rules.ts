// MQTT 3.1/3.1.1 rules for one inbound packet that mqtt-packet and aedes do
// not enforce, each a protocol violation after which the server must close
// the connection [MQTT-4.8.0-1]. Pure functions over a packet's bytes; the
// framing is in packet-guard.ts. Found by mosquitto-compat-tests/.

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * A UTF-8 string field as MQTT 3.1.1 §1.5.3 wants it: well-formed (no
 * encoded surrogates, [MQTT-1.5.3-1]) and without U+0000 ([MQTT-1.5.3-2]).
 * Control characters and noncharacters are refused as well: the
 * specification lets the receiver close on them, and Mosquitto does.
 * With `controls` false only the two musts are checked (what MQTT 5 §1.5.4
 * asks of every string, MQTT 5 property values among them).
 */
export function badUtf8 (b: Buffer, controls = true): string | undefined {
  let s: string
  try { s = utf8.decode(b) } catch { return 'ill-formed UTF-8' }
  if (!controls) return s.includes('\u0000') ? 'U+0000 in a string' : undefined
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (c === 0) return 'U+0000 in a string'
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return 'a control character in a string'
    if ((c & 0xfffe) === 0xfffe || (c >= 0xfdd0 && c <= 0xfdef)) return 'a noncharacter in a string'
  }
  return undefined
}

/** Reads length-prefixed fields from a packet body (up to `end`); `undefined` when the body ends early. */
export class Fields {
  at = 0
  constructor (readonly b: Buffer, readonly end = b.length) {}
  get left (): number { return this.end - this.at }
  u8 (): number | undefined { return this.left >= 1 ? this.b[this.at++] : undefined }
  u16 (): number | undefined {
    if (this.left < 2) return undefined
    const v = this.b.readUInt16BE(this.at)
    this.at += 2
    return v
  }

  bytes (): Buffer | undefined {
    const n = this.u16()
    if (n === undefined || this.left < n) return undefined
    const v = this.b.subarray(this.at, this.at + n)
    this.at += n
    return v
  }
}

export const CONNECT = 1
export const PUBLISH = 3

/** Protocol level of a CONNECT body, if it names MQTT or MQIsdp. */
export function connectLevel (body: Buffer): number | undefined {
  const f = new Fields(body)
  const name = f.bytes()
  const level = f.u8()
  if (name === undefined || level === undefined) return undefined
  const n = name.toString('latin1')
  return n === 'MQTT' || n === 'MQIsdp' ? level : undefined
}

function connectViolation (body: Buffer): string | undefined {
  const f = new Fields(body)
  f.bytes() // protocol name
  f.u8() // level
  const flags = f.u8()
  if (flags === undefined || f.u16() === undefined) return undefined // malformed: mqtt-packet refuses it
  const will = (flags & 0x04) !== 0
  if (((flags >> 3) & 3) === 3) return 'will QoS 3 [MQTT-3.1.2-14]'
  if ((flags & 0x40) !== 0 && (flags & 0x80) === 0) return 'a password without a user name [MQTT-3.1.2-22]'
  const strings: Array<[string, Buffer | undefined]> = [['client id', f.bytes()]]
  if (will) {
    strings.push(['will topic', f.bytes()])
    if (f.bytes() === undefined) return undefined
  }
  if ((flags & 0x80) !== 0) strings.push(['user name', f.bytes()])
  if ((flags & 0x40) !== 0 && f.bytes() === undefined) return undefined
  for (const [what, v] of strings) {
    if (v === undefined) return undefined
    const bad = badUtf8(v)
    if (bad !== undefined) return `${bad} (${what}) [MQTT-1.5.3]`
  }
  if (f.left > 0) return 'bytes after the fields the connect flags announce [MQTT-3.1.2-18]'
  return undefined
}

/**
 * The violation in one packet from a client, or undefined. `body` is the
 * whole packet after the fixed header, except for PUBLISH, where it is at
 * least the topic and packet id (see `neededBytes`).
 */
export function packetViolation (type: number, flags: number, length: number, body: Buffer): string | undefined {
  switch (type) {
    case CONNECT: return connectViolation(body)
    case PUBLISH: {
      const qos = (flags >> 1) & 3
      if (qos === 0 && (flags & 0x08) !== 0) return 'DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]'
      const f = new Fields(body)
      const topic = f.bytes()
      if (topic === undefined) return undefined
      const bad = badUtf8(topic)
      if (bad !== undefined) return `${bad} (topic) [MQTT-1.5.3]`
      if (qos > 0 && f.u16() === 0) return 'packet identifier 0 [MQTT-2.3.1-1]'
      return undefined
    }
    case 4: case 5: case 6: case 7: // PUBACK, PUBREC, PUBREL, PUBCOMP
      if (length !== 2) return 'an acknowledgement whose remaining length is not 2'
      return body.readUInt16BE(0) === 0 ? 'packet identifier 0 [MQTT-2.3.1-1]' : undefined
    case 8: case 10: { // SUBSCRIBE, UNSUBSCRIBE
      const f = new Fields(body)
      if (f.u16() === 0) return 'packet identifier 0 [MQTT-2.3.1-1]'
      let filters = 0
      while (f.left > 0) {
        const filter = f.bytes()
        if (filter === undefined) return undefined
        const bad = badUtf8(filter)
        if (bad !== undefined) return `${bad} (topic filter) [MQTT-1.5.3]`
        if (type === 8 && f.u8() === undefined) return undefined
        filters++
      }
      if (filters === 0) return type === 8 ? 'a SUBSCRIBE without topic filters [MQTT-3.8.3-3]' : 'an UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]'
      return undefined
    }
    case 12: case 14: // PINGREQ, DISCONNECT
      return length !== 0 ? 'a PINGREQ or DISCONNECT with a non-zero remaining length' : undefined
    default:
      return undefined
  }
}

/** How many body bytes `packetViolation` needs, given what has arrived so far. */
export function neededBytes (type: number, flags: number, length: number, head: Buffer): number {
  if (type !== PUBLISH) return length
  if (head.length < 2) return Math.min(length, 2)
  return Math.min(length, 2 + head.readUInt16BE(0) + (((flags >> 1) & 3) > 0 ? 2 : 0))
}
