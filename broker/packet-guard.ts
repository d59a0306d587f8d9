// Inbound packet guard. It watches the bytes aedes reads from a connection:
// the 'data' event fires for every chunk aedes read()s, before aedes parses
// it, without changing how aedes consumes the stream. It frames packets
// itself and:
// - destroys the connection as soon as a fixed header announces a packet over
//   the size limit. aedes 1.2 has no such option, and mqtt-packet buffers a
//   whole packet before parsing it, so a client could otherwise make the
//   broker hold a 256 MB packet;
// - answers a first CONNECT naming a protocol level other than 3, 4 or 5 with
//   CONNACK 0x01 [MQTT-3.1.2-2]. mqtt-packet refuses to parse such levels, so
//   aedes would only close;
// - applies the per-packet rules of packet-rules.ts (malformed or forbidden
//   fields that mqtt-packet and aedes let through) and destroys the
//   connection on a violation [MQTT-4.8.0-1].
// Only what a rule needs is copied: whole packets for the small control
// packets, the topic and packet id of a PUBLISH, never its payload.
import type { Duplex } from 'node:stream'
import { connectLevel, CONNECT, neededBytes, packetViolation } from './packet-rules.js'

const KNOWN_LEVELS = new Set([3, 4, 5])
const CONNACK_UNACCEPTABLE_VERSION = Buffer.from([0x20, 0x02, 0x00, 0x01])
/** The bytes of a packet before any arrived (shared: this runs for every packet). */
const NOTHING = Buffer.alloc(0)

export interface GuardOptions {
  maxBytes: number
  onOversize: (size: number) => void
  /** Called when a packet breaks a rule of packet-rules.ts; without it the rules are off. */
  onViolation?: (reason: string) => void
  /** Called when the first CONNECT names an unknown protocol level; without it that check is off. */
  onUnknownLevel?: (level: number) => void
}

export function guardPackets (conn: Duplex, o: GuardOptions): void {
  let state: 'type' | 'length' | 'body' = 'type'
  let type = 0
  let flags = 0
  let length = 0
  let multiplier = 1
  let headerBytes = 0
  let remaining = 0
  let first = true
  // MQTT 5 connections get no rules here: aedes refuses them at CONNECT.
  let rules = o.onViolation !== undefined
  let dead = false
  let collecting = false
  let parts: Buffer[] = []
  let have = 0
  let need = 0

  /** Checks the collected bytes of the current packet; false when the connection was closed. */
  const check = (body: Buffer): boolean => {
    collecting = false
    parts = []
    if (first) {
      first = false
      if (type === CONNECT) {
        const level = connectLevel(body)
        if (level !== undefined && !KNOWN_LEVELS.has(level) && o.onUnknownLevel) {
          o.onUnknownLevel(level)
          conn.end(CONNACK_UNACCEPTABLE_VERSION)
          return false
        }
        if (level === 5) rules = false
      }
    }
    if (!rules) return true
    const violation = packetViolation(type, flags, length, body)
    if (violation === undefined) return true
    o.onViolation?.(violation)
    conn.destroy()
    return false
  }

  /** Whether the current packet's bytes are wanted; starts collecting them. */
  const startPacket = (): boolean => {
    if (!(rules || (first && o.onUnknownLevel !== undefined))) return true
    collecting = true
    parts = []
    have = 0
    need = neededBytes(type, flags, length, NOTHING)
    return need > 0 || check(NOTHING)
  }

  conn.on('data', (chunk: Buffer) => {
    let i = 0
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
            const more = neededBytes(type, flags, length, head)
            if (more > have) need = more
            else if (!check(head)) { dead = true; return }
          }
        } else {
          const take = Math.min(remaining, chunk.length - i)
          remaining -= take
          i += take
        }
        if (remaining === 0) state = 'type'
        continue
      }
      const byte = chunk[i++]!
      if (state === 'type') {
        state = 'length'
        type = byte >> 4
        flags = byte & 0x0f
        length = 0
        multiplier = 1
        headerBytes = 1
        continue
      }
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      headerBytes++
      if ((byte & 0x80) !== 0 && headerBytes < 5) continue
      if (length + headerBytes > o.maxBytes) {
        o.onOversize(length + headerBytes)
        conn.destroy()
        dead = true
        return
      }
      remaining = length
      state = remaining === 0 ? 'type' : 'body'
      if (!startPacket()) { dead = true; return }
    }
  })
}

/** The size limit alone (the unit tests of the framing use it). */
export function guardPacketSize (conn: Duplex, maxBytes: number, onViolation: (size: number) => void): void {
  guardPackets(conn, { maxBytes, onOversize: onViolation })
}
