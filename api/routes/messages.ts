// History (paged, oldest first) and sending over HTTP. An HTTP send goes
// through the same bridge as an MQTT publish: same checks, seq, history and
// fan-out, and the sending device also gets its `ack` inbox event. In the
// cluster it also takes the same path, through the chat stream
// (bridge/sends.ts).
import type { FastifyPluginAsync } from 'fastify'
import type { HistoryStore, StoredMessage } from '../../store/types.js'
import { messageFields } from '../../bridge/events.js'
import { DomainError } from '../../core/errors.js'
import { MAX_BODY_DEPTH } from '../../bridge/envelope.js'
import { bodyFor } from '../../bridge/e2ee.js'
import { requireDevice, type ApiServices } from '../context.js'
import { RawJson, stringifyWithRaw } from '../../lib/raw-json.js'

/**
 * A message for an HTTP answer; its body is the stored JSON text, sent with
 * stringifyWithRaw. A pairwise encrypted message shows the reading device
 * its own ciphertext alone.
 */
export const messageJson = (m: StoredMessage, reactions: Record<string, string> | undefined, deviceId: string) => ({
  ...messageFields(m),
  body: new RawJson(bodyFor(m.body, deviceId)),
  edited_at: m.editedAt ?? undefined,
  deleted: m.deletedAt ? true : undefined,
  reactions: reactions && Object.keys(reactions).length > 0 ? reactions : undefined
})

/** Messages as JSON with the reactions on each. */
export async function messagesJson (history: HistoryStore, chatId: string, messages: StoredMessage[], deviceId: string): Promise<Array<ReturnType<typeof messageJson>>> {
  if (messages.length === 0) return []
  const by = new Map<number, Record<string, string>>()
  for (const r of await history.reactions(chatId, messages[0].seq, messages[messages.length - 1].seq)) {
    const entry = by.get(r.seq) ?? {}
    entry[r.userId] = r.emoji
    by.set(r.seq, entry)
  }
  return messages.map((m) => messageJson(m, by.get(m.seq), deviceId))
}

export const messageRoutes = (s: ApiServices, opts: { maxMessageBytes: number }): FastifyPluginAsync => async (app) => {
  /** HTTP sends spend the same per-device budget as MQTT publishes. */
  async function takeSendBudget (deviceId: string): Promise<void> {
    if (await s.limiter.take(deviceId)) return
    s.metrics.refused.inc({ reason: 'rate_limited' })
    throw new DomainError('rate_limited', s.limiter.message, 429)
  }

  app.get<{ Params: { chatId: string }, Querystring: { after: number, limit: number } }>('/v1/chats/:chatId/messages', {
    schema: {
      summary: 'Messages after a seq, oldest first, paged; only those sent while you were a member',
      params: { type: 'object', properties: { chatId: { type: 'string' } } },
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { after: { type: 'integer', minimum: 0, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } }
      }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    if (!s.chats.isMember(req.params.chatId, d.userId)) throw new DomainError('not_found', 'chat not found', 404)
    const { after, limit } = req.query
    // Only what was sent while the caller was a member (core/membership.ts).
    const page = await s.chats.readerOf(s.history, d.userId).after(req.params.chatId, after, limit + 1)
    const messages = page.slice(0, limit)
    return reply.type('application/json; charset=utf-8').send(stringifyWithRaw({
      messages: await messagesJson(s.history, req.params.chatId, messages, d.id),
      next_after: messages.length > 0 ? messages[messages.length - 1].seq : after,
      has_more: page.length > limit
    }))
  })

  app.post<{ Params: { chatId: string } }>('/v1/chats/:chatId/messages', {
    // The envelope's own limit: a larger body is refused (413 too_large) without being read.
    bodyLimit: opts.maxMessageBytes,
    schema: {
      summary: 'Send a message (the same envelope as an MQTT publish to chat/<chatId>/msg)',
      params: { type: 'object', properties: { chatId: { type: 'string' } } },
      response: {
        201: { type: 'object', properties: { chat: { type: 'string' }, id: { type: 'string' }, seq: { type: 'integer' }, duplicate: { type: 'boolean' } } },
        202: { type: 'object', properties: { chat: { type: 'string' }, id: { type: 'string' }, queued: { type: 'boolean' } } }
      }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await takeSendBudget(d.id)
    let raw: Buffer
    try {
      raw = Buffer.from(JSON.stringify(req.body ?? null))
    } catch {
      // Only nesting too deep for JSON.stringify (about 10,000 levels) gets here; parseEnvelope refuses far less.
      throw new DomainError('bad_request', `body nests arrays and objects more than ${MAX_BODY_DEPTH} deep`)
    }
    const r = await s.sends.send(d, req.params.chatId, raw)
    // Queued (cluster): durable in the chat stream, its seq not known in time; the `ack` inbox event brings it.
    if ('queued' in r) return await reply.code(202).send(r)
    return await reply.code(r.duplicate ? 200 : 201).send(r)
  })

  app.post<{ Params: { chatId: string, seq: number }, Body: { to: string[], id: string } }>('/v1/chats/:chatId/messages/:seq/forward', {
    schema: {
      summary: 'Forward a message to other chats you are in (at most 5 at once by default)',
      params: { type: 'object', properties: { chatId: { type: 'string' }, seq: { type: 'integer', minimum: 1 } } },
      body: {
        type: 'object', required: ['to', 'id'], additionalProperties: false,
        properties: { to: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1000 }, id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,60}$' } }
      },
      response: {
        201: { type: 'object', properties: { forwarded: { type: 'array', items: { type: 'object', properties: { chat: { type: 'string' }, id: { type: 'string' }, seq: { type: 'integer' } } } } } },
        202: { type: 'object', properties: { forwarded: { type: 'array', items: { type: 'object', properties: { chat: { type: 'string' }, id: { type: 'string' }, seq: { type: 'integer' }, queued: { type: 'boolean' } } } } } }
      }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await takeSendBudget(d.id)
    const results = await s.sends.forward(d, req.params.chatId, req.params.seq, req.body.to, req.body.id)
    const forwarded = results.map((r) => 'queued' in r ? r : { chat: r.chat, id: r.id, seq: r.seq })
    return await reply.code(results.some((r) => 'queued' in r) ? 202 : 201).send({ forwarded })
  })
}
