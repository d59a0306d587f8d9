// The push providers this server is configured for, and the dispatcher that
// sends to them (push/dispatcher.ts); docs/protocol.md, "Push".
import type { Logger } from 'pino'
import type { Config } from '../lib/config.js'
import type { Metrics } from '../lib/metrics.js'
import type { PositionDelivery } from '../bridge/index.js'
import type { DirectoryStore, PushTargetType } from '../store/types.js'
import type { ChatService } from '../core/chats.js'
import type { ChatSettingsService } from '../core/chat-settings.js'
import type { DeviceService } from '../core/devices.js'
import type { PushTargets } from '../core/push-targets.js'
import { ApnsProvider } from './apns.js'
import { PushDispatcher } from './dispatcher.js'
import { FcmProvider, readServiceAccount } from './fcm.js'
import type { PushProvider } from './notice.js'
import { UnifiedPushProvider, WebPushProvider } from './webpush.js'

/** The providers `cfg` names (each needs its credentials; UnifiedPush none). */
export function enabledProviders (cfg: Config): Set<PushTargetType> {
  const on = new Set<PushTargetType>()
  if (cfg.pushFcmServiceAccount !== '') on.add('fcm')
  if (cfg.pushApnsKey !== '') on.add('apns')
  if (cfg.pushVapidPublicKey !== '') on.add('webpush')
  if (cfg.pushUnifiedPush) on.add('unifiedpush')
  return on
}

export function buildProviders (cfg: Config): Map<PushTargetType, PushProvider> {
  const providers = new Map<PushTargetType, PushProvider>()
  const on = enabledProviders(cfg)
  if (on.has('fcm')) providers.set('fcm', new FcmProvider(readServiceAccount(cfg.pushFcmServiceAccount), cfg.pushFcmUrl))
  if (on.has('apns')) providers.set('apns', new ApnsProvider({ keyPath: cfg.pushApnsKey, keyId: cfg.pushApnsKeyId, teamId: cfg.pushApnsTeamId, ...(cfg.pushApnsUrl !== '' ? { url: cfg.pushApnsUrl } : {}) }))
  if (on.has('webpush')) providers.set('webpush', new WebPushProvider({ publicKey: cfg.pushVapidPublicKey, privateKey: cfg.pushVapidPrivateKey, subject: cfg.pushVapidSubject }, cfg.pushAllowInsecureEndpoints))
  if (on.has('unifiedpush')) providers.set('unifiedpush', new UnifiedPushProvider(cfg.pushAllowInsecureEndpoints))
  return providers
}

/** What the dispatcher reads that differs by profile: whether a device is connected, and its recorded positions. */
export interface PushSources {
  isAway: (deviceId: string) => boolean | Promise<boolean>
  /** A device's recorded positions (PositionStore.positions). */
  positions: (deviceId: string) => Map<string, number> | Promise<Map<string, number>>
}

/** The domain services the dispatcher reads. */
export interface PushDomain { chats: ChatService, devices: DeviceService, push: PushTargets, chatSettings: ChatSettingsService }

/** The dispatcher, or undefined when no provider is configured. */
export function startPush (cfg: Config, d: PushDomain, directory: DirectoryStore, sources: PushSources, metrics: Metrics, log: Logger): PushDispatcher | undefined {
  const providers = buildProviders(cfg)
  if (providers.size === 0) return undefined
  log.info({ providers: [...providers.keys()] }, 'push notifications on')
  return new PushDispatcher({
    chats: d.chats,
    devices: d.devices,
    targets: d.push,
    isAway: sources.isAway,
    chatSettings: async (userId, chatId) => await d.chatSettings.of(userId, chatId),
    // A chat with no recorded position is owed from the device's membership start (broker/inbox.ts).
    position: async (deviceId, userId, chatId) => (await sources.positions(deviceId)).get(chatId) ?? Math.max(0, (d.chats.fromSeqOf(chatId, userId) ?? 1) - 1),
    chatName: async (chatId) => (await directory.getChat(chatId))?.name ?? null,
    providers,
    metrics: { sent: metrics.pushSent, failed: metrics.pushFailed, dropped: metrics.pushDropped },
    log
  }, {
    coalesceMs: cfg.pushCoalesceSeconds * 1000,
    queueMax: cfg.pushQueue,
    concurrency: cfg.pushConcurrency,
    maxAttempts: cfg.pushMaxAttempts,
    maxRetryDelayMs: 300_000
  })
}

/** The delivery the bridge announces committed messages to, with the dispatcher told after it. */
export function withPush<D extends PositionDelivery> (delivery: D, push: PushDispatcher): PositionDelivery {
  return {
    committed: (m) => {
      const done = delivery.committed(m)
      push.committed(m)
      return done
    },
    ...(delivery.event ? { event: delivery.event.bind(delivery) } : {}),
    ...(delivery.transient ? { transient: delivery.transient.bind(delivery) } : {})
  }
}
