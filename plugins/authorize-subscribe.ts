// SUBSCRIBE: a device may subscribe to its own inbox (QoS 1) and live topic
// (QoS 0), and to presence/<userId> (QoS 0) of users it may watch (contacts
// who have not blocked it), at most MQCHAT_MQTT_MAX_SUBSCRIPTIONS
// at a time. Anything else gets SUBACK 0x80.
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

/**
 * The SUBSCRIBE hook, and the count of each client's subscriptions: at most
 * `maxSubscriptions` filters at a time (a filter over it gets 0x80, like any
 * refused one). `unsubscribed` is to be called with aedes' 'unsubscribe' events.
 */
export function authorizeSubscribe (policy: SubscriptionPolicy, maxSubscriptions: number): { hook: AuthorizeSubscribeHook, unsubscribed (topics: string[], client: Client | null): void } {
  const held = new WeakMap<Client, Set<string>>()
  return {
    hook: (client: Client, sub: Subscription, done) => {
      const device = deviceOf(client)
      const max = device ? policy(device, sub.topic) : undefined
      if (max === undefined) return done(null, null as unknown as Subscription)
      let topics = held.get(client)
      if (!topics) held.set(client, topics = new Set())
      if (!topics.has(sub.topic)) {
        if (topics.size >= maxSubscriptions) return done(null, null as unknown as Subscription)
        topics.add(sub.topic)
      }
      done(null, { ...sub, qos: Math.min(sub.qos, max) as 0 | 1 })
    },
    unsubscribed: (topics, client) => {
      const mine = client ? held.get(client) : undefined
      if (mine) for (const t of topics) mine.delete(t)
    }
  }
}
