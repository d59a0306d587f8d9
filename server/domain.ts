// The parts both profiles build the same way: the domain services over the
// stores, the bridge and its publish handlers, the API, the ports file. The
// profiles differ in the stores, the broker persistence and router, and in
// what carries a chat publish from the broker to the bridge.
import { ChatSettingsService } from '../core/chat-settings.js'
import { PushTargets } from '../core/push-targets.js'
import { KeyDirectory } from '../core/keys.js'
import { ProfileService } from '../core/profiles.js'
import { ContactService } from '../core/contacts.js'
import { AccountService } from '../core/account.js'
import { E2eePolicy } from '../core/e2ee.js'
import { enabledProviders } from '../push/index.js'
import { writeFileSync, renameSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { buildApi, httpsServer } from '../api/app.js'
import { TlsCertificate } from '../lib/tls.js'
import { isDirectChatId } from '../core/ids.js'
import type { ConnectInfo } from '../api/context.js'
import { WS_PATH as XMPP_WS_PATH } from '../xmpp/index.js'
import { Bridge, type InboxPublisher } from '../bridge/index.js'
import { Receipts } from '../bridge/receipts.js'
import { Typing } from '../bridge/typing.js'
import type { Broker } from '../broker/index.js'
import { UserLookup } from '../core/users.js'
import { ChatService } from '../core/chats.js'
import { DeviceService } from '../core/devices.js'
import { SettingsService } from '../core/settings.js'
import { BlockService } from '../core/blocks.js'
import { MediaService } from '../core/media.js'
import type { Presence, PresencePublisher } from '../core/presence.js'
import { LogCodeSender, RegistrationService, WebhookCodeSender } from '../core/registration.js'
import { LocalBlobStore } from '../media/local-blob.js'
import { LocalBackend } from '../media/local-backend.js'
import { S3Backend } from '../media/s3-backend.js'
import { UrlSigner } from '../media/signing.js'
import type { MediaBackend } from '../media/backend.js'
import type { ChatPublishHandlers } from '../plugins/authorize-publish.js'
import { isLoopback, type Config } from '../lib/config.js'
import type { Metrics } from '../lib/metrics.js'
import { directSends, type MessageSends } from '../bridge/sends.js'
import { PublishLimiter, TokenBuckets, type Buckets, type CounterFactory } from '../lib/rate.js'
import type { Device, DirectoryStore, HistoryStore, KeyStore, MediaStore, ProfileStore } from '../store/types.js'

/** xmpp, xmppWs: 0 when the XMPP listeners are off; mqttTls, wss, https: 0 without a TLS certificate. */
export interface Ports { mqtt: number, ws: number, http: number, xmpp: number, xmppWs: number, mqttTls: number, wss: number, https: number, /** 0: no admin listener (no MQCHAT_ADMIN_TOKEN). */ admin?: number }
export interface RunningServer {
  ports: Ports
  close (): Promise<void>
  /** Reads the TLS certificate files again (SIGHUP); false when that failed or there is no certificate. */
  reload (): boolean
  /** Counters logged on SIGUSR2 (the cluster: commands sent to MongoDB, by name, since start). */
  counters? (): Record<string, unknown>
}

/** The TLS certificate of MQCHAT_TLS_CERT and MQCHAT_TLS_KEY, if set. */
export function tlsCertificate (cfg: Config, log: Logger): TlsCertificate | undefined {
  return cfg.tlsCert !== '' ? new TlsCertificate(cfg.tlsCert, cfg.tlsKey, log.child({ part: 'tls' })) : undefined
}

/**
 * Plaintext listeners on an address other than loopback carry device tokens
 * and messages in the clear: said at start-up, unless MQCHAT_TRUST_PROXY says
 * a proxy (which should terminate TLS) is in front.
 */
export function warnPlaintext (cfg: Config, log: Logger, ports: Ports): void {
  if (isLoopback(cfg.host) || cfg.trustProxy !== '') return
  const plain = [['MQTT', ports.mqtt], ['MQTT over WebSocket', ports.ws], ['HTTP', ports.http]].filter(([, port]) => port !== 0).map(([what, port]) => `${String(what)} ${String(port)}`)
  if (plain.length === 0) return
  log.warn({ host: cfg.host, plaintext: plain }, `plaintext listeners on ${cfg.host} (${plain.join(', ')}): device tokens and messages travel in the clear there. Give clients the TLS listeners (MQCHAT_TLS_CERT, MQCHAT_TLS_KEY), or put a TLS terminator in front and set MQCHAT_TRUST_PROXY`)
}

export interface StoreSet { directory: DirectoryStore, history: HistoryStore, media: MediaStore, keys: KeyStore, profiles: ProfileStore }

export interface Domain {
  keys: KeyDirectory
  profiles: ProfileService
  contacts: ContactService
  account: AccountService
  push: PushTargets
  chatSettings: ChatSettingsService
  devices: DeviceService
  chats: ChatService
  users: UserLookup
  settings: SettingsService
  blocks: BlockService
  registration: RegistrationService
  media: MediaService
  bridge: Bridge
  receipts: Receipts
  typing: Typing
  presence: Presence
  limiter: PublishLimiter
  mayWatch (watcher: string, target: string): boolean
  /** The broker's chat publish handlers, with msg going straight to the bridge (the local profile). */
  handlers: ChatPublishHandlers
}

async function mediaBackend (cfg: Config): Promise<MediaBackend> {
  if (cfg.mediaBackend === 's3') {
    const s3 = new S3Backend({
      endpoint: cfg.s3Endpoint, publicEndpoint: cfg.s3PublicEndpoint, region: cfg.s3Region, bucket: cfg.s3Bucket, forcePathStyle: cfg.s3ForcePathStyle,
      accessKeyId: cfg.s3AccessKeyId, secretAccessKey: cfg.s3SecretAccessKey
    })
    await s3.ensureBucket()
    return s3
  }
  return new LocalBackend(new LocalBlobStore(cfg.dataDir), UrlSigner.fromDataDir(cfg.dataDir, cfg.mediaSecret))
}

/** Where shared state lives: in this process by default (the local profile), in Redis in the cluster. */
export interface Engines {
  publishBuckets?: Buckets
  counters?: CounterFactory
  presence: (settings: SettingsService, publish: PresencePublisher) => Presence
}

/** Builds the services; `broker` is read lazily (the broker is started after them). */
export async function buildDomain (cfg: Config, stores: StoreSet, log: Logger, metrics: Metrics, broker: () => Broker | undefined, engines: Engines): Promise<Domain> {
  const devices = new DeviceService(stores.directory, cfg.maxDevicesPerUser)
  const chats = new ChatService(stores.directory, cfg.maxGroupMembers, {
    groupsPerHour: cfg.groupsPerHour,
    directChatsPerHour: cfg.directChatsPerHour,
    counters: engines.counters,
    hasBlocked: (blocker, blocked) => blocks.has(blocker, blocked),
    lastSeq: (chatId) => stores.history.lastSeq(chatId)
  })
  const settings = new SettingsService(stores.directory)
  const blocks = new BlockService(stores.directory)
  const users = new UserLookup(stores.directory, stores.profiles, { phoneLookupsPerHour: cfg.phoneLookupsPerHour, phoneLookupsPerDay: cfg.phoneLookupsPerDay, counters: engines.counters })
  const push = new PushTargets(stores.directory, { maxPerDevice: cfg.pushMaxTargetsPerDevice, allowInsecureEndpoints: cfg.pushAllowInsecureEndpoints, enabled: enabledProviders(cfg) })
  // Inbox events of the services made before the bridge (chat settings, key directory) go through it once it exists.
  let bridgeRef: Bridge | undefined
  const chatSettings = new ChatSettingsService(stores.directory, chats, devices, (deviceId, payload) => bridgeRef?.sendTo(deviceId, payload, 'chat_settings'))
  const keys = new KeyDirectory(stores.keys, devices, chats, (deviceId, payload) => bridgeRef?.sendTo(deviceId, payload, 'keys'), {
    maxPrekeys: cfg.e2eeMaxPrekeys, lowWater: cfg.e2eePrekeysLow, claimsPer10Minutes: cfg.e2eeClaimsPer10Minutes, counters: engines.counters
  })
  await Promise.all([devices.init(), chats.init(), settings.init(), blocks.init(), push.init(), keys.init()])
  // A revoked device is woken no more.
  devices.on('revoked', (dev) => { push.dropDevice(dev.id).catch((err: unknown) => log.error({ err, deviceId: dev.id }, 'removing a revoked device\'s push targets failed')) })
  devices.on('revoked', (dev) => { keys.dropDevice(dev.id).catch((err: unknown) => log.error({ err, deviceId: dev.id }, 'removing a revoked device\'s keys failed')) })
  const sender = cfg.codeWebhookUrl ? new WebhookCodeSender(cfg.codeWebhookUrl, cfg.codeWebhookSecret) : new LogCodeSender(log)
  const registration = new RegistrationService(stores.directory, devices, sender, {
    ttlSeconds: cfg.otpTtlSeconds,
    maxAttempts: cfg.otpMaxAttempts,
    perPhonePerHour: cfg.otpRequestsPerPhonePerHour,
    perIpPerHour: cfg.otpRequestsPerIpPerHour,
    returnCodes: cfg.devReturnCodes,
    counters: engines.counters
  })
  if (cfg.devReturnCodes) log.warn('MQCHAT_DEV_RETURN_CODES is on: registration responses include the one-time code. Never use this in production.')

  const media = new MediaService(stores.media, await mediaBackend(cfg), chats, {
    maxBytes: { image: cfg.mediaMaxImageBytes, audio: cfg.mediaMaxAudioBytes, video: cfg.mediaMaxVideoBytes, document: cfg.mediaMaxDocumentBytes },
    quotaBytesPerHour: cfg.mediaQuotaBytesPerHour,
    uploadUrlSeconds: cfg.mediaUploadUrlSeconds,
    downloadUrlSeconds: cfg.mediaDownloadUrlSeconds
  })
  const inbox: InboxPublisher = {
    publish: (deviceId, payload) => {
      const b = broker()
      return b ? b.inbox.publish(deviceId, payload) : Promise.reject(new Error('broker not started'))
    }
  }
  const bridge = new Bridge(stores.history, chats, devices, blocks, inbox, log.child({ part: 'bridge' }), metrics, {
    maxMessageBytes: cfg.maxMessageBytes,
    editWindowMs: cfg.editWindowSeconds * 1000,
    deleteWindowMs: cfg.deleteWindowSeconds * 1000,
    maxForwardTargets: cfg.forwardMaxChats,
    disappearingTimers: cfg.disappearingTimers
  }, media)
  bridgeRef = bridge
  const profiles = new ProfileService(stores.profiles, stores.directory, settings, chats, devices, blocks, media, (deviceId, payload) => bridge.sendTo(deviceId, payload, 'profile'))
  const contacts = new ContactService(stores.profiles, stores.directory, profiles, users, {
    max: cfg.contactsMax, syncsPerHour: cfg.contactSyncsPerHour, newPerDay: cfg.contactsNewPerDay, answerMs: cfg.discoveryAnswerMs, counters: engines.counters
  })
  const account = new AccountService({
    directory: stores.directory, history: stores.history, profiles: stores.profiles, devices, chats, blocks, settings, media, keys, push, registration, exportsPerHour: cfg.exportsPerHour, counters: engines.counters, log: log.child({ part: 'account' })
  })
  const e2ee = new E2eePolicy(chats, devices, keys)
  bridge.checkEncryptionWith((device, chatId, env) => e2ee.check(device, chatId, env))

  const receipts = new Receipts(stores.history, chats, devices, settings, bridge.sendTo)
  // Between a blocked pair, nothing ephemeral crosses their direct chat.
  const unblockedDirect = (from: string, to: string, chatId: string): boolean =>
    !(isDirectChatId(chatId) && (blocks.has(from, to) || blocks.has(to, from)))
  const typing = new Typing(chats, devices, (deviceId, payload) => broker()?.live(deviceId, payload), cfg.typingIntervalMs, unblockedDirect)
  const handlers: ChatPublishHandlers = {
    msg: (d: Device, chatId: string, p: Buffer) => bridge.acceptMessage(d, chatId, p),
    receipt: (d: Device, chatId: string, p: Buffer) => receipts.accept(d, chatId, p),
    typing: (d: Device, chatId: string, p: Buffer) => typing.accept(d, chatId, p)
  }
  const limiter = new PublishLimiter(engines.publishBuckets ?? new TokenBuckets(cfg.publishRatePerSecond, cfg.publishBurst))
  const publishPresence: PresencePublisher = (userId, payload) => broker()?.presence(userId, payload)
  const presence = engines.presence(settings, publishPresence)
  // Presence is for contacts: users sharing a chat the target has taken part in (ChatService.isContactOf), unless the target blocked them.
  const mayWatch = (watcher: string, target: string): boolean => watcher === target || (chats.isContactOf(watcher, target) && !blocks.has(target, watcher))
  return { devices, chats, users, settings, blocks, registration, media, bridge, receipts, typing, presence, limiter, mayWatch, handlers, push, chatSettings, keys, profiles, contacts, account }
}

/** Starts the HTTP API on the configured port. */
export async function startApi (cfg: Config, d: Domain, stores: StoreSet, metrics: Metrics, info: ConnectInfo, ready: () => boolean, log: Logger, tls?: TlsCertificate, sends: MessageSends = directSends(d.bridge)): Promise<FastifyInstance> {
  const api = await buildApi({
    sends,
    directory: stores.directory,
    history: stores.history,
    devices: d.devices,
    chats: d.chats,
    registration: d.registration,
    bridge: d.bridge,
    receipts: d.receipts,
    settings: d.settings,
    presence: d.presence,
    mayWatch: d.mayWatch,
    users: d.users,
    blocks: d.blocks,
    push: d.push,
    chatSettings: d.chatSettings,
    keys: d.keys,
    profiles: d.profiles,
    contacts: d.contacts,
    account: d.account,
    limiter: d.limiter,
    metrics,
    info,
    ready
  }, log, {
    media: { media: d.media },
    trustProxy: cfg.trustProxy,
    publicUrl: cfg.publicUrl,
    listenHost: cfg.host,
    metricsToken: cfg.metricsToken,
    tls,
    limits: { bodyTimeoutMs: cfg.httpBodyTimeoutSeconds * 1000, requestTimeoutMs: cfg.httpRequestTimeoutSeconds * 1000, idleTimeoutMs: cfg.httpIdleTimeoutSeconds * 1000, maxMessageBytes: cfg.maxMessageBytes, maxConnections: cfg.httpMaxConnections, maxConnectionsPerAddress: cfg.httpMaxConnectionsPerAddress }
  })
  await api.listen({ port: cfg.httpPort, host: cfg.host })
  const secure = httpsServer(api)
  if (secure) {
    secure.listen(cfg.httpsPort, cfg.host)
    await once(secure, 'listening')
  }
  return api
}

/** What /v1/info tells clients: this node's listeners, or on a node without them the configured (load-balanced) ports. */
export function connectInfo (cfg: Config, mqttPort: number, wsPort: number, tls?: { mqttPort: number, wssPort: number, httpsPort: number }): ConnectInfo {
  const push = [...enabledProviders(cfg)]
  return {
    mqttPort,
    wsPort,
    wsPath: cfg.wsPath,
    ...(tls && tls.mqttPort !== 0 ? { tls } : {}),
    ...(cfg.xmppEnabled ? { xmpp: { domain: cfg.xmppDomain, port: cfg.xmppPort, wsPort: cfg.xmppWsPort, wsPath: XMPP_WS_PATH } } : {}),
    ...(push.length > 0 ? { push: { providers: push, ...(cfg.pushVapidPublicKey !== '' ? { vapidPublicKey: cfg.pushVapidPublicKey } : {}) } } : {})
  }
}

export const httpPort = (api: FastifyInstance | undefined): number => api ? (api.server.address() as AddressInfo).port : 0
export const httpsPort = (api: FastifyInstance | undefined): number => {
  const secure = api ? httpsServer(api) : undefined
  return secure ? (secure.address() as AddressInfo).port : 0
}

/** Writes <data>/ports.json (what this process listens on), atomically. */
export function writePorts (cfg: Config, ports: Ports): void {
  mkdirSync(cfg.dataDir, { recursive: true })
  const file = join(cfg.dataDir, 'ports.json')
  writeFileSync(`${file}.tmp`, JSON.stringify({ ...ports, host: cfg.host, pid: process.pid }) + '\n')
  renameSync(`${file}.tmp`, file)
}

/** A close() that runs its steps once, however often it is called. */
export function closeOnce (steps: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined
  return () => (closing ??= steps())
}
