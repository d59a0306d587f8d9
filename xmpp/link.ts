// An XMPP resource is a device: the gateway signs it in to this node's MQTT
// broker over an in-process stream, as a persistent session of that device
// (vouched for by the stream itself, plugins/in-process.ts, since a SCRAM
// login never shows the server the token). So an XMPP device goes through the same
// authentication, chat ACL, rate limits, bridge and offline queue as an MQTT
// one, and its inbox is the same topic; only the encoding differs.
//
// The link speaks MQTT 3.1.1 with mqtt-packet directly rather than through
// mqtt.js: mqtt.js acknowledges one inbound message at a time (the next
// is read only after the previous PUBACK), while the gateway must hold a
// message's PUBACK until the XMPP client confirms it (stream management)
// and keep many such messages in flight at once.
import { Duplex } from 'node:stream'
import mqttPacket, { type Packet, type IPublishPacket } from 'mqtt-packet'
import type { Aedes } from 'aedes'
import { vouchFor } from '../plugins/in-process.js'

/** Two ends of an in-memory byte stream: what one end writes, the other reads. */
function streamPair (): [Duplex, Duplex] {
  let a!: Duplex
  let b!: Duplex
  const end = (peer: () => Duplex): Duplex => new Duplex({
    read () {},
    write (chunk, _enc, cb) { peer().push(chunk); cb() },
    final (cb) { peer().push(null); cb() },
    destroy (err, cb) { peer().destroy(); cb(err) }
  })
  a = end(() => b)
  b = end(() => a)
  return [a, b]
}

/** A message from the broker. `ack` sends its PUBACK (QoS 1); call it once the message is safe with the client. */
export interface Delivery { topic: string, payload: Buffer, ack (): void }

export interface DeviceLink {
  /** Publishes; QoS 1 resolves on PUBACK, QoS 0 once written. */
  publish (topic: string, payload: string, qos?: 0 | 1): Promise<void>
  /** Subscribes at QoS 0; resolves with the granted codes (0x80 = refused). */
  subscribe (topics: string[]): Promise<number[]>
  unsubscribe (topics: string[]): Promise<void>
  /** DISCONNECT. Messages not acknowledged stay queued in the device's session for its next connection. */
  close (): Promise<void>
}

const CONNACK_ERRORS: Record<number, string> = { 1: 'unacceptable protocol version', 2: 'identifier rejected', 3: 'server unavailable', 4: 'bad user name or password', 5: 'not authorized' }

/**
 * Connects a device to the broker (clean session false, its inbox subscribed
 * at QoS 1 and its live topic at QoS 0; `keepaliveSeconds` 0 for none). Every message goes to `onMessage`;
 * `onClose` is told when the broker ends the link (a takeover, a revoked
 * device) but not after close().
 */
export async function linkDevice (aedes: Aedes, deviceId: string, keepaliveSeconds: number, onMessage: (d: Delivery) => void, onClose: () => void): Promise<DeviceLink> {
  const [ours, theirs] = streamPair()
  vouchFor(theirs, deviceId)
  aedes.handle(theirs as never)
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const waiting = new Map<string, { resolve: (p: Packet) => void, reject: (e: Error) => void }>()
  let nextId = 0
  let closing = false
  let ended = false
  const newId = (): number => {
    do { nextId = nextId % 65535 + 1 } while (waiting.has(`ack:${nextId}`))
    return nextId
  }
  const write = (p: Packet): void => { if (!ended) ours.write(mqttPacket.generate(p)) }
  const expect = (key: string): Promise<Packet> => new Promise((resolve, reject) => {
    if (ended) { reject(new Error('the device link is closed')); return }
    waiting.set(key, { resolve, reject })
  })
  const settle = (key: string, p: Packet): void => {
    const w = waiting.get(key)
    if (!w) return
    waiting.delete(key)
    w.resolve(p)
  }
  parser.on('packet', (p: Packet) => {
    switch (p.cmd) {
      case 'connack': settle('connack', p); break
      case 'suback': case 'unsuback': case 'puback': settle(`ack:${p.messageId ?? 0}`, p); break
      case 'publish': {
        const pub = p as IPublishPacket
        const id = pub.messageId
        let acked = false
        onMessage({
          topic: pub.topic,
          payload: Buffer.isBuffer(pub.payload) ? pub.payload : Buffer.from(pub.payload),
          ack: () => {
            if (acked || pub.qos === 0 || id === undefined) return
            acked = true
            write({ cmd: 'puback', messageId: id })
          }
        })
        break
      }
      default: break
    }
  })
  parser.on('error', () => { ours.destroy() })
  ours.on('data', (b: Buffer) => parser.parse(b))
  let pinger: NodeJS.Timeout | undefined
  const finish = (): void => {
    if (ended) return
    ended = true
    clearInterval(pinger)
    for (const w of waiting.values()) w.reject(new Error('the device link is closed'))
    waiting.clear()
    if (!closing) onClose()
  }
  ours.on('end', finish)
  ours.on('close', finish)
  ours.on('error', () => {})

  const connack = expect('connack')
  write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: deviceId, username: deviceId, clean: false, keepalive: keepaliveSeconds })
  // A broker that bounds keepalive (MQCHAT_KEEPALIVE_LIMIT_SECONDS) refuses 0, so the link asks for one and pings at half of it.
  if (keepaliveSeconds > 0) pinger = setInterval(() => { if (!ended) write({ cmd: 'pingreq' }) }, keepaliveSeconds * 500).unref()
  const ca = await connack as { returnCode?: number }
  if (ca.returnCode !== 0) {
    closing = true
    ours.destroy()
    throw new Error(`the broker refused the device link: ${CONNACK_ERRORS[ca.returnCode ?? 0] ?? `code ${String(ca.returnCode)}`}`)
  }
  const subscribe = async (subs: Array<{ topic: string, qos: 0 | 1 }>): Promise<number[]> => {
    const messageId = newId()
    const reply = expect(`ack:${messageId}`)
    write({ cmd: 'subscribe', messageId, subscriptions: subs })
    return ((await reply) as { granted: number[] }).granted
  }
  await subscribe([{ topic: `dev/${deviceId}/inbox`, qos: 1 }, { topic: `dev/${deviceId}/live`, qos: 0 }])
  return {
    async publish (topic, payload, qos = 1) {
      if (qos === 0) { write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }); return }
      const messageId = newId()
      const reply = expect(`ack:${messageId}`)
      write({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup: false })
      await reply
    },
    subscribe: (topics) => subscribe(topics.map((topic) => ({ topic, qos: 0 }))),
    async unsubscribe (topics) {
      const messageId = newId()
      const reply = expect(`ack:${messageId}`)
      write({ cmd: 'unsubscribe', messageId, unsubscriptions: topics })
      await reply
    },
    async close () {
      if (ended) return
      closing = true
      write({ cmd: 'disconnect' })
      ours.end()
      await new Promise<void>((resolve) => {
        if (ended) { resolve(); return }
        const t = setTimeout(() => { ours.destroy(); resolve() }, 2000)
        ours.once('close', () => { clearTimeout(t); resolve() })
      })
      finish()
    }
  }
}
