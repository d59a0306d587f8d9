// MQTT 5 CONNACK properties that aedes 2.0.0-beta.1 cannot announce. Its
// CONNACK carries a fixed set (Shared Subscription Available = 0, and the
// limits it is given); in chat mode mqchat also refuses retained messages
// and wildcard subscriptions, so a device must be told Retain Available = 0
// and Wildcard Subscription Available = 0 [MQTT-3.2.2-14, 3.2.2.3.11].
//
// aedes writes every packet with mqtt-packet's writeToStream, looked up on
// the module at each call; it is wrapped once here, and adds the properties
// registered for a connection's stream to that stream's successful MQTT 5
// CONNACK. Everything else passes through untouched (one string compare per
// packet). test/e2e/mqtt5.test.ts checks the CONNACK in chat mode, and that
// open mode announces neither; a newer aedes with options for these should
// replace this module.
import mqttPacket from 'mqtt-packet'

type Properties = NonNullable<mqttPacket.IConnackPacket['properties']>

const extra = new WeakMap<object, Properties>()
let wrapped = false

/** Adds `properties` to the MQTT 5 CONNACK that accepts the connection on `stream`. */
export function announceOnConnack (stream: object, properties: Properties): void {
  if (!wrapped) wrap()
  extra.set(stream, properties)
}

function wrap (): void {
  wrapped = true
  const write = mqttPacket.writeToStream
  mqttPacket.writeToStream = ((packet: mqttPacket.Packet, stream: NodeJS.WritableStream, opts?: { protocolVersion?: number }): boolean => {
    if (packet.cmd === 'connack' && opts?.protocolVersion === 5 && (packet.reasonCode ?? 0) === 0) {
      const more = extra.get(stream)
      if (more !== undefined) {
        extra.delete(stream)
        return write({ ...packet, properties: { ...packet.properties, ...more } }, stream, opts)
      }
    }
    return write(packet, stream, opts)
  }) as typeof mqttPacket.writeToStream
}
