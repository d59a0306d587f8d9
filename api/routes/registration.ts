// Registration: request a one-time code for a phone number, verify it, get a device token.
import type { FastifyPluginAsync } from 'fastify'
import { PHONE_PATTERN } from '../../core/registration.js'
import type { ApiServices } from '../context.js'

export const registrationRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { phone: string } }>('/v1/register/code', {
    config: { public: true },
    schema: {
      summary: 'Send a one-time code to a phone number',
      body: { type: 'object', required: ['phone'], additionalProperties: false, properties: { phone: { type: 'string', pattern: PHONE_PATTERN } } },
      response: { 202: { type: 'object', properties: { expires_in: { type: 'integer' }, sent: { type: 'boolean' }, code: { type: 'string' } }, required: ['expires_in', 'sent'] } }
    }
  }, async (req, reply) => {
    const r = await s.registration.requestCode(req.body.phone, req.ip)
    return reply.code(202).send({ expires_in: r.expiresIn, sent: r.sent, code: r.code })
  })

  app.post<{ Body: { phone: string, code: string, device_name?: string } }>('/v1/register/verify', {
    config: { public: true },
    schema: {
      summary: 'Verify the code; returns the user, a new device and its token',
      body: {
        type: 'object', required: ['phone', 'code'], additionalProperties: false,
        properties: { phone: { type: 'string', pattern: PHONE_PATTERN }, code: { type: 'string', pattern: '^[0-9]{6}$' }, device_name: { type: 'string', minLength: 1, maxLength: 64 } }
      },
      response: { 201: { type: 'object', properties: { user_id: { type: 'string' }, device_id: { type: 'string' }, token: { type: 'string' }, new_user: { type: 'boolean' } } } }
    }
  }, async (req, reply) => {
    const r = await s.registration.verify(req.body.phone, req.body.code, req.ip, req.body.device_name ?? 'primary')
    return reply.code(201).send({ user_id: r.userId, device_id: r.deviceId, token: r.token, new_user: r.newUser })
  })
}
