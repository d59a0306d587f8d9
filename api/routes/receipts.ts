// Receipts over HTTP (the same path as chat/<chatId>/receipt) and "message info".
import type { FastifyPluginAsync } from 'fastify'
import { DomainError } from '../../core/errors.js'
import { requireDevice, type ApiServices } from '../context.js'

const chatParams = { type: 'object', properties: { chatId: { type: 'string' } } } as const

export const receiptRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.post<{ Params: { chatId: string }, Body: { type: 'delivered' | 'read', seq: number } }>('/v1/chats/:chatId/receipts', {
    schema: {
      summary: 'Mark a chat delivered or read up to a seq (watermarks never move backwards)',
      params: chatParams,
      body: { type: 'object', required: ['type', 'seq'], additionalProperties: false, properties: { type: { type: 'string', enum: ['delivered', 'read'] }, seq: { type: 'integer', minimum: 1 } } },
      response: { 200: { type: 'object', properties: { chat: { type: 'string' }, delivered: { type: 'integer' }, read: { type: 'integer' }, changed: { type: 'boolean' } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    if (!s.chats.isMember(req.params.chatId, d.userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
    const changed = await s.receipts.advance(d, req.params.chatId, req.body.type, req.body.seq)
    const w = changed ?? await s.history.getReceipt(req.params.chatId, d.userId)
    return { chat: req.params.chatId, delivered: w?.delivered ?? 0, read: w?.read ?? 0, changed: changed !== undefined }
  })

  app.get<{ Params: { chatId: string, seq: number } }>('/v1/chats/:chatId/messages/:seq/receipts', {
    schema: {
      summary: 'Message info: which members have a message delivered and read',
      params: { type: 'object', properties: { chatId: { type: 'string' }, seq: { type: 'integer', minimum: 1 } } },
      response: { 200: { type: 'object', properties: { chat: { type: 'string' }, seq: { type: 'integer' }, delivered: { type: 'array', items: { type: 'string' } }, read: { type: 'array', items: { type: 'string' } } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    if (!s.chats.isMember(req.params.chatId, d.userId)) throw new DomainError('not_found', 'chat not found', 404)
    return { chat: req.params.chatId, seq: req.params.seq, ...await s.receipts.info(req.params.chatId, req.params.seq, d.userId) }
  })
}
