// The local profile: everything in one process, state in SQLite files under
// the data directory (mqchat.db: directory and history; broker.db: MQTT
// sessions, queues, retained messages).
import { mkdirSync, writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { buildApi } from '../api/app.js'
import { Bridge, type InboxPublisher } from '../bridge/index.js'
import { syncEvent } from '../bridge/events.js'
import { startRetention } from './retention.js'
import { Receipts } from '../bridge/receipts.js'
import { Typing } from '../bridge/typing.js'
import { startBroker, type Broker } from '../broker/index.js'
import { SqlitePersistence } from '../broker/persistence/sqlite.js'
import { ChatService } from '../core/chats.js'
import { DeviceService } from '../core/devices.js'
import { SettingsService } from '../core/settings.js'
import { BlockService } from '../core/blocks.js'
import { MediaService } from '../core/media.js'
import { LocalBlobStore } from '../media/local-blob.js'
import { LocalBackend } from '../media/local-backend.js'
import { S3Backend } from '../media/s3-backend.js'
import { UrlSigner } from '../media/signing.js'
import type { MediaBackend } from '../media/backend.js'
import { PresenceService, type PresenceRecord } from '../core/presence.js'
import { subscriptionPolicy } from '../plugins/authorize-subscribe.js'
import { LogCodeSender, RegistrationService, WebhookCodeSender } from '../core/registration.js'
import type { Config } from '../lib/config.js'
import { createMetrics } from '../lib/metrics.js'
import { PublishLimiter } from '../lib/rate.js'
import { openSqliteStores } from '../store/sqlite/index.js'
import type { Device } from '../store/types.js'

export interface Ports { mqtt: number, ws: number, http: number }
export interface RunningServer { ports: Ports, close (): Promise<void> }

export async function startLocal (cfg: Config, log: Logger): Promise<RunningServer> {
  mkdirSync(cfg.dataDir, { recursive: true })
  const stores = openSqliteStores(cfg.dataDir, cfg.sqliteSynchronous)
  // The broker is started last; the parts built before it reach it through this.
  let broker: Broker | undefined
  // Offline queues are bounded (trimmed only while the device is away); the
  // device is told to sync when it next connects (see sessions below).
  const persistence = new SqlitePersistence({
    path: join(cfg.dataDir, 'broker.db'),
    synchronous: cfg.sqliteSynchronous,
    maxQueue: cfg.maxQueue,
    onOverflow: (deviceId, dropped) => log.info({ deviceId, dropped, bound: cfg.maxQueue }, 'offline queue over its bound: oldest entries dropped from the queue (history keeps them)'),
    isOnline: (deviceId) => broker?.isConnected(deviceId) ?? false
  })
  const metrics = createMetrics()

  const devices = new DeviceService(stores.directory, cfg.maxDevicesPerUser)
  await devices.init()
  const chats = new ChatService(stores.directory, cfg.maxGroupMembers)
  await chats.init()
  const settings = new SettingsService(stores.directory)
  await settings.init()
  const blocks = new BlockService(stores.directory)
  await blocks.init()
  const sender = cfg.codeWebhookUrl ? new WebhookCodeSender(cfg.codeWebhookUrl, cfg.codeWebhookSecret) : new LogCodeSender(log)
  const registration = new RegistrationService(stores.directory, devices, sender, {
    ttlSeconds: cfg.otpTtlSeconds,
    maxAttempts: cfg.otpMaxAttempts,
    perPhonePerHour: cfg.otpRequestsPerPhonePerHour,
    perIpPerHour: cfg.otpRequestsPerIpPerHour,
    returnCodes: cfg.devReturnCodes
  })
  if (cfg.devReturnCodes) log.warn('MQCHAT_DEV_RETURN_CODES is on: registration responses include the one-time code. Never use this in production.')

  let backend: MediaBackend
  if (cfg.mediaBackend === 's3') {
    const s3 = new S3Backend({
      endpoint: cfg.s3Endpoint, region: cfg.s3Region, bucket: cfg.s3Bucket, forcePathStyle: cfg.s3ForcePathStyle,
      accessKeyId: cfg.s3AccessKeyId, secretAccessKey: cfg.s3SecretAccessKey
    })
    await s3.ensureBucket()
    backend = s3
  } else {
    backend = new LocalBackend(new LocalBlobStore(cfg.dataDir), UrlSigner.fromDataDir(cfg.dataDir, cfg.mediaSecret))
  }
  const media = new MediaService(stores.media, backend, chats, {
    maxBytes: { image: cfg.mediaMaxImageBytes, audio: cfg.mediaMaxAudioBytes, video: cfg.mediaMaxVideoBytes, document: cfg.mediaMaxDocumentBytes },
    quotaBytesPerHour: cfg.mediaQuotaBytesPerHour,
    uploadUrlSeconds: cfg.mediaUploadUrlSeconds,
    downloadUrlSeconds: cfg.mediaDownloadUrlSeconds
  })
  const inbox: InboxPublisher = {
    publish: (deviceId, payload) => broker ? broker.inbox.publish(deviceId, payload) : Promise.reject(new Error('broker not started'))
  }
  const bridge = new Bridge(stores.history, chats, devices, blocks, inbox, log.child({ part: 'bridge' }), metrics, {
    maxMessageBytes: cfg.maxMessageBytes,
    editWindowMs: cfg.editWindowSeconds * 1000,
    deleteWindowMs: cfg.deleteWindowSeconds * 1000,
    maxForwardTargets: cfg.forwardMaxChats
  }, media)

  const receipts = new Receipts(stores.history, chats, devices, settings, bridge.sendTo)
  // Between a blocked pair, nothing ephemeral crosses their direct chat.
  const unblockedDirect = (from: string, to: string, chatId: string): boolean =>
    !(chatId.startsWith('dm_') && (blocks.has(from, to) || blocks.has(to, from)))
  const typing = new Typing(chats, devices, (deviceId, payload) => broker?.live(deviceId, payload), cfg.typingIntervalMs, unblockedDirect)
  const handlers = {
    msg: (d: Device, chatId: string, p: Buffer) => bridge.acceptMessage(d, chatId, p),
    receipt: (d: Device, chatId: string, p: Buffer) => receipts.accept(d, chatId, p),
    typing: (d: Device, chatId: string, p: Buffer) => typing.accept(d, chatId, p)
  }
  const limiter = new PublishLimiter(cfg.publishRatePerSecond, cfg.publishBurst)
  const presence = new PresenceService(settings, (userId, payload) => broker?.presence(userId, payload), cfg.presenceCoalesceMs)
  const mayWatch = (watcher: string, target: string): boolean => watcher === target || (chats.sharesChat(watcher, target) && !blocks.has(target, watcher))
  const sessions = {
    connected: (d: Device) => {
      presence.connected(d.userId)
      const dropped = persistence.takeOverflow(d.id)
      if (dropped > 0) bridge.sendTo(d.id, syncEvent('queue_overflow', dropped), 'sync')
    },
    disconnected: (d: Device) => presence.disconnected(d.userId)
  }
  broker = await startBroker(cfg, { persistence, devices, bridge, handlers, policy: subscriptionPolicy(mayWatch), sessions, limiter, log: log.child({ part: 'broker' }), metrics })
  presence.restore(await retainedPresence(persistence))
  let ready = false
  const api = await buildApi({
    directory: stores.directory,
    history: stores.history,
    devices,
    chats,
    registration,
    bridge,
    receipts,
    settings,
    presence,
    mayWatch,
    blocks,
    limiter,
    metrics,
    info: { mqttPort: broker.mqttPort, wsPort: broker.wsPort, wsPath: cfg.wsPath },
    ready: () => ready
  }, log, { media })
  await api.listen({ port: cfg.httpPort, host: cfg.host })

  const retention = await startRetention(stores.history, media, {
    historyDays: cfg.retentionDays, mediaDays: cfg.mediaRetentionDays, mediaUnreferencedHours: cfg.mediaUnreferencedHours, intervalMinutes: cfg.purgeIntervalMinutes
  }, log.child({ part: 'retention' }))
  const redone = await bridge.redoPendingFanout()
  if (redone > 0) log.info({ messages: redone }, 'finished fan-out interrupted by the last stop')

  const ports: Ports = { mqtt: broker.mqttPort, ws: broker.wsPort, http: (api.server.address() as AddressInfo).port }
  const portsFile = join(cfg.dataDir, 'ports.json')
  writeFileSync(`${portsFile}.tmp`, JSON.stringify({ ...ports, host: cfg.host, pid: process.pid }) + '\n')
  renameSync(`${portsFile}.tmp`, portsFile)
  ready = true
  log.info({ ports, dataDir: cfg.dataDir }, `mqchat ready: MQTT tcp ${ports.mqtt}, MQTT ws ${ports.ws}${cfg.wsPath}, HTTP ${ports.http}`)

  let closing: Promise<void> | undefined
  return {
    ports,
    close () {
      closing ??= (async () => {
        ready = false
        presence.stop()
        retention.stop()
        await broker.stopListening()
        await api.close()
        await broker.close()
        await stores.close()
      })()
      return closing
    }
  }
}

/** The last published presence of every user, from the retained store. */
async function retainedPresence (persistence: SqlitePersistence): Promise<Array<[string, PresenceRecord]>> {
  const out: Array<[string, PresenceRecord]> = []
  for await (const packet of persistence.createRetainedStream('presence/+') as AsyncIterable<{ payload: Buffer }>) {
    try {
      const p = JSON.parse(packet.payload.toString('utf8')) as { user: string, state: 'online' | 'offline', last_seen?: number }
      out.push([p.user, { state: p.state, lastSeen: p.last_seen ?? null }])
    } catch { /* not ours */ }
  }
  return out
}
