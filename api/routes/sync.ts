// POST /v1/sync: catch up every chat of the caller from per-chat cursors.
import type { FastifyPluginAsync } from 'fastify'
import { syncPage } from '../../core/sync.js'
import { requireDevice, type ApiServices } from '../context.js'
import { messagesJson } from './messages.js'
import { stringifyWithRaw } from '../../lib/raw-json.js'

export const syncRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { cursors?: Record<string, number>, limit?: number } }>('/v1/sync', {
    // Cursors for about 30,000 chats.
    bodyLimit: 1024 * 1024,
    schema: {
      summary: 'Catch up: for every chat of the caller, what it has after the given cursor (default 0), at most `limit` messages in all',
      body: {
        type: 'object', additionalProperties: false,
        properties: {
          cursors: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, maxProperties: 30000 },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 500 }
        }
      }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    const page = await syncPage(s.history, s.chats, d.userId, req.body?.cursors ?? {}, req.body?.limit ?? 500)
    return reply.type('application/json; charset=utf-8').send(stringifyWithRaw({
      has_more: page.hasMore,
      chats: await Promise.all(page.chats.map(async (c) => ({
        chat_id: c.chatId,
        last_seq: c.lastSeq,
        messages: await messagesJson(s.history, c.chatId, c.messages, d.id),
        next_after: c.nextAfter,
        has_more: c.hasMore,
        missing: c.missing,
        delivered: c.delivered,
        read: c.read
      })))
    }))
  })
}
