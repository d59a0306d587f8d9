// Other users: their presence (as their privacy allows) and blocking them.
import type { FastifyPluginAsync } from 'fastify'
import { notFound } from '../../core/errors.js'
import { requireDevice, type ApiServices } from '../context.js'

export const userRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.get<{ Params: { userId: string } }>('/v1/users/:userId/presence', {
    schema: {
      summary: "A user's presence. Last seen follows their privacy setting: everyone, my chats (users sharing a chat), nobody",
      params: { type: 'object', properties: { userId: { type: 'string', pattern: '^u_[0-9a-f]{16}$' } } },
      response: { 200: { type: 'object', properties: { user: { type: 'string' }, state: { type: 'string' }, last_seen: { type: ['integer', 'null'] } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const target = req.params.userId
    const visibility = s.settings.of(target).lastSeen
    const sharing = s.mayWatch(d.userId, target)
    // Someone the user blocked learns nothing, whatever the user's visibility: the same answer as for a user who does not exist.
    if (!(await s.directory.getUser(target)) || s.blocks.has(target, d.userId) || (!sharing && visibility !== 'everyone')) throw notFound('user')
    const p = await s.presence.get(target)
    const showLastSeen = visibility === 'everyone' || (visibility === 'chats' && sharing) || d.userId === target
    return { user: target, state: p.state, last_seen: p.state === 'offline' && showLastSeen ? p.lastSeen : null }
  })

  app.get('/v1/blocks', { schema: { summary: 'Users you have blocked', response: { 200: { type: 'object', properties: { blocked: { type: 'array', items: { type: 'string' } } } } } } }, async (req) => {
    const d = requireDevice(s, req)
    return { blocked: s.blocks.list(d.userId) }
  })

  app.post<{ Body: { user: string } }>('/v1/blocks', {
    schema: {
      summary: 'Block a user: no direct messages either way, and they no longer see your presence',
      body: { type: 'object', required: ['user'], additionalProperties: false, properties: { user: { type: 'string', pattern: '^(u_[0-9a-f]{16}|\\+[1-9][0-9]{6,14})$' } } }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    // A phone number costs one lookup, registered or not.
    const target = await s.users.resolve(d.userId, req.body.user).catch((err: unknown) => {
      if ((err as { code?: string }).code === 'unknown_user') throw notFound('user')
      throw err
    })
    if (!await s.directory.getUser(target)) throw notFound('user')
    await s.blocks.block(d.userId, target)
    return reply.code(204).send()
  })

  app.delete<{ Params: { userId: string } }>('/v1/blocks/:userId', {
    schema: { summary: 'Unblock a user', params: { type: 'object', properties: { userId: { type: 'string' } } } }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await s.blocks.unblock(d.userId, req.params.userId)
    return reply.code(204).send()
  })
}
