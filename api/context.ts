// What every API plugin gets: the domain services, decorated once at the root.
import type { FastifyRequest } from 'fastify'
import type { Bridge } from '../bridge/index.js'
import type { MessageSends } from '../bridge/sends.js'
import type { Receipts } from '../bridge/receipts.js'
import type { SettingsService } from '../core/settings.js'
import type { Presence } from '../core/presence.js'
import type { BlockService } from '../core/blocks.js'
import type { ChatSettingsService } from '../core/chat-settings.js'
import type { PushTargets } from '../core/push-targets.js'
import type { KeyDirectory } from '../core/keys.js'
import type { ProfileService } from '../core/profiles.js'
import type { ContactService } from '../core/contacts.js'
import type { AccountService } from '../core/account.js'
import type { ChatService } from '../core/chats.js'
import type { UserLookup } from '../core/users.js'
import type { DeviceService } from '../core/devices.js'
import { DomainError } from '../core/errors.js'
import type { RegistrationService } from '../core/registration.js'
import type { Metrics } from '../lib/metrics.js'
import type { PublishLimiter } from '../lib/rate.js'
import type { Device, DirectoryStore, HistoryStore } from '../store/types.js'

export interface ApiServices {
  directory: DirectoryStore
  history: HistoryStore
  devices: DeviceService
  chats: ChatService
  /** Users named by id or phone number (phone lookups are rate-limited). */
  users: UserLookup
  registration: RegistrationService
  bridge: Bridge
  /** Message sends and forwards: to the bridge here, or through the chat stream in the cluster. */
  sends: MessageSends
  receipts: Receipts
  settings: SettingsService
  presence: Presence
  blocks: BlockService
  /** The end-to-end encryption key directory. */
  keys: KeyDirectory
  profiles: ProfileService
  contacts: ContactService
  account: AccountService
  /** The calling device's push targets. */
  push: PushTargets
  /** Per-user chat settings (mute). */
  chatSettings: ChatSettingsService
  /** Whether `watcher` may see `target`'s presence (a contact: ChatService.isContactOf; not blocked). */
  mayWatch (watcher: string, target: string): boolean
  limiter: PublishLimiter
  metrics: Metrics
  info: ConnectInfo
  ready: () => boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** No device token needed (registration, health, signed media URLs). */
    public?: boolean
    /** The route reads its body as a stream itself (media uploads): no JSON body deadline. */
    streamedBody?: boolean
  }
}

const authenticated = new WeakMap<FastifyRequest, Device>()

/** Checks the request's device token (Authorization: Bearer <device token>) as it arrives; refuses it with 401 otherwise. */
export function authenticate (services: ApiServices, req: FastifyRequest): Device {
  const header = req.headers.authorization ?? ''
  const m = /^Bearer\s+(\S+)$/i.exec(header)
  const device = m ? services.devices.authenticate(m[1]) : undefined
  if (!device) throw new DomainError('unauthorized', 'a valid device token is required (Authorization: Bearer <token>)', 401)
  authenticated.set(req, device)
  return device
}

/** The device a request is authenticated as. */
export function requireDevice (services: ApiServices, req: FastifyRequest): Device {
  return authenticated.get(req) ?? authenticate(services, req)
}

/** Where clients connect; the XMPP port is filled in once its listener is up (it may be picked at random). */
export interface ConnectInfo {
  mqttPort: number
  wsPort: number
  wsPath: string
  /** The TLS listeners, when the server has a certificate. */
  tls?: { mqttPort: number, wssPort: number, httpsPort: number }
  xmpp?: { domain: string, port: number, wsPort: number, wsPath: string }
  /** The push providers this server sends to, and the VAPID public key Web Push subscriptions need. */
  push?: { providers: string[], vapidPublicKey?: string }
}
