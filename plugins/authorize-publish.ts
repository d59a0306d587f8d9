// PUBLISH from a device. Chat rules are applied here, before aedes PUBACKs:
// a chat message is stored (via the bridge) before this hook calls back, so
// the PUBACK means "durable in history".
//
// Every device publish is consumed: after the chat layer took it (or refused
// it), the packet is pointed at SINK_TOPIC, where nobody can subscribe, so
// nothing a device publishes is routed as a plain MQTT message. A refusal
// sends the device an `error` inbox event and keeps the connection (a PUBLISH
// over the packet limit too: the packet guard hands it over unread); only a
// store failure fails the hook (aedes then closes the connection without a
// PUBACK, and the client retries the same client id later).
//
// An MQTT 5 device's refused QoS 1 or 2 publish is acknowledged here with the
// refusal's reason code (reason-codes.ts) and the packet is marked as aedes
// 2.0.0-beta.1 marks an unauthorized one (`_notAuthorized`), so aedes sends no
// acknowledgement of its own (test/e2e/mqtt5.test.ts checks there is one).
import type { Client, PublishPacket } from 'aedes'
import mqttPacket from 'mqtt-packet'
import type { Logger } from 'pino'
import type { Bridge } from '../bridge/index.js'
import type { Device } from '../store/types.js'
import { clientIdOf, leadingClientId } from '../bridge/envelope.js'
import { readOversizeMarker } from '../broker/packet-guard.js'
import type { Refusal } from '../bridge/events.js'
import { DomainError } from '../core/errors.js'
import { PublishLimiter, WindowCounter } from '../lib/rate.js'
import type { AuthorizePublishHook } from './hooks.js'
import { deviceOf } from './session.js'
import { parseChatTopic, SINK_TOPIC } from './topics.js'
import { MESSAGE_RATE_TOO_HIGH, pubackReasonOf } from './reason-codes.js'

/** What of aedes' client an MQTT 5 acknowledgement needs. */
type V5Client = Client & { conn: NodeJS.WritableStream, _requestProblemInformation?: boolean }

/** What the chat layer does with each kind of chat publish; a DomainError is a refusal. */
export interface ChatPublishHandlers {
  msg (device: Device, chatId: string, payload: Buffer): Promise<unknown>
  receipt (device: Device, chatId: string, payload: Buffer): Promise<unknown>
  typing (device: Device, chatId: string, payload: Buffer): unknown
}

export function authorizePublish (bridge: Bridge, handlers: ChatPublishHandlers, limiter: PublishLimiter, log: Logger, maxPacketBytes: number): AuthorizePublishHook {
  // A device that keeps publishing while refused is disconnected.
  const strikes = new WindowCounter(limiter.burst * 10, 10_000)

  function consume (packet: PublishPacket): void {
    packet.topic = SINK_TOPIC
    packet.retain = false
  }

  function refuse (client: Client, packet: PublishPacket, deviceId: string, r: Refusal): void {
    bridge.refuse(deviceId, r)
    if (client.version === 5 && packet.qos > 0) acknowledgeRefusal(client as V5Client, packet, r)
    if (!strikes.hit(deviceId)) {
      log.warn({ deviceId, code: r.code }, 'device keeps publishing while refused; disconnecting it')
      client.disconnect({ reasonCode: MESSAGE_RATE_TOO_HIGH }, () => {})
    }
  }

  /** MQTT 5: the PUBACK (PUBREC for QoS 2) carries the refusal; aedes then sends none. */
  function acknowledgeRefusal (client: V5Client, packet: PublishPacket, r: Refusal): void {
    (packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true
    const ack: mqttPacket.IPubackPacket | mqttPacket.IPubrecPacket = {
      cmd: packet.qos === 1 ? 'puback' : 'pubrec',
      messageId: packet.messageId,
      reasonCode: pubackReasonOf(r.code),
      // [MQTT-3.1.2-29]: no Reason String for a device that asked for none.
      ...(client._requestProblemInformation === false ? {} : { properties: { reasonString: `${r.code}: ${r.message}` } })
    }
    mqttPacket.writeToStream(ack, client.conn as never, { protocolVersion: 5 })
  }

  return (client: Client | null, packet: PublishPacket, done) => {
    const device = deviceOf(client)
    if (client === null || device === undefined) {
      // A will whose client is gone: wills are not part of the chat contract.
      consume(packet)
      return done(null)
    }
    const topic = packet.topic
    const chat = parseChatTopic(topic)
    const payload = packet.payload as Buffer
    // What a refusal names; the envelope's client id is looked for only when something is refused.
    const refusal = (code: string, message: string, id: string | undefined, details?: Record<string, unknown>): Refusal => ({ code, message, topic, chat: chat?.chatId, id, ...(details !== undefined ? { details } : {}) })
    const envelopeId = (): string | undefined => chat ? clientIdOf(payload) : undefined
    consume(packet)
    // In memory the verdict is immediate; counted in Redis (cluster) it is a
    // promise. Calls reach Redis in order on one connection, so a device's
    // publishes keep their order either way.
    const admitted = (ok: boolean): void => {
      if (!ok) {
        refuse(client, packet, device.id, refusal('rate_limited', limiter.message, envelopeId()))
        return done(null)
      }
      if (!chat) {
        refuse(client, packet, device.id, refusal('forbidden_topic', 'devices may publish only to chat/<chatId>/msg, receipt or typing', undefined))
        return done(null)
      }
      // A PUBLISH over the packet limit, which the packet guard did not read: refused, and acknowledged like any refusal.
      const over = readOversizeMarker(payload)
      if (over !== undefined) {
        const id = chat.kind === 'msg' ? leadingClientId(over.payloadStart) : undefined
        refuse(client, packet, device.id, refusal('too_large', `this packet had ${over.size} bytes, over the server's limit of ${maxPacketBytes}; it was not read`, id))
        return done(null)
      }
      if (chat.kind === 'typing') {
        try {
          handlers.typing(device, chat.chatId, payload)
        } catch (err) {
          if (err instanceof DomainError) refuse(client, packet, device.id, refusal(err.code, err.message, undefined))
          else log.error({ err, deviceId: device.id, chat: chat.chatId }, 'forwarding typing failed')
        }
        return done(null)
      }
      const handle = chat.kind === 'msg' ? handlers.msg : handlers.receipt
      handle.call(handlers, device, chat.chatId, payload).then(
        () => done(null),
        (err: unknown) => {
          if (err instanceof DomainError) {
            refuse(client, packet, device.id, refusal(err.code, err.message, chat.kind === 'receipt' ? undefined : envelopeId(), err.details))
            return done(null)
          }
          log.error({ err, deviceId: device.id, chat: chat.chatId }, 'storing a chat message failed')
          done(err as Error)
        }
      )
    }
    const verdict = limiter.take(device.id)
    if (typeof verdict === 'boolean') return admitted(verdict)
    verdict.then(admitted, (err: unknown) => {
      log.error({ err, deviceId: device.id }, 'the publish limit could not be checked')
      done(err as Error)
    })
  }
}
