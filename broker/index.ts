// The MQTT broker: aedes with mqchat's hooks, on TCP and on WebSocket.
// It knows MQTT; the chat rules it enforces come from plugins/.
import { createServer as createNetServer, type Server as NetServer, type AddressInfo } from 'node:net'
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'
import mqttPacket from 'mqtt-packet'
import type { Logger } from 'pino'
import { KeyedQueue } from '../lib/serial.js'
import { timedOut } from '../lib/timeout.js'
import type { Bridge, InboxPublisher } from '../bridge/index.js'
import type { DeviceService } from '../core/devices.js'
import type { Metrics } from '../lib/metrics.js'
import type { PublishLimiter } from '../lib/rate.js'
import type { Device } from '../store/types.js'
import { authenticate } from '../plugins/authenticate.js'
import { authorizeSubscribe, type SubscriptionPolicy } from '../plugins/authorize-subscribe.js'
import { authorizePublish, type ChatPublishHandlers } from '../plugins/authorize-publish.js'
import { deviceOf } from '../plugins/session.js'
import { inboxTopic, liveTopic, presenceTopic, presenceUserOf } from '../plugins/topics.js'
import { disconnectV5, guardPackets, type PacketParser } from './packet-guard.js'
import { announceOnConnack, keepReceiveMaximum, refuseConnackWith } from './outbound.js'
import { limitUnreleased } from './qos2-window.js'
import { emptyClientIdRule, markRedeliveries, withinMaximumPacketSize } from './conformance.js'
import { catchUpFirst } from './catch-up.js'
import { forgetConnectPacket, lightenParser } from './parser-memory.js'
import { Admission, perAddressBound } from '../lib/admission.js'
import type { TlsCertificate } from '../lib/tls.js'
import type { AuthorizeForwardHook } from '../plugins/hooks.js'
import { KEEP_ALIVE_TIMEOUT, NOT_AUTHORIZED, QUOTA_EXCEEDED, RECEIVE_MAXIMUM_EXCEEDED, SERVER_BUSY, UNSPECIFIED_ERROR } from '../plugins/reason-codes.js'
import type { Inbox, InboxConnection } from './inbox.js'

/** The subset of an aedes persistence the server itself calls. */
export interface BrokerPersistence {
  addSubscriptions (client: { id: string }, subs: Array<{ topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }>): Promise<unknown>
  cleanSubscriptions (client: { id: string }): Promise<unknown>
  createRetainedStream (pattern: string): NodeJS.ReadableStream
  destroy (): Promise<void>
  subscriptionsByClient (client: { id: string }): Promise<Array<{ topic: string }>>
  delWill (client: { id: string }): Promise<unknown>
  purgeClient?: (clientId: string) => Promise<void>
  outgoingClearMessageId (client: { id: string }, packet: { messageId?: number }): Promise<unknown>
}

export interface BrokerOptions {
  host: string
  mqttPort: number
  /** With a certificate: MQTT over TLS and over WSS on these ports (lib/tls.ts). */
  tls?: TlsCertificate
  mqttTlsPort?: number
  wssPort?: number
  wsPort: number
  wsPath: string
  maxPacketBytes: number
  maxTopicLevels: number
  maxInflightInbound: number
  /** Topic filters one client may hold at a time (MQCHAT_MQTT_MAX_SUBSCRIPTIONS). */
  maxSubscriptions: number
  connectTimeoutMs: number
  drainTimeoutMs: number
  keepaliveLimitSeconds: number
  /** A device's queue bound (MQCHAT_MAX_QUEUE); also bounds the live messages held for it while its queue is replayed (broker/catch-up.ts). */
  maxQueue: number
  /** Messages aedes routes at once (mqemitter concurrency). */
  emitterConcurrency: number
  /** Cluster: this node's stable broker id, and the shared router (mqemitter-redis). */
  nodeId?: string
  mq?: unknown
  /** False: no listeners (a bridge worker or API node that only publishes into the cluster). */
  listen?: boolean
  /** Connections signed in at once (MQCHAT_MQTT_MAX_CONNECTIONS); a CONNECT past it gets "server busy". */
  maxConnections: number
  /** Connections that have not completed CONNECT, at once: overall, and per client address. */
  maxUnauthenticated: number
  maxUnauthenticatedPerAddress: number
  /** Set when a load balancer is in front (MQCHAT_TRUST_PROXY): the per-address cap is then not applied. */
  trustProxy?: string
  /** Check at start that every active device has its inbox subscription (cheap only where the store keeps subscriptions in memory). */
  repairInboxes?: boolean
  /** open: aedes' own defaults (anonymous clients, any topic), no chat ACL; development and conformance tests. */
  mqttAccess?: 'chat' | 'open'
  /**
   * The local profile: device inboxes served from positions (broker/inbox.ts),
   * not from aedes' per-device queues. Nothing is published to dev/<id>/inbox
   * through aedes then; the inbox writes to the connection itself.
   */
  inbox?: Inbox
  /**
   * The cluster: with `inbox`, the device inbox events that are not chat
   * messages (receipts, chat changes, refusals) still come through aedes'
   * per-device queues, so a resumed session's live ones are held while its
   * queue is replayed (broker/catch-up.ts).
   */
  eventsQueued?: boolean
}

/** Told when an authenticated device connects and disconnects (presence). */
export interface SessionObserver {
  connected (device: Device): void
  disconnected (device: Device): void
}

export interface Broker {
  aedes: Aedes
  inbox: InboxPublisher
  /** Publishes an ephemeral QoS 0 event to dev/<deviceId>/live: never queued. */
  live (deviceId: string, payload: string): void
  /** Publishes a user's retained presence. */
  presence (userId: string, payload: string): void
  /** Whether a client id has a live connection on this broker. */
  isConnected (clientId: string): boolean
  /** Closes every client connection on this broker (they may reconnect); returns how many. */
  disconnectAll (): number
  /** Connected clients on this node. */
  connections (): number
  mqttPort: number
  wsPort: number
  /** 0 when there is no TLS certificate. */
  mqttTlsPort: number
  wssPort: number
  /** Stops accepting connections. */
  stopListening (): Promise<void>
  /** Closes every client and the broker. */
  close (): Promise<void>
}

/** How long one subscription write to the session store may take before its SUBSCRIBE fails. */
const SUBSCRIPTION_STORE_BOUND_MS = 10_000
/** MQTT 3.1.1's CONNACK return code 3; aedes writes it, and outbound.ts makes it 0x89 Server busy for MQTT 5. */
const SERVER_UNAVAILABLE_V3 = 3
const CHAT_MODE_CONNACK = { retainAvailable: false, wildcardSubscriptionAvailable: false }

/** What the broker reads of an aedes client beyond its typings (aedes 2.0.0-beta.1). */
type AedesClient = Client & {
  conn: NodeJS.WritableStream
  connected: boolean
  connackSent: boolean
  _nextId: number
  /** The client's MQTT 5 Receive Maximum and Maximum Packet Size, from its CONNECT. */
  receiveMaximum?: number
  maximumPacketSize?: number
}

export async function startBroker (
  opts: BrokerOptions,
  deps: { persistence: BrokerPersistence, devices: DeviceService, bridge: Bridge, handlers: ChatPublishHandlers, policy: SubscriptionPolicy, sessions: SessionObserver, limiter: PublishLimiter, log: Logger, metrics: Metrics }
): Promise<Broker> {
  const { persistence, devices, bridge, handlers, policy, sessions, limiter, log, metrics } = deps

  // aedes stores a SUBSCRIBE packet's whole subscription list, as requested,
  // for a persistent client once any filter in it is granted: refused filters
  // included, and at the requested QoS rather than the granted one. Only what
  // the ACL allows, at the QoS it allows, may reach the session store.
  //
  // aedes also calls addSubscriptions once per filter of a SUBSCRIBE, each
  // time with the whole list, all at once. The cluster's Redis store then
  // waits for its own broadcast of the change, keyed by client and first
  // topic, and two such waits at once lose one: that call never returns and
  // the SUBSCRIBE gets no SUBACK. So a client's calls run one at a time.
  const open = opts.mqttAccess === 'open'
  const addSubscriptions = persistence.addSubscriptions.bind(persistence)
  const subscribing = new KeyedQueue()
  const allowedOnly = (client: { id: string }, subs: Parameters<BrokerPersistence['addSubscriptions']>[1]): typeof subs => {
    const device = open ? undefined : devices.get(client.id)
    if (!device) return subs
    return subs.flatMap((s) => {
      const max = policy(device, s.topic)
      return max === undefined ? [] : [{ ...s, qos: Math.min(s.qos, max) }]
    })
  }
  // A call the store never confirms (seen, rarely, in the cluster under load;
  // cause not yet known) must not hold up the client's later ones: after
  // SUBSCRIPTION_STORE_BOUND_MS it fails, aedes closes that connection, and
  // the device's next SUBSCRIBE gets its turn.
  persistence.addSubscriptions = async (client, subs) => await subscribing.run(client.id, async () => {
    if (await timedOut(addSubscriptions(client, allowedOnly(client, subs)), SUBSCRIPTION_STORE_BOUND_MS)) {
      log.warn({ clientId: client.id, ms: SUBSCRIPTION_STORE_BOUND_MS }, 'the session store did not confirm a subscription in time; that SUBSCRIBE fails')
      throw new Error('the session store did not confirm the subscription')
    }
  })

  markRedeliveries(persistence as unknown as Parameters<typeof markRedeliveries>[0])
  const inboxes = opts.inbox
  const catchUp = inboxes !== undefined && opts.eventsQueued !== true ? undefined : catchUpFirst(persistence as unknown as Parameters<typeof catchUpFirst>[0], {
    maxHeld: opts.maxQueue,
    onOverflow (client, held) {
      log.info({ clientId: client.id, held }, 'connection closed: too many live messages arrived while its queue was replayed (they stay queued for the next connection)')
      client.disconnect({ reasonCode: SERVER_BUSY }, () => {})
    }
  })
  const clientIdRule = emptyClientIdRule(open ? undefined : authenticate(devices, (clientId) => log.info({ clientId }, 'connection refused: not authorized')))

  const subscribeRule = authorizeSubscribe(policy, opts.maxSubscriptions)
  const aedes = new Aedes({
    persistence,
    ...(opts.nodeId !== undefined ? { id: opts.nodeId } : {}),
    ...(opts.mq !== undefined ? { mq: opts.mq as never } : {}),
    concurrency: opts.emitterConcurrency,
    connectTimeout: opts.connectTimeoutMs,
    drainTimeout: opts.drainTimeoutMs,
    keepaliveLimit: opts.keepaliveLimitSeconds,
    maxTopicLevels: opts.maxTopicLevels,
    // MQTT 5 CONNACK: the limits as they are. The packet guard enforces the size before aedes sees a packet
    // (an oversize PUBLISH becomes a refusal); the QoS 2 window (qos2-window.ts) is the Receive Maximum.
    maximumPacketSize: opts.maxPacketBytes,
    receiveMaximum: opts.maxInflightInbound,
    preConnect: ((client, packet, done) => {
      catchUp?.admit(client, packet)
      const aliases = packet.protocolVersion === 5 ? packet.properties?.topicAliasMaximum : undefined
      if (aliases !== undefined && aliases > 0) inboxAliasing.add(client)
      // aedes does not keep to a client's Receive Maximum on what it sends (65,535, the default, is no limit).
      const window = packet.protocolVersion === 5 ? packet.properties?.receiveMaximum : undefined
      if (window !== undefined && window < 65535) receiveWindows.get(client)?.(window)
      clientIdRule.preConnect(client, packet, done)
    }) satisfies typeof clientIdRule.preConnect as AedesOptions['preConnect'],
    // At the connection limit a CONNECT is refused before its credentials are checked, unless it takes over
    // a session connected here (that frees the place it takes): 3.1.1 "server unavailable", MQTT 5 0x89.
    authenticate: (client, username, password, done) => {
      if (signedIn() >= opts.maxConnections && clients()[client.id] === undefined) {
        log.info({ clientId: client.id, limit: opts.maxConnections }, 'connection refused: the server is at MQCHAT_MQTT_MAX_CONNECTIONS')
        if ((client as AedesClient).version === 5) refuseConnackWith((client as AedesClient).conn, SERVER_BUSY)
        done(Object.assign(new Error('server busy'), { returnCode: SERVER_UNAVAILABLE_V3 }) as Parameters<typeof done>[0], false)
        return
      }
      clientIdRule.authenticate(client, username, password, done)
    },
    // Open access: aedes' defaults (anyone connects; any topic but $SYS publishes), and a message too big
    // for an MQTT 5 client's Maximum Packet Size is not sent to it [MQTT-3.1.2-25].
    ...(open ? { authorizeForward: withinMaximumPacketSize } : {
      authorizeSubscribe: subscribeRule.hook,
      authorizePublish: authorizePublish(bridge, handlers, limiter, log, opts.maxPacketBytes),
      // A device only ever receives its own dev/<id>/… topics, and presence it
      // may still watch (membership or a block may have changed since it subscribed).
      authorizeForward: (client: Client, packet: Parameters<AuthorizeForwardHook>[1]) => {
        const device = deviceOf(client)
        if (!device) return null
        if (packet.topic.startsWith(`dev/${device.id}/`)) return packet
        return presenceUserOf(packet.topic) !== undefined && policy(device, packet.topic) !== undefined ? packet : null
      }
    })
  })
  // aedes counts the clients it has registered; its type declarations do not list the field.
  const signedIn = (): number => (aedes as unknown as { connectedClients: number }).connectedClients
  aedes.on('unsubscribe', (topics: string[], client: Client) => subscribeRule.unsubscribed(topics, client))
  if (open) log.warn({ host: opts.host }, 'MQTT open access: any client may connect and use any topic; chat over MQTT is unavailable. Development and conformance testing only.')
  await aedes.listen()
  // aedes keeps its connected clients by id; its type declarations do not list the field.
  const clients = (): Record<string, Client | undefined> => (aedes as unknown as { clients: Record<string, Client | undefined> }).clients

  aedes.on('client', (client: Client) => {
    metrics.connections.inc()
    const device = deviceOf(client)
    if (device) sessions.connected(device)
  })
  aedes.on('clientReady', (client: Client) => {
    catchUp?.ready(client)
    attachInbox(client)
    forgetConnectPacket(client)
  })
  aedes.on('clientDisconnect', (client: Client) => {
    metrics.connections.dec()
    const device = deviceOf(client)
    if (device) sessions.disconnected(device)
    if (device && inboxes) inboxes.detach(device.id, connectionOf(client))
    // A clean-session connect wiped the device's stored inbox subscription;
    // restore it so messages sent while the device is away are still queued.
    if (device && client.clean && devices.get(device.id)?.revokedAt === null) {
      provisionInbox(device).catch((err: unknown) => log.error({ err, deviceId: device.id }, 'restoring the inbox subscription failed'))
    }
  })
  aedes.on('clientError', (client: Client, err: Error) => log.debug({ clientId: client.id, err: err.message }, 'client error'))
  // aedes closes a connection whose keepalive ran out right after this event, without a word: an MQTT 5 client is
  // told why first (written now, ahead of the close; on TCP it reaches the kernel before the socket is destroyed).
  aedes.on('keepaliveTimeout', (client: Client) => {
    const c = client as AedesClient
    if (c.version === 5 && c.connackSent) c.conn.write(disconnectV5(KEEP_ALIVE_TIMEOUT))
  })
  aedes.on('connectionError', (client: Client, err: Error) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'))

  // The local profile's inboxes: a device's connection is attached once it is
  // ready and subscribed to its inbox (a persistent session's subscription is
  // restored before it is ready; a clean one subscribes afterwards).
  const connections = new WeakMap<Client, InboxConnection>()
  /** MQTT 5 connections that accept topic aliases: their inbox PUBLISHes name the topic once, then alias 1 (29 bytes fewer each). */
  const inboxAliasing = new WeakSet<Client>()
  function connectionOf (client: Client): InboxConnection {
    let conn = connections.get(client)
    if (conn) return conn
    const c = client as AedesClient
    const topic = inboxTopic(client.id)
    // Encoded at the connection's own protocol level (an MQTT 5 PUBLISH carries a property length).
    const encoding = { protocolVersion: c.version }
    // aedes 2 assigns no topic aliases of its own, so alias 1 is the inbox's on this connection.
    let alias: { topic: string, properties?: { topicAlias: number } } = inboxAliasing.has(client) ? { topic, properties: { topicAlias: 1 } } : { topic }
    conn = {
      send (payload) {
        const messageId = c._nextId
        c._nextId = messageId >= 65535 ? 1 : messageId + 1
        if (c.connected) {
          mqttPacket.writeToStream({ cmd: 'publish', ...alias, payload, qos: 1, messageId, retain: false, dup: false }, c.conn as never, encoding)
          // Once the topic went out with the alias, the alias alone stands for it.
          if (alias.properties !== undefined && alias.topic !== '') alias = { topic: '', properties: alias.properties }
        }
        return messageId
      },
      close: () => client.close(),
      receiveMaximum: c.version === 5 ? c.receiveMaximum : undefined,
      // The PUBLISH around a payload: fixed header (up to 5 bytes), topic, packet id, properties (the alias, 4).
      maxPayloadBytes: c.version === 5 && c.maximumPacketSize !== undefined ? c.maximumPacketSize - (5 + 2 + Buffer.byteLength(topic) + 2 + 4) : undefined
    }
    connections.set(client, conn)
    return conn
  }
  function attachInbox (client: Client): void {
    const device = deviceOf(client)
    if (!inboxes || !device) return
    const subs = (client as Client & { subscriptions: Record<string, unknown> }).subscriptions
    if (subs[inboxTopic(device.id)] !== undefined) inboxes.attach(device.id, device.userId, connectionOf(client))
  }
  if (inboxes) {
    aedes.on('subscribe', (subs: Array<{ topic: string }>, client: Client) => {
      const device = deviceOf(client)
      if (device && (client as Client & { connected: boolean }).connected && subs.some((s) => s.topic === inboxTopic(device.id))) attachInbox(client)
    })
    aedes.on('unsubscribe', (topics: string[], client: Client) => {
      const device = deviceOf(client)
      if (device && topics.includes(inboxTopic(device.id))) inboxes.detach(device.id, connectionOf(client))
    })
    // A PUBACK for an inbox PUBLISH raises the device's position; there is no stored copy to clear.
    const clear = persistence.outgoingClearMessageId.bind(persistence)
    persistence.outgoingClearMessageId = async (client, packet) => {
      const device = deviceOf(client as Client)
      if (device && packet.messageId !== undefined && inboxes.acked(device.id, connectionOf(client as Client), packet.messageId)) return packet
      return await clear(client, packet)
    }
  }

  // Stored as an MQTT 3.1.1 SUBSCRIBE stores it (no v5 options): the device's own SUBSCRIBE
  // then finds it unchanged, so its first connect writes nothing and aedes keeps the restored route.
  function provisionInbox (device: Device): Promise<unknown> {
    return persistence.addSubscriptions({ id: device.id }, [{ topic: inboxTopic(device.id), qos: 1 }])
  }

  // A device's inbox exists from the moment the device does, so messages sent
  // before its first connection are queued for it too: its creation is
  // answered only once the subscription is stored.
  devices.onCreate(provisionInbox)
  // A device created just before a crash may have missed it: a store that
  // keeps its subscriptions in memory (the local profile) checks every device
  // at start.
  if (opts.repairInboxes === true) {
    let repaired = 0
    for (const d of devices.allActive()) {
      const subs = await persistence.subscriptionsByClient({ id: d.id })
      if (!subs.some((s) => s.topic === inboxTopic(d.id))) { await provisionInbox(d); repaired++ }
    }
    if (repaired > 0) log.warn({ repaired }, 'devices without an inbox subscription (created just before a crash): provisioned now')
  }
  devices.on('banned', (d) => {
    const client = clients()[d.id]
    if (!client) return
    log.info({ deviceId: d.id }, 'user banned: closing the device\'s connection')
    ;(client as Client & { will: unknown }).will = null
    client.disconnect({ reasonCode: NOT_AUTHORIZED }, () => {})
  })
  devices.on('revoked', (d) => {
    const client = clients()[d.id]
    if (client) {
      log.info({ deviceId: d.id }, 'device revoked: closing its connection')
      // Its will is not published: nothing is sent in a revoked device's name.
      const withWill = client as Client & { will: unknown }
      withWill.will = null
      // MQTT 5: DISCONNECT 0x87 (Not authorized), as its CONNACK would now say; 3.1.1: closed.
      client.disconnect({ reasonCode: NOT_AUTHORIZED }, () => {})
    }
    persistence.delWill({ id: d.id }).catch((err: unknown) => log.error({ err, deviceId: d.id }, 'deleting a revoked device\'s will failed'))
    const purge = persistence.purgeClient ? persistence.purgeClient(d.id) : persistence.cleanSubscriptions({ id: d.id })
    Promise.resolve(purge).catch((err: unknown) => log.error({ err, deviceId: d.id }, 'purging a revoked device session failed'))
  })

  // Connections that have not completed their CONNECT are what an outsider can hold:
  // bounded overall and per address; a connection gives its place back once signed in, or closed.
  // Behind a load balancer (MQCHAT_TRUST_PROXY) every connection comes from its address: only the overall cap applies.
  const pending = new Admission(opts.maxUnauthenticated, perAddressBound(opts.maxUnauthenticatedPerAddress, opts.trustProxy))
  const places = new WeakMap<object, () => void>()
  /** Per connection, until its CONNECT: starts the outbound window at the client's Receive Maximum. */
  const receiveWindows = new WeakMap<Client, (max: number) => void>()
  aedes.on('client', (client: Client) => { places.get(client)?.(); places.delete(client) })
  /** A place among the connections not yet signed in, or undefined (the connection is then closed at once). */
  const admit = (conn: { destroy (): void }, address?: string): (() => void) | undefined => {
    const release = pending.take(address ?? '')
    if (!release) {
      log.info({ address, pending: pending.total }, 'MQTT connection refused: too many not yet signed in')
      conn.destroy()
    }
    return release
  }
  const handle = (conn: Parameters<Aedes['handle']>[0], req?: Parameters<Aedes['handle']>[1], address?: string, admitted?: () => void): void => {
    const release = admitted ?? admit(conn, address)
    if (!release) return
    conn.on('close', release)
    // Chat mode refuses retained messages and wildcard filters: an MQTT 5 device is told so in its CONNACK.
    if (!open) announceOnConnack(conn, CHAT_MODE_CONNACK)
    const client = aedes.handle(conn, req)
    lightenParser(client)
    places.set(client as object, release)
    // aedes feeds every chunk it reads to its client's mqtt-packet parser: the guard stands in front of it,
    // and the QoS 2 window between its parsed packets and aedes.
    const parser = (client as unknown as { _parser: PacketParser & Parameters<typeof limitUnreleased>[1] })._parser
    const guard = guardPackets(conn, parser, {
      maxBytes: opts.maxPacketBytes,
      onOversize: (size) => log.info({ size, limit: opts.maxPacketBytes }, 'connection closed: packet over the size limit'),
      // With the chat layer on, an oversize PUBLISH becomes a stand-in it refuses; open access has no such layer: it closes.
      onOversizePublish: open ? undefined : (size) => log.info({ size, limit: opts.maxPacketBytes }, 'PUBLISH over the size limit: skipped, refused with too_large'),
      onViolation: (reason) => log.info({ reason }, 'connection closed: MQTT protocol violation'),
      onUnknownLevel: (level) => log.info({ level }, 'connection refused: unacceptable protocol version'),
      connackSent: () => (client as AedesClient).connackSent
    })
    receiveWindows.set(client, (max) => keepReceiveMaximum(conn, parser, max, opts.maxQueue, () => {
      log.info({ clientId: client.id, receiveMaximum: max, held: opts.maxQueue }, 'connection closed: too many messages held back by its Receive Maximum (it reads but does not acknowledge)')
      guard.close(QUOTA_EXCEEDED)
    }))
    limitUnreleased(conn, parser, opts.maxInflightInbound,
      (held) => log.info({ held, limit: opts.maxInflightInbound }, 'connection closed: too many unreleased QoS 2 publishes'),
      () => { guard.close(RECEIVE_MAXIMUM_EXCEEDED) })
  }

  let tcp: NetServer | undefined
  let http: HttpServer | undefined
  let wss: WebSocketServer | undefined
  let tlsTcp: NetServer | undefined
  let https: HttpsServer | undefined
  let secureWss: WebSocketServer | undefined
  /** MQTT over WebSocket on an HTTP(S) server: one MQTT connection per WebSocket. */
  const webSockets = (server: HttpServer | HttpsServer): WebSocketServer => {
    const ws = new WebSocketServer({ server, path: opts.wsPath, maxPayload: opts.maxPacketBytes + 8 })
    ws.on('connection', (socket, req) => {
      const stream = createWebSocketStream(socket)
      stream.on('error', () => stream.destroy())
      handle(stream, req, req.socket.remoteAddress)
    })
    return ws
  }
  const upgradeRequired = (_req: unknown, res: ServerResponse): void => { res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect with a WebSocket client\n') }
  if (opts.listen !== false) {
    tcp = createNetServer((socket) => handle(socket, undefined, socket.remoteAddress))
    tcp.listen(opts.mqttPort, opts.host)
    await once(tcp, 'listening')

    http = createHttpServer(upgradeRequired)
    wss = webSockets(http)
    http.listen(opts.wsPort, opts.host)
    await once(http, 'listening')

    const cert = opts.tls
    if (cert) {
      // MQTT over TLS: the place among connections not yet signed in is taken when the TCP
      // connection is accepted, so handshakes count too; a handshake has the CONNECT deadline.
      tlsTcp = createNetServer((raw) => {
        const release = admit(raw, raw.remoteAddress)
        if (!release) return
        raw.once('close', release)
        raw.on('error', () => {})
        const secure = new TLSSocket(raw, { isServer: true, secureContext: cert.context })
        secure.on('error', () => secure.destroy())
        const deadline = setTimeout(() => secure.destroy(), opts.connectTimeoutMs)
        deadline.unref()
        secure.once('secure', () => {
          clearTimeout(deadline)
          handle(secure, undefined, raw.remoteAddress, release)
        })
      })
      tlsTcp.listen(opts.mqttTlsPort ?? 8883, opts.host)
      await once(tlsTcp, 'listening')
      https = createHttpsServer({ ...cert.options, handshakeTimeout: opts.connectTimeoutMs }, upgradeRequired)
      cert.attach(https)
      secureWss = webSockets(https)
      https.listen(opts.wssPort ?? 8084, opts.host)
      await once(https, 'listening')
    }
  }

  const inbox: InboxPublisher = {
    publish: (deviceId, payload) => new Promise((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic: inboxTopic(deviceId), payload: Buffer.from(payload), qos: 1, retain: false, dup: false }, (err) => err ? reject(err) : resolve())
    })
  }

  let listening = true
  async function stopListening (): Promise<void> {
    if (!listening) return
    listening = false
    // No new connections from here on. The servers finish closing once their
    // open connections are gone: aedes.close() ends the MQTT ones.
    tcp?.close()
    http?.close()
    tlsTcp?.close()
    https?.close()
    for (const ws of [...(wss?.clients ?? []), ...(secureWss?.clients ?? [])]) ws.terminate()
    wss?.close()
    secureWss?.close()
  }

  const live = (deviceId: string, payload: string): void => {
    aedes.publish({ cmd: 'publish', topic: liveTopic(deviceId), payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, (err) => {
      if (err) log.warn({ err, deviceId }, 'live publish failed')
    })
  }

  const presence = (userId: string, payload: string): void => {
    aedes.publish({ cmd: 'publish', topic: presenceTopic(userId), payload: Buffer.from(payload), qos: 0, retain: true, dup: false }, (err) => {
      if (err) log.warn({ err, userId }, 'presence publish failed')
    })
  }

  return {
    aedes,
    inbox,
    live,
    presence,
    isConnected: (clientId) => clients()[clientId] !== undefined,
    disconnectAll () {
      const all = Object.values(clients()).filter((c): c is Client => c !== undefined)
      // MQTT 5: told why, and that a new connection is the answer; 3.1.1: closed.
      for (const c of all) c.disconnect({ reasonCode: UNSPECIFIED_ERROR, properties: { reasonString: 'reconnect: this server restored its message routing' } }, () => {})
      return all.length
    },
    connections: signedIn,
    mqttPort: tcp ? (tcp.address() as AddressInfo).port : 0,
    wsPort: http ? (http.address() as AddressInfo).port : 0,
    mqttTlsPort: tlsTcp ? (tlsTcp.address() as AddressInfo).port : 0,
    wssPort: https ? (https.address() as AddressInfo).port : 0,
    stopListening,
    async close () {
      await stopListening()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await persistence.destroy()
    }
  }
}
