// The end-to-end encryption key directory (docs/protocol.md, "End-to-end
// encryption"): publish the calling device's keys, count its pool, read a
// user's device identities, claim bundles to start sessions.
import type { FastifyPluginAsync } from 'fastify'
import type { Bundle } from '../../core/keys.js'
import type { DeviceIdentity, SignedPrekey } from '../../store/types.js'
import { requireDevice, type ApiServices } from '../context.js'

interface PrekeyJson { key_id: string, key: string, signature: string }
const prekeySchema = { type: 'object', additionalProperties: false, required: ['key_id', 'key', 'signature'], properties: { key_id: { type: 'string', maxLength: 64 }, key: { type: 'string', maxLength: 64 }, signature: { type: 'string', maxLength: 100 } } } as const
const toPrekey = (p: PrekeyJson): SignedPrekey => ({ keyId: p.key_id, key: p.key, signature: p.signature })
const prekeyJson = (p: SignedPrekey): PrekeyJson => ({ key_id: p.keyId, key: p.key, signature: p.signature })
const identityJson = (i: DeviceIdentity) => ({ device_id: i.deviceId, identity_key: i.identityKey, signing_key: i.signingKey, identity_signature: i.signature })
const identitySchema = { type: 'object', properties: { device_id: { type: 'string' }, identity_key: { type: 'string' }, signing_key: { type: 'string' }, identity_signature: { type: 'string' } } } as const
const USER = { type: 'string', pattern: '^u_[0-9a-f]{16}$' } as const

export const keyRoutes = (s: ApiServices): FastifyPluginAsync => async (app) => {
  app.put<{ Body: { identity_key?: string, signing_key?: string, identity_signature?: string, fallback_key?: PrekeyJson, one_time_keys?: PrekeyJson[] } }>('/v1/keys', {
    schema: {
      summary: 'Publish the calling device\'s keys: its identity (first time, or a new one), a fallback (last-resort) prekey, one-time prekeys',
      body: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: {
          identity_key: { type: 'string', maxLength: 64 },
          signing_key: { type: 'string', maxLength: 64 },
          identity_signature: { type: 'string', maxLength: 100 },
          fallback_key: prekeySchema,
          one_time_keys: { type: 'array', maxItems: 1000, items: prekeySchema }
        }
      },
      response: { 200: { type: 'object', properties: { one_time_keys: { type: 'integer' } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const b = req.body
    const r = await s.keys.upload(d, {
      ...(b.identity_key !== undefined ? { identityKey: b.identity_key } : {}),
      ...(b.signing_key !== undefined ? { signingKey: b.signing_key } : {}),
      ...(b.identity_signature !== undefined ? { identitySignature: b.identity_signature } : {}),
      ...(b.fallback_key !== undefined ? { fallbackKey: toPrekey(b.fallback_key) } : {}),
      ...(b.one_time_keys !== undefined ? { oneTimeKeys: b.one_time_keys.map(toPrekey) } : {})
    })
    return { one_time_keys: r.oneTimeKeys }
  })

  app.get('/v1/keys/count', {
    schema: { summary: 'How many one-time prekeys the calling device has left (and may hold), and whether it has a fallback key', response: { 200: { type: 'object', properties: { one_time_keys: { type: 'integer' }, max_one_time_keys: { type: 'integer' }, fallback_key: { type: 'boolean' } } } } }
  }, async (req) => {
    const r = await s.keys.count(requireDevice(s, req))
    return { one_time_keys: r.oneTimeKeys, max_one_time_keys: r.max, fallback_key: r.fallbackKey }
  })

  app.get<{ Params: { chatId: string } }>('/v1/keys/chats/:chatId', {
    schema: {
      summary: 'The devices a pairwise (Olm) message to a chat must be addressed to: every member\'s active devices with published keys, the calling one excepted',
      params: { type: 'object', properties: { chatId: { type: 'string', maxLength: 64 } } },
      response: { 200: { type: 'object', properties: { chat_id: { type: 'string' }, devices: { type: 'array', items: { type: 'object', properties: { user_id: { type: 'string' }, device_id: { type: 'string' }, identity_key: { type: 'string' } } } } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    return { chat_id: req.params.chatId, devices: s.keys.chatDevices(d, req.params.chatId).map((x) => ({ user_id: x.userId, device_id: x.deviceId, identity_key: x.identityKey })) }
  })

  app.get<{ Params: { userId: string } }>('/v1/keys/users/:userId', {
    schema: {
      summary: 'The published identities of a user\'s devices (yours, or someone sharing a chat with you): device lists and safety numbers',
      params: { type: 'object', properties: { userId: USER } },
      response: { 200: { type: 'object', properties: { user_id: { type: 'string' }, devices: { type: 'array', items: identitySchema } } } }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    return { user_id: req.params.userId, devices: (await s.keys.identities(d, req.params.userId)).map(identityJson) }
  })

  app.post<{ Body: { user: string, devices?: string[] } }>('/v1/keys/claim', {
    schema: {
      summary: 'Claim a prekey bundle for each of a user\'s devices (not the calling one), or for those named: each one-time prekey is handed out once',
      body: { type: 'object', additionalProperties: false, required: ['user'], properties: { user: USER, devices: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', maxLength: 64 } } } },
      response: {
        200: {
          type: 'object',
          properties: {
            user_id: { type: 'string' },
            devices: { type: 'array', items: { type: 'object', properties: { ...identitySchema.properties, prekey: { anyOf: [prekeySchema, { type: 'null' }] }, fallback: { type: 'boolean' } } } }
          }
        }
      }
    }
  }, async (req) => {
    const d = requireDevice(s, req)
    const bundles = await s.keys.claim(d, req.body.user, req.body.devices)
    return {
      user_id: req.body.user,
      devices: bundles.map((b: Bundle) => ({ device_id: b.deviceId, identity_key: b.identityKey, signing_key: b.signingKey, identity_signature: b.identitySignature, prekey: b.prekey === null ? null : prekeyJson(b.prekey), fallback: b.fallback }))
    }
  })
}
