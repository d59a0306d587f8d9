// Liveness, readiness, Prometheus metrics, and the connection facts a client needs.
import type { FastifyPluginAsync } from 'fastify'
import type { ApiServices } from '../context.js'

export const healthRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.get('/healthz', { config: { public: true }, schema: { summary: 'The process is up' } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { public: true }, schema: { summary: 'Stores open and listeners accepting' } }, async (_req, reply) =>
    s.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'starting_or_stopping' }))
  app.get('/metrics', { config: { public: true }, schema: { summary: 'Prometheus text format', hide: false } }, async (_req, reply) =>
    reply.type(s.metrics.registry.contentType).send(await s.metrics.registry.metrics()))
  app.get('/v1/info', {
    config: { public: true },
    schema: {
      summary: 'Where to connect with MQTT (and XMPP, when enabled)',
      response: { 200: { type: 'object', properties: { mqtt_port: { type: 'integer' }, ws_port: { type: 'integer' }, ws_path: { type: 'string' }, xmpp: { type: 'object', properties: { domain: { type: 'string' }, port: { type: 'integer' }, ws_port: { type: 'integer' }, ws_path: { type: 'string' } } }, version: { type: 'string' } } } }
    }
  }, async () => ({ mqtt_port: s.info.mqttPort, ws_port: s.info.wsPort, ws_path: s.info.wsPath, ...(s.info.xmpp ? { xmpp: { domain: s.info.xmpp.domain, port: s.info.xmpp.port, ws_port: s.info.xmpp.wsPort, ws_path: s.info.xmpp.wsPath } } : {}), version: '0.1.0' }))
}
