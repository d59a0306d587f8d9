// Profiles and contact discovery (docs/protocol.md, "Profiles" and "Contacts").
import type { FastifyPluginAsync } from 'fastify'
import type { VisibleProfile } from '../../core/profiles.js'
import { MAX_PROFILES_PER_REQUEST } from '../../core/profiles.js'
import { PHONE_PATTERN } from '../../core/registration.js'
import { DomainError, notFound } from '../../core/errors.js'
import type { Profile } from '../../store/types.js'
import { requireDevice, type ApiServices } from '../context.js'

const USER = { type: 'string', pattern: '^u_[0-9a-f]{16}$' } as const
const PHONE = { type: 'string', pattern: PHONE_PATTERN } as const
const profileFields = { name: { type: ['string', 'null'] }, about: { type: ['string', 'null'] }, avatar: { type: ['string', 'null'] } } as const
const visibleSchema = { type: 'object', properties: { user_id: { type: 'string' }, ...profileFields, phone: { type: 'string' } } } as const
const visibleJson = (v: VisibleProfile) => ({ user_id: v.userId, name: v.name, about: v.about, avatar: v.avatar, ...(v.phone !== undefined ? { phone: v.phone } : {}) })
const ownJson = (userId: string, p: Profile) => ({ user_id: userId, name: p.name, about: p.about, avatar: p.avatar, updated_at: p.updatedAt })

export const profileRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  const ownSchema = { type: 'object', properties: { user_id: { type: 'string' }, ...profileFields, updated_at: { type: 'integer' } } } as const
  app.get('/v1/me/profile', { schema: { summary: 'Your profile', response: { 200: ownSchema } } }, async (req) => {
    const d = requireDevice(s, req)
    return ownJson(d.userId, await s.profiles.own(d.userId))
  })

  app.patch<{ Body: { name?: string | null, about?: string | null, avatar?: string | null } }>('/v1/me/profile', {
    schema: {
      summary: 'Change your profile: display name (≤ 64 characters), about (≤ 140), avatar (the media id of an image you uploaded); null clears one',
      body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: { type: ['string', 'null'], maxLength: 256 }, about: { type: ['string', 'null'], maxLength: 1024 }, avatar: { type: ['string', 'null'], maxLength: 64 } } },
      response: { 200: ownSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    return ownJson(d.userId, await s.profiles.update(d.userId, req.body))
  })

  app.get<{ Params: { userId: string } }>('/v1/users/:userId/profile', {
    schema: { summary: 'A user\'s profile, as their privacy settings let you see it (fields null otherwise)', params: { type: 'object', properties: { userId: USER } }, response: { 200: visibleSchema } }
  }, async (req) => {
    const d = requireDevice(s, req)
    // Someone the user blocked gets the answer for a user who does not exist.
    if (s.blocks.has(req.params.userId, d.userId)) throw notFound('user')
    const [v] = await s.profiles.view(d.userId, [req.params.userId])
    if (v === undefined) throw notFound('user')
    return visibleJson(v)
  })

  app.get<{ Querystring: { users: string } }>('/v1/profiles', {
    schema: {
      summary: `Several users' profiles at once (at most ${MAX_PROFILES_PER_REQUEST}): users=<id>,<id>,…; unknown users, and users who blocked you, are left out`,
      querystring: { type: 'object', required: ['users'], properties: { users: { type: 'string', maxLength: 2000 } } },
      response: { 200: { type: 'object', properties: { profiles: { type: 'array', items: visibleSchema } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const ids = req.query.users.split(',').filter((x) => x !== '')
    if (ids.length > MAX_PROFILES_PER_REQUEST) throw new DomainError('bad_request', `at most ${MAX_PROFILES_PER_REQUEST} users at once`, 400)
    if (ids.some((id) => !/^u_[0-9a-f]{16}$/.test(id))) throw new DomainError('bad_request', 'users is a comma-separated list of user ids', 400)
    const seen = (await s.profiles.view(d.userId, ids)).filter((v) => !s.blocks.has(v.userId, d.userId))
    return { profiles: seen.map(visibleJson) }
  })

  app.post<{ Body: { phones: string[], replace?: boolean } }>('/v1/contacts/discover', {
    bodyLimit: 1024 * 1024,
    schema: {
      summary: 'Contact discovery: which of these phone numbers are registered, with their user ids and the profiles you may see. "replace": true uploads your whole contact list (once an hour); otherwise the numbers are added to it (single lookups, from a small allowance)',
      body: { type: 'object', additionalProperties: false, required: ['phones'], properties: { phones: { type: 'array', minItems: 1, maxItems: 100000, items: PHONE }, replace: { type: 'boolean' } } },
      response: { 200: { type: 'object', properties: { registered: { type: 'array', items: visibleSchema }, contacts: { type: 'integer' } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const r = await s.contacts.discover(d.userId, req.body.phones, req.body.replace === true)
    return { registered: r.registered.map((x) => ({ ...visibleJson(x.profile), phone: x.phone })), contacts: r.contacts }
  })

  app.get('/v1/contacts', {
    schema: { summary: 'Your contact list: the numbers you uploaded', response: { 200: { type: 'object', properties: { phones: { type: 'array', items: { type: 'string' } } } } } }
  }, async (req) => {
    const d = requireDevice(s, req)
    return { phones: await s.contacts.list(d.userId) }
  })
}
