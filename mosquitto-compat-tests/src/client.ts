// A raw MQTT 3.1.1 (or 5) client for the suite's own exchanges (behaviour cases,
// the helper of vector `publish` steps, the liveness check): packets built by
// mqtt-packet on a Wire, every acknowledgement under the caller's control,
// every wait bounded.
import assert from 'node:assert/strict'
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { Timeout, Wire } from './wire.js'

/** How long a reply is waited for, unless a client is given its own bound. */
export const WAIT = 3000
/** How long "nothing arrives" is watched. */
export const QUIET = 500

export interface ConnectOpts {
  clientId: string
  clean?: boolean
  keepalive?: number
  will?: { topic: string, payload: string, qos?: 0 | 1 | 2, retain?: boolean }
  username?: string
  password?: string
  /** 4 (MQTT 3.1.1, the default) or 5. */
  protocolVersion?: 4 | 5
  /** MQTT 5 CONNECT properties. */
  properties?: Record<string, unknown>
}

export class Client {
  private nextId = 1
  constructor (readonly w: Wire, readonly sessionPresent: boolean, readonly returnCode: number, readonly waitMs = WAIT, readonly version: 4 | 5 = 4, readonly connack?: Packet) {}

  static async open (t: { host: string, port: number }, o: ConnectOpts, expectCode = 0, waitMs = WAIT): Promise<Client> {
    const w = await Wire.open(t.host, t.port)
    const version = o.protocolVersion ?? 4
    w.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: version,
      ...(o.properties ? { properties: o.properties } : {}),
      clientId: o.clientId,
      clean: o.clean ?? true,
      keepalive: o.keepalive ?? 60,
      ...(o.will ? { will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos ?? 0, retain: o.will.retain ?? false } } : {}),
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {})
    }, version)
    let ack: Packet
    try {
      ack = await w.packet(waitMs, version)
    } catch (err) {
      w.destroy()
      throw new Error(`CONNECT ${o.clientId || '(empty id)'}: ${(err as Error).message}`)
    }
    if (ack.cmd !== 'connack') { w.destroy(); throw new Error(`expected CONNACK, got ${ack.cmd}`) }
    const code = version === 5 ? (ack as { reasonCode?: number }).reasonCode ?? 0 : ack.returnCode
    assert.equal(code, expectCode, `CONNACK ${version === 5 ? 'reason' : 'return'} code for ${o.clientId || '(empty id)'}`)
    return new Client(w, ack.sessionPresent, code ?? 0, waitMs, version, ack)
  }

  /** Sends a packet encoded at this connection's protocol level. */
  private send (packet: Record<string, unknown>): void { this.w.send(packet, this.version) }

  id (): number { const id = this.nextId; this.nextId = this.nextId % 65535 + 1; return id }

  async subscribe (subs: Array<[string, 0 | 1 | 2]>): Promise<number[]> {
    const messageId = this.id()
    this.send({ cmd: 'subscribe', messageId, subscriptions: subs.map(([topic, qos]) => ({ topic, qos })) })
    const p = await this.expect('suback')
    assert.equal(p.messageId, messageId, 'SUBACK packet id')
    return (p as unknown as { granted: number[] }).granted
  }

  /** MQTT 5: resolves with the UNSUBACK's reason codes (3.1.1 has none: an empty list). */
  async unsubscribe (topics: string[]): Promise<number[]> {
    const messageId = this.id()
    this.send({ cmd: 'unsubscribe', messageId, unsubscriptions: topics })
    const p = await this.expect('unsuback')
    assert.equal(p.messageId, messageId, 'UNSUBACK packet id')
    return (p as unknown as { granted?: number[] }).granted ?? []
  }

  /** Publishes and completes the QoS flow as a well-behaved client. */
  async publish (topic: string, payload: string | Buffer, qos: 0 | 1 | 2 = 0, retain = false, properties?: Record<string, unknown>): Promise<void> {
    const messageId = qos > 0 ? this.id() : undefined
    this.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false, messageId, ...(properties ? { properties } : {}) })
    if (qos === 1) assert.equal((await this.expect('puback')).messageId, messageId)
    if (qos === 2) {
      assert.equal((await this.expect('pubrec')).messageId, messageId)
      this.send({ cmd: 'pubrel', messageId })
      assert.equal((await this.expect('pubcomp')).messageId, messageId)
    }
  }

  async expect (cmd: string, timeoutMs = this.waitMs): Promise<Packet> {
    const p = await this.w.packet(timeoutMs, this.version)
    assert.equal(p.cmd, cmd, `expected ${cmd}, got ${JSON.stringify({ ...p, payload: undefined })}`)
    return p
  }

  /** The next PUBLISH, acknowledged as a well-behaved client unless told not to. */
  async message (timeoutMs = this.waitMs, ack = true): Promise<IPublishPacket> {
    const p = await this.expect('publish', timeoutMs) as IPublishPacket
    if (ack) this.ack(p)
    return p
  }

  ack (p: IPublishPacket): void {
    if (p.qos === 1) this.send({ cmd: 'puback', messageId: p.messageId })
    if (p.qos === 2) this.send({ cmd: 'pubrec', messageId: p.messageId })
  }

  /** Collects PUBLISHes (acknowledging QoS 1; QoS 2 flows completed) until `quietMs` pass without one. */
  async drain (quietMs = QUIET): Promise<IPublishPacket[]> {
    const out: IPublishPacket[] = []
    for (;;) {
      let p: Packet
      try { p = await this.w.packet(quietMs, this.version) } catch (err) { if (err instanceof Timeout) return out; throw err }
      if (p.cmd === 'publish') { out.push(p); this.ack(p) } else if (p.cmd === 'pubrel') this.send({ cmd: 'pubcomp', messageId: p.messageId })
    }
  }

  async nothing (quietMs = QUIET): Promise<void> {
    const got = await this.drain(quietMs)
    assert.deepEqual(got.map((p) => p.topic), [], 'expected no messages')
  }

  /** PINGREQ → PINGRESP: the connection is still usable. */
  async ping (): Promise<void> {
    this.send({ cmd: 'pingreq' })
    await this.expect('pingresp')
  }

  async disconnect (): Promise<void> {
    this.send({ cmd: 'disconnect' })
    await this.w.end()
  }
}
