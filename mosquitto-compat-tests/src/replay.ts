// Replays one vector case on one fresh connection. Byte-exact, except where
// ../shared/mqtt-vectors/README.md says exactness is too strict: the
// properties of MQTT 5 CONNACKs (the default CONNECT's and scripted ones
// alike: they are the broker's own limits), and the packet identifiers the
// broker picks for its own PUBLISH (the case's later replies are rewritten to
// the id the broker chose).
import mqttPacket, { type Packet } from 'mqtt-packet'
import { Client } from './client.js'
import { hex, Wire } from './wire.js'
import type { VectorCase } from './vectors.js'

export interface Target { name: string, host: string, port: number }

export interface Timing {
  /** How long a `recv` step waits for its bytes. */
  recvMs: number
  /** How long the broker gets to close the connection when a case expects it. */
  closeMs: number
}

// Brokers on loopback answer in milliseconds; a second is far beyond that on
// a slow machine, and it bounds what each failing case costs.
export const DEFAULT_TIMING: Timing = { recvMs: 1000, closeMs: 1000 }

export interface CaseResult { id: string, protocol: string, pass: boolean, detail?: string, ms: number }

function remainingLengthEnd (b: Buffer): number {
  let i = 1
  while (i < b.length && (b[i]! & 0x80) !== 0) i++
  return i + 1
}

/** Offset of the packet identifier in a PUBLISH with QoS > 0, or -1. */
function publishIdOffset (b: Buffer): number {
  if (b.length < 2 || (b[0]! & 0xf0) !== 0x30 || ((b[0]! >> 1) & 3) === 0) return -1
  const start = remainingLengthEnd(b)
  if (start + 2 > b.length) return -1
  const topicLen = b.readUInt16BE(start)
  const off = start + 2 + topicLen
  return off + 2 <= b.length ? off : -1
}

/** For PUBACK/PUBREC/PUBREL/PUBCOMP: offset of the packet identifier, or -1. */
function ackIdOffset (b: Buffer): number {
  const type = b[0]! >> 4
  if (type < 4 || type > 7 || b.length < 4) return -1
  return remainingLengthEnd(b)
}

export function defaultConnect (c: VectorCase): Buffer {
  const clientId = `${c.group.trim()} ${c.name.trim()}`
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: c.ver === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: c.ver,
    clientId,
    clean: true,
    keepalive: 60
  } as unknown as Packet, { protocolVersion: c.ver })
}

async function expectConnack (w: Wire, ver: number, recvMs: number): Promise<void> {
  const raw = await w.readRaw(recvMs)
  const start = remainingLengthEnd(raw)
  const ok = raw[0] === 0x20 && raw[start] === 0 && raw[start + 1] === 0 && (ver === 5 || raw.length === 4)
  if (!ok) throw new Error(`default CONNECT: expected a successful CONNACK, got ${raw.toString('hex')}`)
}

let helperSeq = 0

/** The helper client of a `publish` step: connects, publishes, completes its QoS flow, disconnects. */
export async function helperPublish (t: Target, topic: string, qos: 0 | 1 | 2, payload: string, timing: Timing = DEFAULT_TIMING): Promise<void> {
  const c = await Client.open(t, { clientId: `compat-helper-${process.pid}-${++helperSeq}` }, 0, timing.recvMs)
  try {
    await c.publish(topic, payload, qos)
  } finally {
    await c.disconnect()
  }
}

export async function replay (c: VectorCase, t: Target, timing: Timing = DEFAULT_TIMING): Promise<CaseResult> {
  const started = Date.now()
  const done = (pass: boolean, detail?: string): CaseResult => ({ id: c.id, protocol: c.protocol, pass, detail, ms: Date.now() - started })
  let w: Wire
  try {
    w = await Wire.open(t.host, t.port)
  } catch (err) {
    return done(false, `cannot connect: ${(err as Error).message}`)
  }
  // Packet ids the vector expects for the broker's PUBLISH -> the ones the broker chose.
  const ids = new Map<number, number>()
  const remap = (b: Buffer): Buffer => {
    const off = ackIdOffset(b)
    if (off < 0 || off + 2 > b.length) return b
    const to = ids.get(b.readUInt16BE(off))
    if (to === undefined) return b
    const copy = Buffer.from(b)
    copy.writeUInt16BE(to, off)
    return copy
  }
  let step = 0
  try {
    if (c.connect) {
      w.write(defaultConnect(c))
      await expectConnack(w, c.ver, timing.recvMs)
    }
    for (const s of c.msgs) {
      step++
      if (s.type === 'send') {
        w.write(remap(hex(s.payload)))
      } else if (s.type === 'recv') {
        const want = remap(hex(s.payload))
        if (want[0] === 0x20 && want.length > 4) {
          // An MQTT 5 CONNACK: its properties are the broker's own (limits it
          // chose), so only the type, acknowledge flags and reason code must match.
          const got = await w.readRaw(timing.recvMs)
          const at = remainingLengthEnd(got)
          if (got[0] !== 0x20 || got[at] !== want[2] || got[at + 1] !== want[3]) return done(false, `step ${step} (recv CONNACK): expected flags and reason ${want.subarray(2, 4).toString('hex')}, got ${got.toString('hex')}`)
          continue
        }
        const got = await w.read(want.length, timing.recvMs)
        const off = publishIdOffset(want)
        if (off >= 0 && publishIdOffset(got) === off) {
          const a = Buffer.from(want); const b = Buffer.from(got)
          a.writeUInt16BE(0, off); b.writeUInt16BE(0, off)
          if (a.equals(b)) { ids.set(want.readUInt16BE(off), got.readUInt16BE(off)); continue }
        }
        if (!got.equals(want)) return done(false, `step ${step} (recv${s.comment ? `, ${s.comment}` : ''}): expected ${want.toString('hex')}, got ${got.toString('hex')}`)
      } else {
        await helperPublish(t, s.topic, s.qos, s.payload, timing)
      }
    }
  } catch (err) {
    w.destroy()
    return done(false, `step ${step}: ${(err as Error).message}`)
  }
  if (c.expectDisconnect) {
    const closed = await w.waitClose(timing.closeMs)
    w.destroy()
    return closed ? done(true) : done(false, `the broker kept the connection open (expected it to close within ${timing.closeMs} ms)`)
  }
  // The connection must still be usable: PINGREQ -> PINGRESP, nothing else first.
  try {
    w.write(Buffer.from([0xc0, 0x00]))
    const pong = await w.read(2, timing.recvMs)
    if (pong[0] !== 0xd0 || pong[1] !== 0) return done(false, `expected the connection to stay open and answer PINGREQ, got ${pong.toString('hex')}`)
    return done(true)
  } catch (err) {
    return done(false, `expected the connection to stay open: ${(err as Error).message}`)
  } finally {
    w.destroy()
  }
}

/** The broker still accepts a connection and answers PINGREQ. */
export async function alive (t: Target, creds?: { clientId: string, username: string, password: string }, timing: Timing = DEFAULT_TIMING): Promise<boolean> {
  try {
    const c = await Client.open(t, { clientId: creds?.clientId ?? `compat-alive-${process.pid}`, ...(creds ? { username: creds.username, password: creds.password } : {}) }, 0, timing.recvMs)
    try { await c.ping() } finally { c.w.destroy() }
    return true
  } catch { return false }
}
