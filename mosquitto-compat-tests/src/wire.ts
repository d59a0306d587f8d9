// A raw MQTT connection for the conformance suite: bytes in, bytes out, every
// read bounded by a timeout. Vectors read exact byte counts; behaviour cases
// read whole packets, decoded with mqtt-packet. Nothing here interprets the
// protocol beyond framing, so the broker under test gets exactly what a case
// sends.
import { connect as tcpConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

export class Closed extends Error {}
export class Timeout extends Error {}

export class Wire {
  private buf = Buffer.alloc(0)
  private waiter: (() => void) | undefined
  closed = false
  private readonly closedP: Promise<void>

  private constructor (private readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.wake() })
    this.closedP = new Promise((resolve) => {
      socket.once('close', () => { this.closed = true; this.wake(); resolve() })
    })
    socket.on('error', () => { /* surfaced as close */ })
  }

  static open (host: string, port: number, timeoutMs = 5000): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = tcpConnect({ host, port })
      const timer = setTimeout(() => { s.destroy(); reject(new Timeout(`connect to ${host}:${port} timed out`)) }, timeoutMs)
      s.once('connect', () => { clearTimeout(timer); resolve(new Wire(s)) })
      s.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
  }

  private wake (): void { const w = this.waiter; this.waiter = undefined; w?.() }

  write (bytes: Buffer): void {
    if (!this.closed && this.socket.writable) this.socket.write(bytes)
  }

  /** Writes a packet encoded by mqtt-packet. */
  send (packet: Record<string, unknown>, protocolVersion = 4): void {
    this.write(mqttPacket.generate(packet as unknown as Packet, { protocolVersion }))
  }

  private async until (ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!ready()) {
      if (this.closed) throw new Closed(`connection closed while waiting for ${what}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Timeout(`no ${what} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { this.waiter = undefined; resolve() }, left)
        this.waiter = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  /** Exactly n bytes, or Closed/Timeout (with how many arrived). */
  async read (n: number, timeoutMs: number): Promise<Buffer> {
    try {
      await this.until(() => this.buf.length >= n, timeoutMs, `${n} bytes`)
    } catch (err) {
      const got = this.buf.length
      throw Object.assign(err as Error, { message: `${(err as Error).message} (${got} of ${n} bytes arrived: ${this.buf.subarray(0, n).toString('hex')})` })
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }

  /** One whole packet: its raw bytes. */
  async readRaw (timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    const left = (): number => Math.max(0, deadline - Date.now())
    await this.until(() => this.buf.length >= 2, timeoutMs, 'a packet')
    // Fixed header: type byte + 1–4 length bytes (MQTT variable byte integer).
    let len = 0
    let mul = 1
    let i = 1
    for (;;) {
      await this.until(() => this.buf.length > i, left(), 'a packet header')
      const b = this.buf[i]!
      len += (b & 0x7f) * mul
      mul *= 128
      i++
      if ((b & 0x80) === 0) break
      if (i > 4) throw new Error('malformed remaining length from the broker')
    }
    return this.read(i + len, left())
  }

  /** One whole packet, decoded. */
  async packet (timeoutMs: number, protocolVersion = 4): Promise<Packet> {
    const raw = await this.readRaw(timeoutMs)
    const parser = mqttPacket.parser({ protocolVersion })
    let decoded: Packet | undefined
    let error: Error | undefined
    parser.on('packet', (p: Packet) => { decoded = p })
    parser.on('error', (e: Error) => { error = e })
    parser.parse(raw)
    if (decoded === undefined) throw new Error(`undecodable packet from the broker: ${raw.toString('hex')} (${error?.message ?? 'incomplete'})`)
    return decoded
  }

  /** True if the broker closes the connection within timeoutMs. */
  async waitClose (timeoutMs: number): Promise<boolean> {
    if (this.closed) return true
    let timer: NodeJS.Timeout | undefined
    const r = await Promise.race([this.closedP.then(() => true), new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })])
    clearTimeout(timer)
    return r
  }

  /** Bytes received and not read yet. */
  pending (): Buffer { return this.buf }

  /** Ends our side without a DISCONNECT packet: an abnormal close for the broker. */
  destroy (): void { this.socket.destroy() }

  end (): Promise<void> {
    this.socket.end()
    return this.waitClose(2000).then(() => { if (!this.closed) this.socket.destroy() })
  }
}

export function hex (s: string): Buffer {
  const clean = s.replace(/\s+/g, '')
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex in vector: ${s}`)
  return Buffer.from(clean, 'hex')
}
