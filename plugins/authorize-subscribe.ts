// SUBSCRIBE: a device may subscribe to its own inbox (QoS 1) and live topic
// (QoS 0), and to presence/<userId> (QoS 0) of users it may watch (it shares
// a chat with them and is not blocked). Anything else gets SUBACK 0x80.
import type { Client, Subscription } from 'aedes'
import type { Device } from '../store/types.js'
import type { AuthorizeSubscribeHook } from './hooks.js'
import { deviceOf } from './session.js'
import { inboxTopic, liveTopic, presenceUserOf } from './topics.js'

/** Whether `watcher` may see `target`'s presence. */
export type PresenceRule = (watcher: string, target: string) => boolean

/** The QoS a device may hold on a topic filter, or undefined if it may not subscribe. */
export type SubscriptionPolicy = (device: Device, topic: string) => 0 | 1 | undefined

export function subscriptionPolicy (mayWatch: PresenceRule): SubscriptionPolicy {
  return (device, topic) => {
    if (topic === inboxTopic(device.id)) return 1
    if (topic === liveTopic(device.id)) return 0
    const target = presenceUserOf(topic)
    if (target !== undefined && mayWatch(device.userId, target)) return 0
    return undefined
  }
}

export function authorizeSubscribe (policy: SubscriptionPolicy): AuthorizeSubscribeHook {
  return (client: Client, sub: Subscription, done) => {
    const device = deviceOf(client)
    const max = device ? policy(device, sub.topic) : undefined
    if (max === undefined) return done(null, null as unknown as Subscription)
    done(null, { ...sub, qos: Math.min(sub.qos, max) as 0 | 1 })
  }
}
