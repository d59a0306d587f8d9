// Push targets of the calling device (docs/protocol.md, "Push"): register,
// list, remove.
import type { FastifyPluginAsync } from 'fastify'
import { DomainError } from '../../core/errors.js'
import { PUSH_TARGET_TYPES, type PushTargetInput } from '../../core/push-targets.js'
import type { PushTarget } from '../../store/types.js'
import { requireDevice, type ApiServices } from '../context.js'

/** What a device is shown of a target: enough to recognise it, never its keys. */
const targetJson = (t: PushTarget) => ({
  target_id: t.id,
  type: t.type,
  ...(t.type === 'fcm' || t.type === 'apns' ? { token: t.address } : { endpoint: t.address }),
  ...(t.type === 'apns' ? { topic: t.topic, environment: t.sandbox === true ? 'sandbox' : 'production' } : {}),
  ...(t.type === 'webpush' || t.type === 'unifiedpush' ? { encrypted: t.p256dh !== undefined } : {}),
  created_at: t.createdAt
})
const targetSchema = {
  type: 'object',
  properties: {
    target_id: { type: 'string' },
    type: { type: 'string', enum: [...PUSH_TARGET_TYPES] },
    token: { type: 'string' },
    endpoint: { type: 'string' },
    topic: { type: 'string' },
    environment: { type: 'string', enum: ['production', 'sandbox'] },
    encrypted: { type: 'boolean' },
    created_at: { type: 'integer' }
  }
} as const

export const pushRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.post<{ Body: PushTargetInput }>('/v1/push/targets', {
    bodyLimit: 8192,
    schema: {
      summary: 'Register a push target for the calling device (fcm, apns, webpush, unifiedpush); the same address again is the same target',
      body: {
        type: 'object',
        required: ['type'],
        additionalProperties: false,
        properties: {
          type: { type: 'string', enum: [...PUSH_TARGET_TYPES] },
          token: { type: 'string', maxLength: 4096 },
          topic: { type: 'string', maxLength: 255 },
          environment: { type: 'string', enum: ['production', 'sandbox'] },
          endpoint: { type: 'string', maxLength: 2048 },
          keys: { type: 'object', additionalProperties: false, required: ['p256dh', 'auth'], properties: { p256dh: { type: 'string', maxLength: 200 }, auth: { type: 'string', maxLength: 100 } } }
        }
      },
      response: { 201: targetSchema }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    return reply.code(201).send(targetJson(await s.push.add(d, req.body)))
  })

  app.get('/v1/push/targets', {
    schema: { summary: "The calling device's push targets", response: { 200: { type: 'object', properties: { targets: { type: 'array', items: targetSchema } } } } }
  }, async (req) => {
    const d = requireDevice(s, req)
    return { targets: (await s.push.of(d.id)).map(targetJson) }
  })

  app.delete<{ Params: { targetId: string } }>('/v1/push/targets/:targetId', {
    schema: { summary: 'Remove one of the calling device\'s push targets', params: { type: 'object', properties: { targetId: { type: 'string', maxLength: 64 } } } }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    if (!(await s.push.remove(d.id, req.params.targetId))) throw new DomainError('not_found', 'this device has no such push target', 404)
    return reply.code(204).send()
  })
}
