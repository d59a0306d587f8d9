// The account as a whole (docs/protocol.md, "Account"): erasure, and export.
import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { requireDevice, type ApiServices } from '../context.js'

export const accountRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.get('/v1/me/export', {
    schema: { summary: 'Everything of yours as one JSON document, streamed: profile, settings, devices (no secrets), contacts, chats and memberships, and the messages you sent in plaintext. The x-mqchat-export-chats header says how many chats it holds' }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await s.account.allowExport(d.userId)
    const at = new Date().toISOString().slice(0, 10)
    return await reply
      .header('content-type', 'application/json; charset=utf-8')
      .header('content-disposition', `attachment; filename="mqchat-export-${d.userId}-${at}.json"`)
      .header('x-mqchat-export-chats', String(s.account.chatCount(d.userId)))
      .send(Readable.from(s.account.exportOf(d.userId)))
  })

  app.delete<{ Body: { code: string } }>('/v1/me', {
    schema: {
      summary: 'Delete your account, for good: confirmed with a fresh code sent to your number (POST /v1/register/code first). Devices, keys, profile, contacts and media go at once, your messages become tombstones, your chats are left',
      body: { type: 'object', required: ['code'], additionalProperties: false, properties: { code: { type: 'string', pattern: '^[0-9]{6}$' } } },
      response: { 200: { type: 'object', properties: { deleted: { type: 'boolean' }, chats: { type: 'integer' }, messages: { type: 'integer' }, media: { type: 'integer' } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const r = await s.account.eraseConfirmed(d.userId, req.body.code, req.ip)
    return { deleted: true, ...r }
  })
}
