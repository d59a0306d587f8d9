// The load generator's MQTT client: mqtt-packet directly on a socket, with
// precomputed packets, so the generator costs little next to the broker. It
// acknowledges QoS 1 deliveries itself and hands each PUBLISH to a callback
// without decoding its payload further. Sockets can bind to any 127.0.0.x
// source address, so connection counts are not capped by one address's
// ephemeral ports.
import { connect as tcpConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet, type IPublishPacket } from 'mqtt-packet'

export interface ClientOptions {
  host: string
  port: number
  clientId: string
  username?: string
  password?: string
  clean?: boolean
  keepalive?: number
  localAddress?: string
  /** 4 (MQTT 3.1.1, the default) or 5: the protocol every packet of this client is encoded in. */
  protocolVersion?: 4 | 5
}

/** How long a 1:1 run waits for its last messages to arrive before it reports. */
export const DRAIN_MS = 120_000

export class BenchClient {
  socket!: Socket
  private parser!: ReturnType<typeof mqttPacket.parser>
  private waiting = new Map<string, (p: Packet) => void>()
  onPublish: (p: IPublishPacket) => void = () => {}
  onPuback: (id: number) => void = () => {}
  onClose: () => void = () => {}
  closed = false
  private nextId = 1

  private readonly version: 4 | 5
  constructor (readonly o: ClientOptions) { this.version = o.protocolVersion ?? 4 }

  /** A fresh parser per connection: nothing half-read from an earlier socket. */
  private newParser (): void {
    this.parser = mqttPacket.parser({ protocolVersion: this.version })
    this.parser.on('packet', (p: Packet) => {
      if (p.cmd === 'publish') {
        if (p.qos === 1) this.socket.write(pubackFor(p.messageId!))
        this.onPublish(p)
      } else if (p.cmd === 'puback') {
        this.onPuback(p.messageId!)
      } else {
        const key = p.cmd === 'suback' ? `suback:${p.messageId!}` : p.cmd
        const w = this.waiting.get(key)
        if (w) { this.waiting.delete(key); w(p) }
      }
    })
  }

  private expect (key: string, timeoutMs: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(key); reject(new Error(`${this.o.clientId}: no ${key} within ${timeoutMs} ms`)) }, timeoutMs)
      this.waiting.set(key, (p) => { clearTimeout(timer); resolve(p) })
    })
  }

  /** Connects; resolves with CONNACK's session-present flag, rejects on a refusal. */
  async connect (timeoutMs = 30_000): Promise<boolean> {
    this.newParser()
    this.closed = false
    const socket = this.socket = tcpConnect({ host: this.o.host, port: this.o.port, localAddress: this.o.localAddress })
    socket.setNoDelay(true)
    socket.on('data', (d: Buffer) => this.parser.parse(d))
    socket.on('error', () => {})
    let closedEarly!: (err: Error) => void
    const early = new Promise<never>((_resolve, reject) => { closedEarly = reject })
    early.catch(() => {})
    socket.on('close', () => {
      this.closed = true
      closedEarly(new Error(`${this.o.clientId}: connection closed before CONNACK`))
      this.onClose()
    })
    const ack = Promise.race([this.expect('connack', timeoutMs), early])
    ack.catch(() => { this.waiting.delete('connack') })
    this.socket.write(mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: this.version,
      clientId: this.o.clientId,
      clean: this.o.clean ?? true,
      keepalive: this.o.keepalive ?? 300,
      ...(this.o.username !== undefined ? { username: this.o.username, password: Buffer.from(this.o.password ?? '') } : {})
    } as Packet, { protocolVersion: this.version }))
    const p = await ack
    const code = this.version === 5 ? (p as { reasonCode?: number }).reasonCode : (p as { returnCode?: number }).returnCode
    if (p.cmd !== 'connack' || (code ?? 0) !== 0) throw new Error(`${this.o.clientId}: CONNACK ${String(code)}`)
    return p.sessionPresent
  }

  /**
   * Connects as a device in a reconnect storm does: a connect that gets no
   * CONNACK within `timeoutMs` (a listen queue that overflowed drops SYNs and
   * ACKs, and the kernel's retries back off for minutes) is given up and
   * tried again on a new connection. Resolves with the number of retries.
   */
  connectRetrying (attempts: number, timeoutMs: number): Promise<number> {
    return this.retrying(attempts, () => this.connect(timeoutMs))
  }

  /**
   * Connects and subscribes as a device would when the server is slow to
   * answer: a connect or subscribe with no answer within `timeoutMs` is
   * given up and tried again on a new connection. Resolves with the number
   * of retries (reported, so a slow server is visible, not hidden).
   */
  join (topic: string, attempts = 3, timeoutMs = 30_000): Promise<number> {
    return this.retrying(attempts, async () => {
      await this.connect(timeoutMs)
      await this.subscribe(topic, 1, timeoutMs)
    })
  }

  /** Runs `attempt` until it succeeds, each failure on a new connection after a growing pause; a refused CONNACK is final. */
  private async retrying (attempts: number, attempt: () => Promise<unknown>): Promise<number> {
    for (let retry = 0; ; retry++) {
      try {
        await attempt()
        return retry
      } catch (err) {
        this.socket.destroy()
        if (retry + 1 >= attempts || /CONNACK \d/.test((err as Error).message)) throw err
        await new Promise((r) => setTimeout(r, 250 * (retry + 1)))
      }
    }
  }

  async subscribe (topic: string, qos: 0 | 1 = 1, timeoutMs = 30_000): Promise<number> {
    const messageId = this.id()
    const ack = this.expect(`suback:${messageId}`, timeoutMs)
    this.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] } as Packet, { protocolVersion: this.version }))
    return ((await ack) as unknown as { granted: number[] }).granted[0]!
  }

  id (): number { const id = this.nextId; this.nextId = this.nextId % 65535 + 1; return id }

  /** Writes prepared bytes; false when the socket's buffer is full (the caller may wait for 'drain'). */
  write (bytes: Buffer): boolean { return this.socket.write(bytes) }

  end (): void { if (!this.closed) { this.socket.end(mqttPacket.generate({ cmd: 'disconnect' } as Packet, { protocolVersion: this.version })) } }
  destroy (): void { this.socket.destroy() }
}

const pubacks = new Map<number, Buffer>()
function pubackFor (id: number): Buffer {
  let b = pubacks.get(id)
  if (!b) { b = Buffer.from([0x40, 0x02, id >> 8, id & 0xff]); pubacks.set(id, b) }
  return b
}

/**
 * A QoS 1 PUBLISH whose payload is a chat envelope with fixed-width slots, so
 * each message is a copy with its id, packet id and send time written in:
 * {"id":"<12 digits>","type":"text","body":"<16 digits>|<padding>"}
 */
export class EnvelopeTemplate {
  readonly bytes: Buffer
  private readonly idAt: number
  private readonly pidAt: number
  private readonly timeAt: number

  /** `protocolVersion` 5 adds the PUBLISH's (empty) property length before the payload. */
  constructor (topic: string, payloadBytes: number, protocolVersion: 4 | 5 = 4) {
    const head = '{"id":"000000000000","type":"text","body":"0000000000000000|'
    const tail = '"}'
    const pad = Math.max(0, payloadBytes - head.length - tail.length)
    const payload = Buffer.from(head + 'x'.repeat(pad) + tail)
    this.bytes = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, messageId: 1, retain: false, dup: false } as Packet, { protocolVersion })
    const payloadAt = this.bytes.length - payload.length
    this.pidAt = payloadAt - 2 - (protocolVersion === 5 ? 1 : 0)
    this.idAt = payloadAt + 7
    this.timeAt = payloadAt + head.indexOf('"body":"') + 8
  }

  /** A packet for message number n, packet id pid, sent at time t (µs, up to 16 digits). */
  make (n: number, pid: number, t: number): Buffer {
    const b = Buffer.from(this.bytes)
    b.writeUInt16BE(pid, this.pidAt)
    b.write(String(n).padStart(12, '0'), this.idAt, 'latin1')
    b.write(String(Math.floor(t)).padStart(16, '0'), this.timeAt, 'latin1')
    return b
  }
}

const BODY = Buffer.from('"body":"')
/** The send time (µs) written by EnvelopeTemplate, from an envelope or an inbox event carrying it; -1 if absent. */
export function sentAt (payload: Buffer): number {
  const at = payload.indexOf(BODY)
  if (at < 0) return -1
  const s = payload.toString('latin1', at + BODY.length, at + BODY.length + 16)
  return /^\d{16}$/.test(s) ? Number(s) : -1
}

/** Microseconds on a clock shared by every process of the machine. */
export function nowUs (): number {
  return (performance.timeOrigin + performance.now()) * 1000
}
