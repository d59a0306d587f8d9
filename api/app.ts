// The HTTP API (Fastify). Each area is a plugin; errors are always
// {"error": {"code": "<stable code>", "message": "<for humans>"}}.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import type { Logger } from 'pino'
import { DomainError } from '../core/errors.js'
import type { ApiServices } from './context.js'
import { registrationRoutes } from './routes/registration.js'
import { deviceRoutes } from './routes/devices.js'
import { userRoutes } from './routes/users.js'
import { chatRoutes } from './routes/chats.js'
import { messageRoutes } from './routes/messages.js'
import { receiptRoutes } from './routes/receipts.js'
import { syncRoutes } from './routes/sync.js'
import { mediaRoutes, type MediaApi } from './routes/media.js'
import { healthRoutes } from './routes/health.js'

export interface ApiOptions {
  media?: MediaApi
  /** Proxy addresses whose X-Forwarded-For is believed (Fastify trustProxy); empty: none. */
  trustProxy?: string
}

export async function buildApi (services: ApiServices, log: Logger, { media, trustProxy = '' }: ApiOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: log.child({ part: 'api' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    trustProxy: trustProxy === '' ? false : trustProxy,
    // Unknown fields are refused (400), not silently dropped.
    ajv: { customOptions: { removeAdditional: false } }
  })

  await app.register(swagger, {
    openapi: {
      info: { title: 'mqchat API', version: '0.1.0', description: 'Registration, devices, chats and history. Messages travel over MQTT; see docs/protocol.md.' },
      components: { securitySchemes: { device: { type: 'http', scheme: 'bearer', description: 'a device token' } } },
      security: [{ device: [] }]
    }
  })

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof DomainError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } })
    const e = err as { validation?: unknown, statusCode?: number, code?: string, message: string }
    if (e.validation) return reply.code(400).send({ error: { code: 'bad_request', message: e.message } })
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      const code = e.statusCode === 413 ? 'too_large' : e.statusCode === 415 ? 'unsupported_media_type' : 'bad_request'
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
  await app.register(messageRoutes(services))
  await app.register(receiptRoutes(services))
  await app.register(syncRoutes(services))
  if (media) await app.register(mediaRoutes(services, media))
  await app.register(healthRoutes(services))
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  return app
}
