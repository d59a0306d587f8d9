// The caller's account: who am I, privacy settings, and devices (link, list, revoke).
import type { FastifyPluginAsync } from 'fastify'
import type { ProfileVisibility, UserSettings } from '../../store/types.js'
import { deviceJson } from '../../core/devices.js'
import { settingsJson } from '../../core/settings.js'
import { requireDevice, type ApiServices } from '../context.js'
import { DomainError } from '../../core/errors.js'

const deviceSchema = { type: 'object', properties: { device_id: { type: 'string' }, name: { type: 'string' }, created_at: { type: 'integer' }, kind: { type: 'string', enum: ['primary', 'linked'] } } } as const

export const deviceRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.get('/v1/me', {
    schema: { summary: 'The calling device and its user', response: { 200: { type: 'object', properties: { user_id: { type: 'string' }, phone: { type: 'string' }, device_id: { type: 'string' } } } } }
  }, async (req) => {
    const d = requireDevice(s, req)
    const user = await s.directory.getUser(d.userId)
    return { user_id: d.userId, phone: user?.phone, device_id: d.id }
  })

  const settingsSchema = { type: 'object', properties: { read_receipts: { type: 'boolean' }, last_seen: { type: 'string', enum: ['everyone', 'chats', 'nobody'] }, profile: { type: 'string', enum: ['everyone', 'contacts', 'nobody'] } } } as const
  app.get('/v1/me/settings', { schema: { summary: 'Privacy settings', response: { 200: settingsSchema } } }, async (req) => {
    const d = requireDevice(s, req)
    return settingsJson(s.settings.of(d.userId))
  })

  app.patch<{ Body: { read_receipts?: boolean, last_seen?: 'everyone' | 'chats' | 'nobody', profile?: ProfileVisibility } }>('/v1/me/settings', {
    schema: {
      summary: 'Change privacy settings: read receipts on/off (off: you neither send nor see read receipts), who sees your last seen, who sees your profile',
      body: { ...settingsSchema, additionalProperties: false, minProperties: 1 },
      response: { 200: settingsSchema }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const patch: Partial<UserSettings> = {}
    if (req.body.read_receipts !== undefined) patch.readReceipts = req.body.read_receipts
    if (req.body.last_seen !== undefined) patch.lastSeen = req.body.last_seen
    if (req.body.profile !== undefined) patch.profile = req.body.profile
    return settingsJson(await s.settings.update(d.userId, patch))
  })

  app.get('/v1/devices', {
    schema: { summary: "The user's active devices", response: { 200: { type: 'object', properties: { devices: { type: 'array', items: deviceSchema } } } } }
  }, async (req) => {
    const d = requireDevice(s, req)
    return { devices: s.devices.list(d.userId).map(deviceJson) }
  })

  app.post<{ Body: { name?: string } }>('/v1/devices', {
    schema: {
      summary: 'Link a new device to the calling user (from the primary device only); returns its token once',
      body: { type: 'object', additionalProperties: false, properties: { name: { type: 'string', minLength: 1, maxLength: 64 } } },
      response: { 201: { type: 'object', properties: { device_id: { type: 'string' }, name: { type: 'string' }, token: { type: 'string' } } } }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    if (d.linked === true) throw new DomainError('forbidden', 'only the primary device (the one the phone number was verified on) links new devices', 403)
    const { device, token } = await s.devices.create(d.userId, req.body?.name ?? 'linked device', { linked: true })
    return reply.code(201).send({ device_id: device.id, name: device.name, token })
  })

  app.delete<{ Params: { deviceId: string } }>('/v1/devices/:deviceId', {
    schema: { summary: "Revoke one of the user's devices (the primary any, a linked device itself): its connections close and its token stops working", params: { type: 'object', properties: { deviceId: { type: 'string' } } } }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    await s.devices.revoke(d.userId, req.params.deviceId, d)
    return reply.code(204).send()
  })
}
