// Liveness, readiness, Prometheus metrics, and the connection facts a client needs.
import type { FastifyPluginAsync } from 'fastify'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { ApiServices } from '../context.js'
import { DomainError } from '../../core/errors.js'
import { isLoopback } from '../../lib/config.js'

/** Compares secrets in constant time (by their hashes, so lengths do not leak either). */
const safeEqual = (a: string, b: string): boolean => timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())

export const healthRoutes = (s: ApiServices, opts: { metricsToken: string }): FastifyPluginAsync => async (app) => {
  app.get('/healthz', { config: { public: true }, schema: { summary: 'The process is up' } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { public: true }, schema: { summary: 'Stores open and listeners accepting' } }, async (_req, reply) =>
    s.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'starting_or_stopping' }))
  app.get('/metrics', { config: { public: true }, schema: { summary: 'Prometheus text format: with MQCHAT_METRICS_TOKEN as a bearer token, or from a loopback address when none is set' } }, async (req, reply) => {
    // The socket's own peer, not X-Forwarded-For: a proxied request is not local.
    const allowed = opts.metricsToken !== ''
      ? safeEqual(req.headers.authorization ?? '', `Bearer ${opts.metricsToken}`)
      : isLoopback(req.socket.remoteAddress)
    if (!allowed) throw new DomainError('forbidden', opts.metricsToken !== '' ? 'metrics need the metrics token (Authorization: Bearer <MQCHAT_METRICS_TOKEN>)' : 'metrics are served to this machine only; set MQCHAT_METRICS_TOKEN to scrape them from elsewhere', 403)
    return reply.type(s.metrics.registry.contentType).send(await s.metrics.registry.metrics())
  })
  app.get('/v1/info', {
    config: { public: true },
    schema: {
      summary: 'Where to connect with MQTT (and XMPP, when enabled), and the push providers this server sends to',
      response: { 200: { type: 'object', properties: { mqtt_port: { type: 'integer' }, ws_port: { type: 'integer' }, ws_path: { type: 'string' }, mqtt_tls_port: { type: 'integer' }, wss_port: { type: 'integer' }, https_port: { type: 'integer' }, xmpp: { type: 'object', properties: { domain: { type: 'string' }, port: { type: 'integer' }, ws_port: { type: 'integer' }, ws_path: { type: 'string' } } }, push: { type: 'object', properties: { providers: { type: 'array', items: { type: 'string' } }, vapid_public_key: { type: 'string' } } }, version: { type: 'string' } } } }
    }
  }, async () => ({ mqtt_port: s.info.mqttPort, ws_port: s.info.wsPort, ws_path: s.info.wsPath, ...(s.info.tls ? { mqtt_tls_port: s.info.tls.mqttPort, wss_port: s.info.tls.wssPort, https_port: s.info.tls.httpsPort } : {}), ...(s.info.xmpp ? { xmpp: { domain: s.info.xmpp.domain, port: s.info.xmpp.port, ws_port: s.info.xmpp.wsPort, ws_path: s.info.xmpp.wsPath } } : {}), ...(s.info.push ? { push: { providers: s.info.push.providers, ...(s.info.push.vapidPublicKey !== undefined ? { vapid_public_key: s.info.push.vapidPublicKey } : {}) } } : {}), version: '0.1.0' }))
}
