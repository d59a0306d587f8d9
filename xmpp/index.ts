// The XMPP client listener (off unless MQCHAT_XMPP_ENABLED): standard XMPP
// clients sign in as devices and chat with MQTT devices in the same chats
// (docs/protocol.md §6). Built on maintained parts: the xmpp.js packages
// @xmpp/xml (its ltx-based streaming parser) and @xmpp/jid. node-xmpp-server,
// which the design card names, has been unmaintained since 2017.
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { WebSocketServer } from 'ws'
import type { Logger } from 'pino'
import type { Aedes } from 'aedes'
import type { Config } from '../lib/config.js'
import type { DeviceService } from '../core/devices.js'
import type { ChatService } from '../core/chats.js'
import { DomainError } from '../core/errors.js'
import type { HistoryStore } from '../store/types.js'
import { directChatId } from '../core/ids.js'
import { MAX_UNBOUND_PER_DEVICE, XmppStream, type StreamHost } from './stream.js'
import { Admission, perAddressBound } from '../lib/admission.js'
import { TlsCertificate } from '../lib/tls.js'
import { WebSocketTransport } from './websocket.js'
import { XmppSession } from './session.js'

export interface XmppServer {
  port: number
  wsPort: number
  /** Reads XMPP's own certificate files again (MQCHAT_XMPP_TLS_CERT); false without one (the server's certificate is reloaded by its owner). */
  reload (): boolean
  close (): Promise<void>
}

/** Where XMPP over WebSocket is served on its port. */
export const WS_PATH = '/xmpp-websocket'

export async function startXmpp (cfg: Config, deps: { aedes: Aedes, devices: DeviceService, chats: ChatService, history: HistoryStore, log: Logger, tls?: TlsCertificate }): Promise<XmppServer> {
  const { aedes, devices, chats, history, log } = deps
  // Its own certificate, or the server's (MQCHAT_TLS_CERT); either follows reloads (SIGHUP).
  const own = cfg.xmppTlsCert !== '' ? new TlsCertificate(cfg.xmppTlsCert, cfg.xmppTlsKey, log) : undefined
  const tls = own ?? deps.tls
  const resumable = new Map<string, XmppSession>()
  const sessions = new Set<XmppSession>()
  const sessionHost = {
    aedes,
    domain: cfg.xmppDomain,
    chats,
    history,
    resumeSeconds: cfg.xmppResumeSeconds,
    maxHeldEvents: cfg.xmppMaxHeldEvents,
    log,
    linkKeepaliveSeconds: cfg.keepaliveLimitSeconds > 0 ? Math.min(cfg.keepaliveLimitSeconds, 60) : 0,
    resumable,
    existingDirectChat (userId: string, other: string): string | undefined {
      const id = directChatId(userId, other)
      return chats.isMember(id, userId) ? id : undefined
    },
    async directChat (userId: string, other: string): Promise<string | undefined> {
      const existing = sessionHost.existingDirectChat(userId, other)
      if (existing !== undefined) return existing
      try {
        return (await chats.createDirect(userId, other)).chat.id
      } catch (err) {
        if (err instanceof DomainError) return undefined
        throw err
      }
    }
  }
  // What outsiders may hold: connections not yet signed in and bound (overall and per address), and per device
  // streams signed in but not bound. A stream gives its places back once bound or closed.
  // Behind a load balancer (MQCHAT_TRUST_PROXY) every connection comes from its address: only the overall cap applies.
  const pending = new Admission(cfg.xmppMaxUnauthenticated, perAddressBound(cfg.xmppMaxUnauthenticatedPerAddress, cfg.trustProxy))
  const places = new Map<XmppStream, () => void>()
  const unbound = new Map<XmppStream, string>()
  const unboundOf = (deviceId: string): number => { let n = 0; for (const d of unbound.values()) if (d === deviceId) n++; return n }
  const admit = (address: string | undefined, close: () => void): (() => void) | undefined => {
    const release = pending.take(address ?? '')
    if (!release) {
      log.info({ address, pending: pending.total }, 'xmpp connection refused: too many not yet signed in')
      close()
    }
    return release
  }
  const streamHost = (secure: TlsCertificate | undefined): StreamHost => ({
    domain: cfg.xmppDomain,
    // Read at each STARTTLS: a reloaded certificate is used from then on.
    get tls () { return secure?.context },
    maxStanzaBytes: cfg.xmppMaxStanzaBytes,
    stanzaRate: cfg.xmppStanzaRate,
    authTimeoutMs: cfg.xmppAuthTimeoutSeconds * 1000,
    idleTimeoutMs: cfg.xmppIdleTimeoutSeconds * 1000,
    signedIn (stream, deviceId) {
      if (unboundOf(deviceId) >= MAX_UNBOUND_PER_DEVICE) return false
      unbound.set(stream, deviceId)
      return true
    },
    settled (stream) {
      places.get(stream)?.()
      places.delete(stream)
      unbound.delete(stream)
    },
    log,
    login (user, token) {
      const d = devices.authenticate(token)
      return d && d.userId === user ? { userId: d.userId, deviceId: d.id } : undefined
    },
    scram (user) {
      const { salt, iterations, devices: withKeys } = devices.scramOf(user)
      return { salt, iterations, devices: withKeys.map((d) => ({ userId: d.userId, deviceId: d.id, keys: d.scram })) }
    },
    async bind (stream, who) {
      const s = await XmppSession.open(stream, sessionHost, who)
      sessions.add(s)
      s.ended.then(() => sessions.delete(s), () => {})
      return s
    },
    async resume (stream, who, previd, h) {
      const s = resumable.get(previd)
      if (!s || s.who.deviceId !== who.deviceId) return undefined
      return await s.resume(stream, h) ? s : undefined
    }
  })
  const tcpHost = streamHost(tls)
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    const release = admit(socket.remoteAddress, () => socket.destroy())
    if (!release) return
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    places.set(new XmppStream(socket, tcpHost), release)
  })
  server.listen(cfg.xmppPort, cfg.host)
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  // XMPP over WebSocket (RFC 7395) on its own port: HTTPS with the same
  // certificate, or plain HTTP in the loopback-only plaintext mode. TLS is
  // the connection's, so these streams start at login (no STARTTLS).
  const wsHttp = tls !== undefined ? createHttpsServer(tls.options) : createHttpServer()
  if (tls !== undefined) tls.attach(wsHttp as HttpsServer)
  wsHttp.on('request', (_req, res) => { res.writeHead(426, { 'content-type': 'text/plain' }).end(`XMPP over WebSocket: connect to ${WS_PATH} with the "xmpp" subprotocol\n`) })
  const wss = new WebSocketServer({
    server: wsHttp,
    path: WS_PATH,
    maxPayload: cfg.xmppMaxStanzaBytes,
    handleProtocols: (protocols) => protocols.has('xmpp') ? 'xmpp' : false
  })
  const wsHost = streamHost(undefined)
  wss.on('connection', (ws, req) => {
    const release = admit(req.socket.remoteAddress, () => ws.terminate())
    if (!release) return
    const transport = new WebSocketTransport(ws)
    const stream = new XmppStream(transport, wsHost)
    places.set(stream, release)
    transport.onBinary = () => stream.streamError('not-well-formed', 'XMPP over WebSocket frames are text (RFC 7395 §3.2)')
  })
  wsHttp.listen(cfg.xmppWsPort, cfg.host)
  await once(wsHttp, 'listening')
  const wsPort = (wsHttp.address() as { port: number }).port
  log.info({ port, wsPort, wsPath: WS_PATH, domain: cfg.xmppDomain, tls: tls !== undefined }, 'xmpp listeners ready')
  return {
    port,
    wsPort,
    reload: () => own?.reload() ?? false,
    async close () {
      server.close()
      wsHttp.close()
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      for (const s of sockets) s.end('</stream:stream>')
      for (const s of sockets) s.destroy()
      await Promise.all([...sessions].map((s) => s.shutdown()))
    }
  }
}
