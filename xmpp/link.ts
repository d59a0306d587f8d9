// An XMPP resource is a device: the gateway signs it in to this node's MQTT
// broker over an in-process stream, as a persistent session with the
// device's own token. So an XMPP device goes through the same
// authentication, chat ACL, rate limits, bridge and offline queue as an MQTT
// one, and its inbox is the same topic; only the encoding differs.
import { Duplex } from 'node:stream'
import mqtt, { type MqttClient } from 'mqtt'
import type { Aedes } from 'aedes'

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

export interface DeviceLink {
  client: MqttClient
  /** Publishes at QoS 1; resolves on PUBACK. */
  publish (topic: string, payload: string): Promise<void>
  close (): Promise<void>
}

/**
 * Connects a device to the broker (clean session false, its inbox
 * subscribed at QoS 1). `onEvent` gets each inbox event's JSON text; its
 * promise resolving acknowledges the event (PUBACK), so an event is
 * acknowledged only once it is on its way to the XMPP client.
 */
export async function linkDevice (aedes: Aedes, deviceId: string, token: string, onEvent: (topic: string, payload: string) => Promise<void>, onClose: () => void): Promise<DeviceLink> {
  const client = new mqtt.MqttClient(() => {
    const [ours, theirs] = streamPair()
    aedes.handle(theirs as never)
    return ours
  }, {
    clientId: deviceId,
    username: deviceId,
    password: token,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 0,
    keepalive: 0
  })
  client.handleMessage = (packet, done) => {
    onEvent(packet.topic, packet.payload.toString()).then(() => done(), (err: Error) => done(err))
  }
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error('the broker closed the device link')))
  })
  client.on('close', onClose)
  await client.subscribeAsync([`dev/${deviceId}/inbox`, `dev/${deviceId}/live`], { qos: 1 })
  return {
    client,
    publish: async (topic, payload) => { await client.publishAsync(topic, payload, { qos: 1 }) },
    close: async () => { await client.endAsync() }
  }
}
