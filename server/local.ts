// The local profile: everything in one process, state in SQLite files under
// the data directory (mqchat.db: directory and history; broker.db: MQTT
// sessions, queues, retained messages).
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { RecentMessages } from '../bridge/recent.js'
import { Inbox } from '../broker/inbox.js'
import { startRetention } from './retention.js'
import { startBroker, type Broker } from '../broker/index.js'
import { SqlitePersistence } from '../broker/persistence/sqlite.js'
import { PresenceService, type PresenceRecord } from '../core/presence.js'
import { subscriptionPolicy } from '../plugins/authorize-subscribe.js'
import { presenceUserOf } from '../plugins/topics.js'
import type { Config } from '../lib/config.js'
import { createMetrics } from '../lib/metrics.js'
import { openSqliteStores } from '../store/sqlite/index.js'
import type { Device } from '../store/types.js'
import { buildDomain, closeOnce, connectInfo, httpPort, httpsPort, startApi, tlsCertificate, warnPlaintext, writePorts, type Ports, type RunningServer } from './domain.js'
import { startXmpp } from '../xmpp/index.js'
import { startPush, withPush } from '../push/index.js'
import { fileSizes, startAdmin } from '../api/admin.js'

export type { Ports, RunningServer } from './domain.js'

export async function startLocal (cfg: Config, log: Logger): Promise<RunningServer> {
  mkdirSync(cfg.dataDir, { recursive: true })
  const stores = openSqliteStores(cfg.dataDir, cfg.sqliteSynchronous)
  // The broker is started last; the parts built before it reach it through this.
  let broker: Broker | undefined
  // Device inboxes are positions in history (broker/inbox.ts), not queues in
  // the session store; the store keeps subscriptions, retained messages, wills
  // and QoS 2 state, and queues only for clients other than devices (open access).
  const persistence = new SqlitePersistence({
    path: join(cfg.dataDir, 'broker.db'),
    synchronous: cfg.sqliteSynchronous,
    maxQueue: cfg.maxQueue,
    onOverflow: (deviceId, dropped) => log.info({ deviceId, dropped, bound: cfg.maxQueue }, 'offline queue over its bound: oldest entries dropped from the queue (history keeps them)'),
    isOnline: (deviceId) => broker?.isConnected(deviceId) ?? false,
    // Presence changes with every connect: written in batches, as inbox positions are.
    lazyRetained: { ms: cfg.inboxFlushMs, topic: (topic) => presenceUserOf(topic) !== undefined }
  })
  const metrics = createMetrics()
  let presence!: PresenceService
  const d = await buildDomain(cfg, stores, log, metrics, () => broker, {
    presence: (settings, publish) => (presence = new PresenceService(settings, publish, cfg.presenceCoalesceMs))
  })
  const { bridge, devices } = d
  const inbox = new Inbox(stores.inbox, stores.history, d.chats, devices, new RecentMessages(cfg.inboxCacheMessages, 256), log.child({ part: 'inbox' }), {
    window: cfg.inboxWindow, flushMs: cfg.inboxFlushMs, maxEvents: cfg.maxQueue, pageSize: 500, events: stores.inbox
  })
  // An erased account's messages are tombstones now: cached copies of them go.
  d.account.historyChangedWith(async (chats) => { inbox.expired(chats) })
  // A new device is owed what its chats get after its creation; a revoked one is forgotten.
  devices.onCreate(async (dev) => inbox.provision(dev.id, dev.userId))
  devices.on('revoked', (dev) => inbox.drop(dev.id))
  const sessions = {
    connected: (dev: Device) => presence.connected(dev.userId),
    disconnected: (dev: Device) => presence.disconnected(dev.userId)
  }
  const tls = tlsCertificate(cfg, log)
  broker = await startBroker({ ...cfg, tls, repairInboxes: true, inbox }, { persistence, devices, bridge, handlers: d.handlers, policy: subscriptionPolicy(d.mayWatch), sessions, limiter: d.limiter, log: log.child({ part: 'broker' }), metrics })
  presence.restore(await retainedPresence(persistence))
  // Devices away are woken by a push (when a provider is configured); a message is delivered whether or not it goes out.
  const push = startPush(cfg, d, stores.directory, {
    isAway: (deviceId) => !(broker?.isConnected(deviceId) ?? false),
    positions: (deviceId) => stores.inbox.positions(deviceId)
  }, metrics, log.child({ part: 'push' }))
  bridge.deliverByPositions(push ? withPush(inbox, push) : inbox)
  if (push) d.chats.on('change', (c) => push.chatChanged(c))
  let ready = false
  const info = connectInfo(cfg, broker.mqttPort, broker.wsPort)
  const api = await startApi(cfg, d, stores, metrics, info, () => ready, log, tls)
  if (tls) info.tls = { mqttPort: broker.mqttTlsPort, wssPort: broker.wssPort, httpsPort: httpsPort(api) }

  const xmpp = cfg.xmppEnabled ? await startXmpp(cfg, { aedes: broker.aedes, devices, chats: d.chats, history: stores.history, log: log.child({ part: 'xmpp' }), tls }) : undefined
  if (xmpp && info.xmpp) Object.assign(info.xmpp, { port: xmpp.port, wsPort: xmpp.wsPort })
  const redone = await bridge.redoPendingFanout()
  if (redone > 0) log.info({ messages: redone }, 'finished fan-out interrupted by the last stop')
  // After the redone fan-out, which also links the media of messages stored just before a crash:
  // the media lifecycle must not take such media for never sent.
  const retention = await startRetention(stores.history, d.media, {
    historyDays: cfg.retentionDays, mediaDays: cfg.mediaRetentionDays, mediaUnreferencedHours: cfg.mediaUnreferencedHours, intervalMinutes: cfg.purgeIntervalMinutes, expirySweepSeconds: cfg.expirySweepSeconds
  }, log.child({ part: 'retention' }), () => inbox.purged(), (chats) => inbox.expired(chats))

  // The operator's channel, on the loopback address only, when there is an admin token.
  const admin = cfg.adminToken !== ''
    ? await startAdmin({
      directory: stores.directory, history: stores.history, profiles: stores.profiles, devices, chats: d.chats, account: d.account, metrics,
      load: async () => ({
        queues: { inbox_events: [...stores.inbox.eventCounts().values()].reduce((a, b) => a + b, 0) },
        stores: { sqlite_bytes: await fileSizes(cfg.dataDir, ['mqchat.db', 'mqchat.db-wal']), media_bytes: await fileSizes(join(cfg.dataDir, 'media')) }
      })
    }, { token: cfg.adminToken, port: cfg.adminPort, node: 'local' }, log.child({ part: 'admin' }))
    : undefined
  const ports: Ports = { mqtt: broker.mqttPort, ws: broker.wsPort, http: httpPort(api), xmpp: xmpp?.port ?? 0, xmppWs: xmpp?.wsPort ?? 0, mqttTls: broker.mqttTlsPort, wss: broker.wssPort, https: httpsPort(api), admin: httpPort(admin) }
  writePorts(cfg, ports)
  warnPlaintext(cfg, log, ports)
  ready = true
  const secure = tls ? `, MQTT tls ${ports.mqttTls}, MQTT wss ${ports.wss}${cfg.wsPath}, HTTPS ${ports.https}` : ''
  log.info({ ports, dataDir: cfg.dataDir, node: process.version }, `mqchat ready: MQTT tcp ${ports.mqtt}, MQTT ws ${ports.ws}${cfg.wsPath}, HTTP ${ports.http}${secure}${xmpp ? `, XMPP ${ports.xmpp}, XMPP ws ${ports.xmppWs}` : ''}`)

  return {
    ports,
    // The server's certificate (every TLS listener, XMPP's too unless it has its own), then XMPP's own.
    reload: () => [tls?.reload() ?? false, xmpp?.reload() ?? false].some(Boolean),
    close: closeOnce(async () => {
      ready = false
      presence.stop()
      retention.stop()
      await push?.stop()
      await broker.stopListening()
      await xmpp?.close()
      await api.close()
      await admin?.close()
      await broker.close()
      inbox.close()
      await stores.close()
    })
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
