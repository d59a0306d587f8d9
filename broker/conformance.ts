// MQTT 3.1.1 rules aedes (1.2 and 2.0) does not keep on its own, kept here so both
// access modes get them. Found by mosquitto-compat-tests/.
import { Readable } from 'node:stream'
import type { Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import type { AuthenticateHook } from '../plugins/hooks.js'

/**
 * [MQTT-3.1.3-8]: an empty client id with CleanSession 0 must get CONNACK
 * 0x02 (identifier rejected). aedes instead invents an id and accepts. The
 * same for an empty id under MQTT 3.1. The
 * CONNECT packet is only visible in preConnect and a CONNACK code can only
 * come from authenticate, so preConnect marks the client and authenticate refuses it.
 */
export function emptyClientIdRule (inner: AuthenticateHook | undefined): {
  preConnect: (client: Client, packet: { clientId: string, clean: boolean, protocolVersion: number, properties?: { topicAliasMaximum?: number, receiveMaximum?: number } }, done: (err: Error | null, ok: boolean) => void) => void
  authenticate: AuthenticateHook
} {
  const refused = new WeakSet<Client>()
  return {
    preConnect (client, packet, done) {
      // MQTT 3.1 (level 3) wants 1–23 characters whatever the session; aedes checks only the upper bound.
      if (packet.clientId === '' && (!packet.clean || packet.protocolVersion === 3)) refused.add(client)
      done(null, true)
    },
    authenticate (client, username, password, done) {
      if (refused.has(client)) {
        const err = Object.assign(new Error('identifier rejected'), { returnCode: 2 })
        return done(err as Parameters<typeof done>[0], false)
      }
      if (inner) return inner(client, username, password, done)
      done(null, true)
    }
  }
}

interface StoredPacket { cmd?: string, messageId?: number, dup?: boolean }

/**
 * [MQTT-3.3.1-1]: a PUBLISH the broker sends again must have DUP=1. aedes
 * resends a session's stored messages as they were stored. A stored PUBLISH
 * that already carries a packet id was given one to be written to the
 * connection, so it may have reached the client: it goes out again with DUP set.
 */
export function markRedeliveries<P extends { outgoingStream: (client: { id: string }) => AsyncIterable<unknown>, hasQueued?: (clientId: string) => boolean }> (persistence: P): void {
  const outgoingStream = persistence.outgoingStream.bind(persistence)
  // Most connects have nothing queued (the local profile's devices never do): no second stream for them.
  persistence.outgoingStream = ((client: { id: string }) => persistence.hasQueued?.(client.id) === false ? outgoingStream(client) : Readable.from((async function * () {
    for await (const p of outgoingStream(client) as AsyncIterable<StoredPacket>) {
      if ((p.cmd === undefined || p.cmd === 'publish') && p.messageId !== undefined && p.messageId !== null) p.dup = true
      yield p
    }
  })(), { highWaterMark: 1 })) as P['outgoingStream']
}

/**
 * [MQTT-3.1.2-25]: the server must not send an MQTT 5 client a packet bigger
 * than the Maximum Packet Size of its CONNECT; it drops the message as if it
 * had been delivered. aedes 2.0.0-beta.1 records the size and sends anyway.
 * Open access only: chat devices' inboxes keep to it themselves (a message too
 * big becomes a sync notice, broker/inbox.ts). An authorizeForward hook, so a
 * dropped QoS 1 message also leaves the session's queue.
 */
export function withinMaximumPacketSize<P extends { topic: string, payload: Buffer | string, qos: number, properties?: object }> (client: Client, packet: P): P | null {
  const max = (client as Client & { maximumPacketSize?: number }).maximumPacketSize
  if (max === undefined) return packet
  // A PUBLISH is at least its fixed header, topic and payload; only one that may be over is encoded to be measured.
  const least = 2 + 2 + Buffer.byteLength(packet.topic) + Buffer.byteLength(packet.payload)
  if (least + 64 < max) return packet
  const size = mqttPacket.generate({ cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos as 0 | 1 | 2, messageId: 1, dup: false, retain: false, properties: packet.properties as mqttPacket.IPublishPacket['properties'] }, { protocolVersion: 5 }).length
  return size > max ? null : packet
}
