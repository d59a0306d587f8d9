// The cluster profile: the same product on distributed engines (DESIGN §2, §5).
//
//   broker role  MQTT listeners. A chat message is checked (member,
//                envelope) and appended to the chat stream before PUBACK;
//                receipts and typing are handled on the node. Devices are
//                served chat messages from their positions (broker/inbox.ts
//                over cluster/positions.ts), told of new ones by the feed of
//                committed messages. Sessions, event queues and retained
//                messages in Redis (aedes-persistence-redis), routing of
//                other publishes between nodes over Redis (mqemitter-redis).
//   bridge role  a chat stream worker: seq, history in MongoDB, the feed of
//                committed messages (cluster/commit-feed.ts), then the entry
//                is acked.
//   api role     the HTTP API. Its chat changes reach every node's mirror
//                (the ACL) through the directory bus before it answers; its
//                message sends go through the chat stream (cluster/stream-sends.ts).
//
// Every role joins the MQTT cluster as an aedes node (listeners only for the
// broker role), so whatever events it publishes (receipts, `chat` events,
// refusals) are queued in the devices' sessions in Redis and routed to
// their brokers.
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { redisPersistence } from '../broker/persistence/redis.js'
import type { Logger } from 'pino'
import { startBroker, type Broker } from '../broker/index.js'
import { parseEnvelope, clientIdOf } from '../bridge/envelope.js'
import { subscriptionPolicy } from '../plugins/authorize-subscribe.js'
import { SINK_TOPIC } from '../plugins/topics.js'
import { DomainError } from '../core/errors.js'
import type { Config } from '../lib/config.js'
import { createMetrics } from '../lib/metrics.js'
import { openMongoStores } from '../store/mongo/database.js'
import type { Device } from '../store/types.js'
import { BridgeWorker } from '../cluster/bridge-worker.js'
import { ChatStream, type StreamEntry } from '../cluster/chat-stream.js'
import { DirectoryBus, type DirectoryChange } from '../cluster/directory-bus.js'
import { redisCommandCounts, redisConnection, type RedisConnection } from '../cluster/redis.js'
import { RedisBuckets, redisCounters } from '../cluster/rate.js'
import { ClusterPresence } from '../cluster/presence.js'
import { DeviceSessions } from '../cluster/device-sessions.js'
import { startPush, withPush } from '../push/index.js'
import { buildDomain, closeOnce, connectInfo, httpPort, httpsPort, startApi, tlsCertificate, warnPlaintext, writePorts, type RunningServer } from './domain.js'
import { startXmpp } from '../xmpp/index.js'
import { startRetention } from './retention.js'
import { startAdmin } from '../api/admin.js'
import { CommitFeed, recentKey } from '../cluster/commit-feed.js'
import { partitionOf } from '../cluster/chat-stream.js'
import { RecentThenHistory, RedisPositions, subscribeFeed } from '../cluster/positions.js'
import { Inbox } from '../broker/inbox.js'
import { forwardEntry, reply, StreamSends } from '../cluster/stream-sends.js'
import { sentOf } from '../bridge/sends.js'
import type { Accepted } from '../bridge/index.js'
import { RecentMessages } from '../bridge/recent.js'

const require = createRequire(import.meta.url)
// A CommonJS package without type declarations, used through aedes' `mq` option.
const mqemitterRedis = require('mqemitter-redis') as (opts: object) => {
  close (cb: () => void): void
  emit (packet: { topic: string }, done?: (err?: Error) => void): void
  state: NodeJS.EventEmitter
}

/**
 * The connections whose commands of one turn go out as one write
 * (cluster/redis.ts): those where a turn issues many independent commands
 * (a publish limit check and an XADD per publish, position raises). A
 * connection that subscribes or blocks must not be pipelined; the others
 * send about one command a turn, where the pipeline's own work only adds
 * (pipelining all of them measured no better: bench/README.md).
 */
const PIPELINED = new Set(['rate', 'stream', 'positions'])

export async function startCluster (cfg: Config, log: Logger): Promise<RunningServer> {
  const role = cfg.role
  const runs = (r: 'broker' | 'bridge' | 'api'): boolean => role === 'all' || role === r
  const connections: RedisConnection[] = []
  const redis = (name: string): RedisConnection => {
    const c = redisConnection(cfg, name, log.child({ part: 'redis' }), { pipelined: PIPELINED.has(name) })
    connections.push(c)
    return c
  }

  const stores = await openMongoStores({ url: cfg.mongoUrl })
  const metrics = createMetrics()
  let broker: Broker | undefined
  // Rate limits count in Redis: one budget per device (MQTT and HTTP, any node) and per phone and address.
  // Presence counts every node's connections, in Redis.
  const rateConn = redis('rate')
  let presence!: ClusterPresence
  const d = await buildDomain(cfg, stores, log, metrics, () => broker, {
    publishBuckets: new RedisBuckets(rateConn, 'publish', cfg.publishRatePerSecond, cfg.publishBurst),
    counters: redisCounters(rateConn),
    presence: (settings, publish) => (presence = new ClusterPresence(redis('presence'), cfg.nodeId, settings, publish, cfg.presenceCoalesceMs, log.child({ part: 'presence' })))
  })

  // A chat message's outbox is its stream entry (acknowledged after the fan-out), not a flag in history.
  d.bridge.streamIsOutbox()
  // Messages are delivered by positions: whoever commits one (a bridge worker; an API node for HTTP sends)
  // tells every broker through the feed; a new device starts at the end of its chats.
  const feed = new CommitFeed(redis('feed'), {
    partitions: cfg.streamPartitions, recentPerChat: cfg.clusterRecentPerChat, recentTtlSeconds: cfg.clusterRecentTtlHours * 3600
  })
  d.bridge.deliverByPositions(feed)
  const positions = new RedisPositions(redis('positions'), cfg.streamPartitions)
  d.devices.onCreate(async (dev) => { await positions.provision(dev.id, d.chats.chatIdsOf(dev.userId)) })
  let inbox: Inbox | undefined
  if (runs('broker')) {
    const served = new Inbox(positions, new RecentThenHistory(redis('recent'), stores.history, cfg.streamPartitions), d.chats, d.devices,
      new RecentMessages(cfg.inboxCacheMessages, 256), log.child({ part: 'inbox' }), {
        window: cfg.inboxWindow, flushMs: cfg.inboxFlushMs, maxEvents: cfg.maxQueue, pageSize: 500
      })
    inbox = served
    d.devices.on('revoked', (dev) => served.drop(dev.id))
    const learnLast = (): void => {
      positions.lastSeqsNow().then((last) => served.raiseLast(last), (err: unknown) => log.error({ err }, 'reading chats\' last seqs failed'))
    }
    await subscribeFeed(redis('feed-sub'), { committed: (m) => served.committed(m), resumed: learnLast }, log.child({ part: 'feed' }))
    // Subscribed first, then read: a message committed in between is in one or the other (or both).
    served.raiseLast(await positions.lastSeqsNow())
  }

  // Directory mirrors follow changes made on any node.
  const bus = new DirectoryBus(redis('directory-pub'), redis('directory-sub'), cfg.nodeId, log.child({ part: 'directory' }), cfg.directoryAckTimeoutMs)
  await bus.start({
    apply: async (c: DirectoryChange) => {
      if (c.kind === 'chat') await d.chats.refresh(c.id)
      else if (c.kind === 'device') await d.devices.refresh(c.id)
      else if (c.kind === 'settings') await d.settings.refresh(c.id)
      else if (c.kind === 'push') await d.push.refresh(c.id)
      else if (c.kind === 'keys') await d.keys.refresh(c.id)
      else if (c.kind === 'history') inbox?.expired([c.id])
      else if (c.kind === 'ban') await d.devices.refreshBan(c.id)
      else await d.blocks.init()
    },
    reload: async () => { await Promise.all([d.chats.init(), d.devices.init(), d.settings.init(), d.blocks.init(), d.push.init(), d.keys.init()]) }
  })
  d.chats.notifyWith((id) => bus.publish({ kind: 'chat', id }))
  d.devices.notifyWith((id) => bus.publish({ kind: 'device', id }))
  d.settings.notifyWith((id) => bus.publish({ kind: 'settings', id }))
  d.blocks.notifyWith(() => bus.publish({ kind: 'blocks' }))
  d.push.notifyWith((id) => bus.publish({ kind: 'push', id }))
  d.keys.notifyWith((id) => bus.publish({ kind: 'keys', id }))
  d.devices.notifyBanWith((id) => bus.publish({ kind: 'ban', id }))
  // Stale cached copies (an erased sender's messages, expired ones): the chats' recent caches in Redis, and each broker's own.
  const recentRedis = redis('recent-drop')
  const dropRecent = async (chats: string[]): Promise<void> => {
    for (const id of chats) await recentRedis.del(recentKey(partitionOf(id, cfg.streamPartitions), id))
  }
  d.account.historyChangedWith(async (chats) => {
    await dropRecent(chats)
    for (const id of chats) await bus.publish({ kind: 'history', id })
  })

  // Which devices are connected to some broker: brokers record theirs, pushes read them.
  const deviceSessions = new DeviceSessions(redis('device-sessions'), cfg.nodeId, log.child({ part: 'device-sessions' }))
  // Pushes are decided where messages are committed (a chat's partition has one worker at a time, so one
  // node coalesces a chat's pushes) and where chat changes are made (the API).
  const push = runs('bridge') || runs('api')
    ? startPush(cfg, d, stores.directory, {
      isAway: async (deviceId) => !(await deviceSessions.isConnected(deviceId)),
      positions: async (deviceId) => await positions.positions(deviceId)
    }, metrics, log.child({ part: 'push' }))
    : undefined
  if (push) {
    d.bridge.deliverByPositions(withPush(feed, push))
    d.chats.on('change', (c) => push.chatChanged(c))
  }

  // The MQTT layer: sessions and routing in Redis.
  const persistence = redisPersistence({ conn: redis('sessions'), maxQueue: cfg.maxQueue })
  const routerSub = redis('router-sub')
  const mq = mqemitterRedis({ pubConn: redis('router-pub'), subConn: routerSub, concurrency: cfg.emitterConcurrency })
  // mqemitter-redis re-emits its connections' errors here; unhandled, one Redis restart would end the process.
  // The connections log them already (cluster/redis.ts) and reconnect on their own.
  mq.state.on('error', () => {})
  // aedes routes every accepted PUBLISH through the emitter, chat publishes too (pointed at SINK_TOPIC once
  // the chat layer has handled them): one Redis PUBLISH each, which no node can want (nobody may subscribe there).
  const emit = mq.emit.bind(mq)
  mq.emit = (packet, done) => {
    if (packet.topic === SINK_TOPIC) { process.nextTick(() => done?.()); return }
    emit(packet, done)
  }

  // Brokers and API nodes append to the chat stream (MQTT publishes, HTTP sends).
  const stream = runs('broker') || runs('api') ? new ChatStream(redis('stream'), cfg.streamPartitions, { minReplicas: cfg.redisMinReplicas, waitMs: cfg.redisReplicaWaitMs }) : undefined
  const handlers = {
    ...d.handlers,
    // Checked here, sequenced by a bridge worker: the PUBACK follows the append.
    msg: async (dev: Device, chatId: string, payload: Buffer) => {
      d.bridge.checkMember(dev, chatId)
      parseEnvelope(payload, cfg.maxMessageBytes)
      if (!stream) throw new Error('this node does not append to the chat stream')
      return stream.append(chatId, dev.id, payload)
    }
  }
  const sessions = {
    connected: (dev: Device) => { d.presence.connected(dev.userId); deviceSessions.connected(dev.id) },
    disconnected: (dev: Device) => { d.presence.disconnected(dev.userId); deviceSessions.disconnected(dev.id) }
  }
  // What an earlier run of this node left in the presence counts and device sessions is cleared before devices connect.
  const recovered = runs('broker') ? await presence.recover() : []
  if (runs('broker')) await deviceSessions.recover()
  const tls = tlsCertificate(cfg, log)
  broker = await startBroker({ ...cfg, tls, listen: runs('broker'), mq, inbox, eventsQueued: true }, {
    persistence, devices: d.devices, bridge: d.bridge, handlers, policy: subscriptionPolicy(d.mayWatch), sessions, limiter: d.limiter, log: log.child({ part: 'broker' }), metrics
  })

  if (runs('broker')) await presence.start(recovered)

  // Routing between brokers is Redis pub/sub: at most once. Inbox copies routed
  // while this node's subscription was down are in the devices' Redis queues,
  // but aedes sends a queue only on CONNECT; so the node's devices are asked
  // to reconnect (they get the queue then, repeats carry the same seq).
  let routerLost = false
  routerSub.on('close', () => { routerLost = true })
  routerSub.on('ready', () => {
    if (!routerLost || !runs('broker')) return
    routerLost = false
    const closed = broker?.disconnectAll() ?? 0
    log.warn({ clients: closed }, 'router subscription restored: closed this broker\'s connections so devices reconnect and receive what was queued meanwhile')
  })

  let worker: BridgeWorker | undefined
  if (runs('bridge')) {
    // HTTP sends' outcomes go back to their API node on this connection.
    const replies = redis('replies')
    // Resolves once the entry has its place in its chat's order (the bridge's queue), with its outcome to come.
    const handle = async (e: StreamEntry, redelivered: boolean): Promise<{ done: Promise<void> }> => {
      const dev = d.devices.get(e.deviceId) ?? await stores.directory.getDevice(e.deviceId)
      if (!dev) {
        log.warn({ deviceId: e.deviceId, chat: e.chatId }, 'chat stream entry from an unknown device dropped')
        if (e.reply !== undefined) await reply(replies, e.reply, { refused: new DomainError('unauthorized', 'the device is unknown', 401), device: e.deviceId, chat: e.chatId })
        return { done: Promise.resolve() }
      }
      const f = e.forward ? forwardEntry(e.payload) : undefined
      if (e.forward && !f) {
        log.error({ entry: e.id, chat: e.chatId }, 'unreadable forward entry in the chat stream dropped')
        return { done: Promise.resolve() }
      }
      const id = f ? f.id : clientIdOf(e.payload)
      const outcome = async (accepting: Promise<Accepted>): Promise<void> => {
        try {
          const accepted = await accepting
          await accepted.delivered
          if (e.reply !== undefined) await reply(replies, e.reply, { sent: sentOf(accepted) })
        } catch (err) {
          if (!(err instanceof DomainError)) throw err
          // An HTTP send is answered with its refusal; a publish's refusal is an `error` inbox event.
          if (e.reply !== undefined) await reply(replies, e.reply, { refused: err, device: dev.id, chat: e.chatId, id })
          else d.bridge.refuse(dev.id, { code: err.code, message: err.message, topic: `chat/${e.chatId}/msg`, chat: e.chatId, id, ...(err.details !== undefined ? { details: err.details } : {}) })
        }
      }
      // A forward copy reads its source before it takes its place: it is done before the chat's next entry is given.
      if (f) {
        await outcome(d.bridge.forwardCopy(dev, f.from, f.seq, e.chatId, f.id, { redelivered }))
        return { done: Promise.resolve() }
      }
      // acceptMessage takes the message's place in the chat's queue before its first await.
      return { done: outcome(d.bridge.acceptMessage(dev, e.chatId, e.payload, { redelivered })) }
    }
    // On Redis Cluster each partition is read on a connection of its own (a read of several streams would cross slots).
    const readerFor = cfg.redisClusterNodes !== '' ? (p: number) => redisConnection(cfg, `worker-read-${p}`, log.child({ part: 'redis' })) : undefined
    worker = new BridgeWorker(redis('worker'), readerFor ? undefined : redis('worker-read'), cfg.nodeId, handle, log.child({ part: 'worker' }), { partitions: cfg.streamPartitions, readerFor })
    await worker.start()
  }

  let ready = false
  const info = runs('broker') ? connectInfo(cfg, broker.mqttPort, broker.wsPort) : connectInfo(cfg, cfg.mqttPort, cfg.wsPort)
  // HTTP sends go through the chat stream too: each chat has one writer, its partition's worker.
  let sends: StreamSends | undefined
  if (runs('api') && stream) {
    sends = new StreamSends(stream, redis('sent-sub'), d.bridge, cfg.nodeId, { waitMs: cfg.httpSendWaitMs, maxMessageBytes: cfg.maxMessageBytes }, log.child({ part: 'sends' }))
    await sends.start()
  }
  const api = runs('api') ? await startApi(cfg, d, stores, metrics, info, () => ready, log, tls, sends) : undefined
  if (tls && runs('broker')) info.tls = { mqttPort: broker.mqttTlsPort, wssPort: broker.wssPort, httpsPort: httpsPort(api) }
  const retention = runs('api')
    ? await startRetention(stores.history, d.media, {
      historyDays: cfg.retentionDays, mediaDays: cfg.mediaRetentionDays, mediaUnreferencedHours: cfg.mediaUnreferencedHours, intervalMinutes: cfg.purgeIntervalMinutes, expirySweepSeconds: cfg.expirySweepSeconds
    }, log.child({ part: 'retention' }), () => {}, (chats) => { dropRecent(chats).catch((err: unknown) => log.error({ err }, 'dropping expired messages from the recent caches failed')) })
    : undefined

  const xmpp = cfg.xmppEnabled && runs('broker') ? await startXmpp(cfg, { aedes: broker.aedes, devices: d.devices, chats: d.chats, history: stores.history, log: log.child({ part: 'xmpp' }), tls }) : undefined
  if (xmpp && info.xmpp) Object.assign(info.xmpp, { port: xmpp.port, wsPort: xmpp.wsPort })
  // The operator's channel on API nodes, on the loopback address only, when there is an admin token.
  const admin = runs('api') && cfg.adminToken !== ''
    ? await startAdmin({
      directory: stores.directory, history: stores.history, profiles: stores.profiles, devices: d.devices, chats: d.chats, account: d.account, metrics,
      load: async () => ({ connections: await deviceSessions.count(), queues: {}, stores: await stores.sizes() })
    }, { token: cfg.adminToken, port: cfg.adminPort, node: cfg.nodeId }, log.child({ part: 'admin' }))
    : undefined
  const ports = { mqtt: broker.mqttPort, ws: broker.wsPort, http: httpPort(api), xmpp: xmpp?.port ?? 0, xmppWs: xmpp?.wsPort ?? 0, mqttTls: broker.mqttTlsPort, wss: broker.wssPort, https: httpsPort(api), admin: httpPort(admin) }
  writePorts(cfg, ports)
  warnPlaintext(cfg, log, ports)
  ready = true
  log.info({ ports, role, nodeId: cfg.nodeId, node: process.version }, `mqchat ${role} node ${cfg.nodeId} ready (cluster profile): MQTT tcp ${ports.mqtt}, MQTT ws ${ports.ws}, HTTP ${ports.http}`)

  return {
    ports,
    // The server's certificate (every TLS listener, XMPP's too unless it has its own), then XMPP's own.
    reload: () => [tls?.reload() ?? false, xmpp?.reload() ?? false].some(Boolean),
    counters: () => ({ mongoCommands: stores.commands(), redisCommands: redisCommandCounts() }),
    close: closeOnce(async () => {
      ready = false
      retention?.stop()
      await broker?.stopListening()
      await xmpp?.close()
      if (runs('broker') && broker) {
        // Devices are sent away first (they reconnect to other brokers); presence settles while this node can still publish.
        broker.disconnectAll()
        for (let i = 0; i < 40 && broker.connections() > 0; i++) await sleep(50)
        await presence.stop()
        await deviceSessions.flush()
      }
      await worker?.stop()
      await push?.stop()
      await bus.stop()
      await api?.close()
      await admin?.close()
      await broker?.close()
      inbox?.close()
      await inbox?.idle()
      await new Promise<void>((resolve) => mq.close(resolve))
      await stores.close()
      for (const c of connections) c.disconnect()
    })
  }
}
