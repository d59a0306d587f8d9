// The XMPP client listener (off unless MQCHAT_XMPP_ENABLED): standard XMPP
// clients sign in as devices and chat with MQTT devices in the same chats
// (docs/protocol.md §6). Built on maintained parts: the xmpp.js packages
// @xmpp/xml (its ltx-based streaming parser) and @xmpp/jid. node-xmpp-server,
// which the design card names, has been unmaintained since 2017.
import { createServer, type Server, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { createSecureContext } from 'node:tls'
import type { Logger } from 'pino'
import type { Aedes } from 'aedes'
import type { Config } from '../lib/config.js'
import type { DeviceService } from '../core/devices.js'
import type { ChatService } from '../core/chats.js'
import { DomainError } from '../core/errors.js'
import { directChatId } from '../core/ids.js'
import { XmppStream } from './stream.js'
import { XmppSession } from './session.js'

export interface XmppServer { port: number, close (): Promise<void> }

export async function startXmpp (cfg: Config, deps: { aedes: Aedes, devices: DeviceService, chats: ChatService, log: Logger }): Promise<XmppServer> {
  const { aedes, devices, chats, log } = deps
  const tls = cfg.xmppTlsCert !== '' ? createSecureContext({ cert: readFileSync(cfg.xmppTlsCert), key: readFileSync(cfg.xmppTlsKey) }) : undefined
  const sessionHost = {
    aedes,
    domain: cfg.xmppDomain,
    async directChat (userId: string, other: string): Promise<string | undefined> {
      const id = directChatId(userId, other)
      if (chats.isMember(id, userId)) return id
      try {
        return (await chats.createDirect(userId, other)).chat.id
      } catch (err) {
        if (err instanceof DomainError) return undefined
        throw err
      }
    }
  }
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    // eslint-disable-next-line no-new
    new XmppStream(socket, {
      domain: cfg.xmppDomain,
      tls,
      maxStanzaBytes: cfg.xmppMaxStanzaBytes,
      log,
      login (user, token) {
        const d = devices.authenticate(token)
        return d && d.userId === user ? { userId: d.userId, deviceId: d.id } : undefined
      },
      bind: (stream, who) => XmppSession.open(stream, sessionHost, who)
    })
  })
  server.listen(cfg.xmppPort, cfg.host)
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  log.info({ port, domain: cfg.xmppDomain, tls: tls !== undefined }, 'xmpp listener ready')
  return {
    port,
    async close () {
      server.close()
      for (const s of sockets) s.end('</stream:stream>')
      for (const s of sockets) s.destroy()
    }
  }
}
