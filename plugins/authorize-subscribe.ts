// SUBSCRIBE: a device may subscribe to its own inbox (QoS 1) and live topic
// (QoS 0) and nothing else; a refused filter gets SUBACK 0x80.
import type { Client, Subscription } from 'aedes'
import type { AuthorizeSubscribeHook } from './hooks.js'
import { deviceOf } from './session.js'
import { inboxTopic, liveTopic } from './topics.js'

/** The QoS a device may hold on a topic filter, or undefined if it may not subscribe. */
export function allowedSubscription (deviceId: string, topic: string): 0 | 1 | undefined {
  if (topic === inboxTopic(deviceId)) return 1
  if (topic === liveTopic(deviceId)) return 0
  return undefined
}

export function authorizeSubscribe (): AuthorizeSubscribeHook {
  return (client: Client, sub: Subscription, done) => {
    const device = deviceOf(client)
    const max = device ? allowedSubscription(device.id, sub.topic) : undefined
    if (max === undefined) return done(null, null as unknown as Subscription)
    done(null, { ...sub, qos: Math.min(sub.qos, max) as 0 | 1 })
  }
}
