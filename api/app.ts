// The HTTP API (Fastify). Each area is a plugin; errors are always
// {"error": {"code": "<stable code>", "message": "<for humans>"}}.
import { PassThrough } from 'node:stream'
import type { AddressInfo, Socket } from 'node:net'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { Admission, perAddressBound } from '../lib/admission.js'
import type { TlsCertificate } from '../lib/tls.js'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import type { Logger } from 'pino'
import { DomainError } from '../core/errors.js'
import { authenticate, type ApiServices } from './context.js'
import { registrationRoutes } from './routes/registration.js'
import { deviceRoutes } from './routes/devices.js'
import { userRoutes } from './routes/users.js'
import { chatRoutes } from './routes/chats.js'
import { pushRoutes } from './routes/push.js'
import { keyRoutes } from './routes/keys.js'
import { profileRoutes } from './routes/profiles.js'
import { accountRoutes } from './routes/account.js'
import { messageRoutes } from './routes/messages.js'
import { receiptRoutes } from './routes/receipts.js'
import { syncRoutes } from './routes/sync.js'
import { mediaRoutes, type MediaApi } from './routes/media.js'
import { healthRoutes } from './routes/health.js'

export interface ApiOptions {
  media?: MediaApi
  /** Proxy addresses whose X-Forwarded-For is believed (Fastify trustProxy); empty: none. */
  trustProxy?: string
  limits?: Partial<HttpLimits>
  /** The base of media URLs; empty: http://<listenHost>:<port this API listens on>. */
  publicUrl?: string
  /** The address the API binds to (for the default public URL). */
  listenHost?: string
  /** /metrics needs this bearer token; empty: loopback peers only. */
  metricsToken?: string
  /** With a certificate the same API is also served over HTTPS (`httpsServer`, to listen on), and media URLs start with https. */
  tls?: TlsCertificate
}

/** The HTTPS server of an API built with a certificate (not listening yet), or undefined. */
export const httpsServer = (app: FastifyInstance): HttpsServer | undefined => httpsOf.get(app)
const httpsOf = new WeakMap<FastifyInstance, HttpsServer>()

/** What one HTTP client may hold of the server (docs/security.md). */
export interface HttpLimits {
  /** For the headers, and again for a JSON body, from the moment its reading starts. */
  bodyTimeoutMs: number
  /** A whole request, a streamed media upload included. */
  requestTimeoutMs: number
  /** A connection that carries nothing. */
  idleTimeoutMs: number
  /** The largest chat envelope (POST /v1/chats/:id/messages). */
  maxMessageBytes: number
  /** Open connections at once, and per client address (not applied behind a trusted proxy, whose address they all share). */
  maxConnections: number
  maxConnectionsPerAddress: number
}

const DEFAULT_LIMITS: HttpLimits = { bodyTimeoutMs: 15_000, requestTimeoutMs: 900_000, idleTimeoutMs: 60_000, maxMessageBytes: 65_536, maxConnections: 10_000, maxConnectionsPerAddress: 256 }

/** JSON bodies of routes that do not say otherwise. */
const DEFAULT_BODY_LIMIT = 64 * 1024

export async function buildApi (services: ApiServices, log: Logger, { media, trustProxy = '', limits: given = {}, publicUrl = '', listenHost = '127.0.0.1', metricsToken = '', tls }: ApiOptions = {}): Promise<FastifyInstance> {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...given }
  const app = Fastify({ loggerInstance: log.child({ part: 'api' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: DEFAULT_BODY_LIMIT,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: Math.min(limits.idleTimeoutMs, 30_000),
    requestTimeout: limits.requestTimeoutMs,
    // Node checks the header and request deadlines this often (its default, 30 s, would let a slow client stay that much longer).
    http: { connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(limits.bodyTimeoutMs / 3))) },
    trustProxy: trustProxy === '' ? false : trustProxy,
    // Unknown fields are refused (400), not silently dropped.
    ajv: { customOptions: { removeAdditional: false } }
  })
  app.server.headersTimeout = Math.min(limits.bodyTimeoutMs, limits.requestTimeoutMs)
  // Open connections, overall and per address (HTTP and HTTPS together); a connection over either is closed before it is read.
  const open = new Admission(limits.maxConnections, perAddressBound(limits.maxConnectionsPerAddress, trustProxy))
  const admit = (socket: Socket): void => {
    const release = open.take(socket.remoteAddress ?? '')
    if (!release) {
      log.info({ address: socket.remoteAddress, open: open.total }, 'HTTP connection refused: too many open')
      socket.destroy()
      return
    }
    socket.once('close', release)
  }
  app.server.on('connection', admit)
  if (tls) {
    // The same routes over HTTPS: Fastify's request handler (app.routing) on a server of our own,
    // with the timeouts of the HTTP one; a TLS handshake has the header deadline.
    const secure = createHttpsServer({
      ...tls.options,
      handshakeTimeout: Math.min(limits.bodyTimeoutMs, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: Math.min(limits.bodyTimeoutMs, limits.requestTimeoutMs),
      keepAliveTimeout: Math.min(limits.idleTimeoutMs, 30_000),
      connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(limits.bodyTimeoutMs / 3)))
    }, (req, res) => { app.routing(req, res) })
    secure.setTimeout(limits.idleTimeoutMs, (socket) => { socket.destroy() })
    secure.on('connection', admit)
    tls.attach(secure)
    httpsOf.set(app, secure)
    app.addHook('onClose', async () => {
      await new Promise<void>((resolve) => { secure.close(() => resolve()); secure.closeAllConnections() })
    })
  }

  // Every route needs a device token unless it says `config: { public: true }`. The token is
  // checked as the request arrives, before its body is read: an outsider's body is never read.
  app.addHook('onRequest', async (req, reply) => {
    if (req.is404 || req.routeOptions.config.public === true) return
    reply.header('connection', 'close')
    authenticate(services, req)
    reply.removeHeader('connection')
  })
  // A JSON body must arrive within bodyTimeoutMs of the start of its reading (a streamed media upload has the request timeout).
  app.addHook('preParsing', async (req, reply, payload) => {
    if (req.routeOptions.config.streamedBody === true) return payload
    const body = new PassThrough()
    // Fastify reads the body through this stream; once it stops (the body arrived, or was refused) the deadline is moot.
    body.on('error', () => {})
    const timer = setTimeout(() => {
      if (reply.sent) return
      payload.unpipe(body)
      reply.header('connection', 'close')
      body.destroy(Object.assign(new Error(`the request body did not arrive within ${limits.bodyTimeoutMs / 1000} s`), { statusCode: 408 }))
    }, limits.bodyTimeoutMs)
    const done = (): void => { clearTimeout(timer) }
    body.once('end', done)
    body.once('close', done)
    reply.raw.once('close', done)
    payload.pipe(body)
    return body
  })

  await app.register(swagger, {
    openapi: {
      info: { title: 'mqchat API', version: '0.1.0', description: 'Registration, devices, chats and history. Messages travel over MQTT; see docs/protocol.md.' },
      components: { securitySchemes: { device: { type: 'http', scheme: 'bearer', description: 'a device token' } } },
      security: [{ device: [] }]
    }
  })

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof DomainError) return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...err.details } })
    const e = err as { validation?: unknown, statusCode?: number, code?: string, message: string }
    if (e.validation) return reply.code(400).send({ error: { code: 'bad_request', message: e.message } })
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      const code = e.statusCode === 413 ? 'too_large' : e.statusCode === 415 ? 'unsupported_media_type' : e.statusCode === 408 ? 'request_timeout' : 'bad_request'
      return reply.code(e.statusCode).send({ error: { code, message: e.message } })
    }
    req.log.error({ err }, 'request failed')
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error' } })
  })
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } }))

  await app.register(registrationRoutes(services))
  await app.register(deviceRoutes(services))
  await app.register(userRoutes(services))
  await app.register(chatRoutes(services))
  await app.register(pushRoutes(services))
  await app.register(keyRoutes(services))
  await app.register(profileRoutes(services))
  await app.register(accountRoutes(services))
  await app.register(messageRoutes(services, { maxMessageBytes: limits.maxMessageBytes }))
  await app.register(receiptRoutes(services))
  await app.register(syncRoutes(services))
  // Media URLs are built from configuration, never from the request's Host header.
  const everyAddress = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === ''
  const host = everyAddress ? '127.0.0.1' : listenHost.includes(':') ? `[${listenHost}]` : listenHost
  const secureAddress = (): AddressInfo | null => httpsOf.get(app)?.address() as AddressInfo | null
  const baseUrl = (): string => {
    if (publicUrl !== '') return publicUrl.replace(/\/+$/, '')
    const secure = secureAddress()
    return secure ? `https://${host}:${secure.port}` : `http://${host}:${(app.server.address() as AddressInfo).port}`
  }
  if (media) await app.register(mediaRoutes(services, media, baseUrl))
  await app.register(healthRoutes(services, { metricsToken }))
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger())
  return app
}
