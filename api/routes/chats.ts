// Chats and groups: create, list, show, rename, members, roles.
// Users may be named by id ("u_…") or by phone number ("+…").
import type { FastifyPluginAsync } from 'fastify'
import type { ChatView } from '../../core/chats.js'
import { DomainError } from '../../core/errors.js'
import { chatSettingsJson } from '../../core/chat-settings.js'
import { requireDevice, type ApiServices } from '../context.js'

const USER_REF = { type: 'string', pattern: '^(u_[0-9a-f]{16}|\\+[1-9][0-9]{6,14})$' } as const

export const chatJson = (c: ChatView & { lastSeq: number }) => ({
  chat_id: c.id,
  last_seq: c.lastSeq,
  kind: c.kind,
  name: c.name,
  created_by: c.createdBy,
  created_at: c.createdAt,
  e2ee: c.e2ee === true ? 'required' : 'off',
  disappearing: c.disappearing ?? null,
  members: c.members.map((m) => ({ user_id: m.userId, role: m.role, joined_at: m.joinedAt }))
})

const chatSchema = {
  type: 'object',
  properties: {
    chat_id: { type: 'string' },
    last_seq: { type: 'integer' },
    kind: { type: 'string', enum: ['direct', 'group'] },
    name: { type: ['string', 'null'] },
    created_by: { type: 'string' },
    created_at: { type: 'integer' },
    e2ee: { type: 'string', enum: ['required', 'off'] },
    disappearing: { type: ['integer', 'null'] },
    members: { type: 'array', items: { type: 'object', properties: { user_id: { type: 'string' }, role: { type: 'string' }, joined_at: { type: 'integer' } } } }
  }
} as const
const chatParams = { type: 'object', properties: { chatId: { type: 'string' } } } as const

/** Unread counts stop here (a client shows "999+"). */
const UNREAD_CAP = 1000

/** Member lists: about 50,000 user ids or phone numbers. */
const MEMBER_LIST_BODY_LIMIT = 1024 * 1024

export const chatRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  /** A chat as every route answers it: with its last seq. */
  async function chatReply (view: ChatView) {
    return chatJson({ ...view, lastSeq: await s.history.lastSeq(view.id) })
  }


  app.post<{ Body: { kind: 'direct' | 'group', user?: string, name?: string, members?: string[], e2ee?: 'required' | 'off' } }>('/v1/chats', {
    bodyLimit: MEMBER_LIST_BODY_LIMIT,
    schema: {
      summary: 'Create a direct chat (same id whichever side creates it) or a group',
      body: {
        type: 'object', required: ['kind'], additionalProperties: false,
        properties: {
          kind: { type: 'string', enum: ['direct', 'group'] },
          user: USER_REF,
          name: { type: 'string', minLength: 1, maxLength: 100 },
          members: { type: 'array', items: USER_REF, maxItems: s.chats.maxGroupMembers },
          // "required": plaintext messages are refused (docs/protocol.md, "End-to-end encryption").
          e2ee: { type: 'string', enum: ['required', 'off'] }
        }
      },
      response: { 200: chatSchema, 201: chatSchema }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    const b = req.body
    if (b.kind === 'direct') {
      if (!b.user) throw new DomainError('bad_request', 'a direct chat needs "user"')
      const { chat, created } = await s.chats.createDirect(d.userId, await s.users.resolve(d.userId, b.user), { e2ee: b.e2ee === 'required' })
      return reply.code(created ? 201 : 200).send(await chatReply(chat))
    }
    if (!b.name) throw new DomainError('bad_request', 'a group needs "name"')
    const members = await s.users.resolveAll(d.userId, b.members ?? [])
    return reply.code(201).send(await chatReply(await s.chats.createGroup(d.userId, b.name, members, { e2ee: b.e2ee === 'required' })))
  })

  app.get('/v1/chats', {
    schema: {
      summary: 'The caller\'s chats, each with the caller\'s read watermark, unread count (messages others sent since, up to 1000) and own settings',
      response: { 200: { type: 'object', properties: { chats: { type: 'array', items: { ...chatSchema, properties: { ...chatSchema.properties, read: { type: 'integer' }, unread: { type: 'integer' }, settings: { type: 'object', properties: { muted_until: { type: ['integer', 'null'] }, archived: { type: 'boolean' }, pinned: { type: 'boolean' } } } } } } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const [chats, settings] = await Promise.all([s.chats.listFor(d.userId), s.chatSettings.allOf(d.userId)])
    return {
      chats: await Promise.all(chats.map(async (view) => {
        const c = await chatReply(view)
        // Unread: what others sent after the user's read watermark (every device of theirs moves it), counted up to UNREAD_CAP.
        const read = (await s.history.getReceipt(view.id, d.userId))?.read ?? 0
        const unread = c.last_seq > read ? await s.history.countUnread(view.id, read, d.userId, UNREAD_CAP) : 0
        return { ...c, read, unread, settings: chatSettingsJson(settings.get(view.id)) }
      }))
    }
  })

  app.get<{ Params: { chatId: string } }>('/v1/chats/:chatId', {
    schema: { summary: 'One chat with its members', params: chatParams, response: { 200: chatSchema } }
  }, async (req) => {
    const d = requireDevice(s, req)
    return chatReply(await s.chats.view(req.params.chatId, d.userId))
  })

  app.patch<{ Params: { chatId: string }, Body: { name?: string, e2ee?: 'required' } }>('/v1/chats/:chatId', {
    schema: {
      summary: 'Rename a group (admins); require end-to-end encryption from now on ("e2ee": "required"; group admins, or either member of a direct chat; one way)',
      params: chatParams,
      body: { type: 'object', minProperties: 1, additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, e2ee: { type: 'string', enum: ['required'] } } },
      response: { 200: chatSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    if (req.body.e2ee === 'required') await s.chats.requireE2ee(d.userId, req.params.chatId)
    if (req.body.name !== undefined) await s.chats.rename(d.userId, req.params.chatId, req.body.name)
    return chatReply(await s.chats.view(req.params.chatId, d.userId))
  })

  const chatSettingsSchema = { type: 'object', properties: { muted_until: { type: ['integer', 'null'] }, archived: { type: 'boolean' }, pinned: { type: 'boolean' } } } as const
  app.get<{ Params: { chatId: string } }>('/v1/chats/:chatId/settings', {
    schema: { summary: "The caller's own settings of a chat (the same on each of their devices)", params: chatParams, response: { 200: chatSettingsSchema } }
  }, async (req) => {
    const d = requireDevice(s, req)
    if (!s.chats.isMember(req.params.chatId, d.userId)) throw new DomainError('not_member', 'not a member of this chat', 404)
    return chatSettingsJson(await s.chatSettings.of(d.userId, req.params.chatId))
  })

  app.patch<{ Params: { chatId: string }, Body: { muted_until?: number | null, archived?: boolean, pinned?: boolean } }>('/v1/chats/:chatId/settings', {
    schema: {
      summary: 'Change the caller\'s own settings of a chat, on all their devices: muted_until (ms since the epoch; null unmutes) stops pushes for it until then; archived; pinned (at most 3 chats)',
      params: chatParams,
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { muted_until: { type: ['integer', 'null'] }, archived: { type: 'boolean' }, pinned: { type: 'boolean' } } },
      response: { 200: chatSettingsSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const b = req.body
    const next = await s.chatSettings.update(d.userId, req.params.chatId, {
      ...(b.muted_until !== undefined ? { mutedUntil: b.muted_until } : {}),
      ...(b.archived !== undefined ? { archived: b.archived } : {}),
      ...(b.pinned !== undefined ? { pinned: b.pinned } : {})
    })
    return chatSettingsJson(next)
  })

  app.post<{ Params: { chatId: string }, Body: { users: string[] } }>('/v1/chats/:chatId/members', {
    bodyLimit: MEMBER_LIST_BODY_LIMIT,
    schema: {
      summary: 'Add members to a group (admins)',
      params: chatParams,
      body: { type: 'object', required: ['users'], additionalProperties: false, properties: { users: { type: 'array', items: USER_REF, minItems: 1, maxItems: s.chats.maxGroupMembers } } },
      response: { 200: chatSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    await s.chats.addMembers(d.userId, req.params.chatId, await s.users.resolveAll(d.userId, req.body.users))
    return chatReply(await s.chats.view(req.params.chatId, d.userId))
  })

  app.delete<{ Params: { chatId: string, user: string } }>('/v1/chats/:chatId/members/:user', {
    schema: {
      summary: 'Remove a member (admins), or leave the group (your own user id)',
      params: { type: 'object', properties: { chatId: { type: 'string' }, user: USER_REF } }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await s.chats.removeMember(d.userId, req.params.chatId, await s.users.resolve(d.userId, req.params.user))
    return reply.code(204).send()
  })

  app.put<{ Params: { chatId: string, user: string }, Body: { role: 'admin' | 'member' } }>('/v1/chats/:chatId/members/:user/role', {
    schema: {
      summary: 'Promote a member to admin or demote an admin (admins)',
      params: { type: 'object', properties: { chatId: { type: 'string' }, user: USER_REF } },
      body: { type: 'object', required: ['role'], additionalProperties: false, properties: { role: { type: 'string', enum: ['admin', 'member'] } } },
      response: { 200: chatSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    await s.chats.setRole(d.userId, req.params.chatId, await s.users.resolve(d.userId, req.params.user), req.body.role)
    return chatReply(await s.chats.view(req.params.chatId, d.userId))
  })
}
