// Media over HTTP: upload slots and download URLs (/v1/media…), and — for the
// local backend — the presigned endpoints the URLs point at (/media/:id),
// which stream bytes straight between the socket and the disk.
import type { FastifyPluginAsync } from 'fastify'
import type { Readable } from 'node:stream'
import { DomainError } from '../../core/errors.js'
import type { MediaService } from '../../core/media.js'
import type { UrlSigner } from '../../media/signing.js'
import { requireDevice, type ApiServices } from '../context.js'

export interface MediaApi { media: MediaService }


function checkUrl (signer: UrlSigner, method: 'GET' | 'PUT', mediaId: string, q: { exp?: string, sig?: string }): void {
  const exp = Number(q.exp)
  const verdict = typeof q.sig === 'string' && Number.isSafeInteger(exp) ? signer.check(method, mediaId, exp, q.sig) : 'bad_signature'
  if (verdict === 'expired') throw new DomainError('url_expired', 'this media URL has expired; ask for a new one', 403)
  if (verdict !== 'ok') throw new DomainError('bad_signature', 'this media URL is not valid', 403)
}

export const mediaRoutes = (s: ApiServices, m: MediaApi, baseUrl: () => string): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { chat?: string, size: number, content_type: string, sha256: string } }>('/v1/media', {
    schema: {
      summary: 'Ask for an upload slot, for a chat (or, without one, an image for your avatar); the same bytes already stored are not uploaded again',
      body: {
        type: 'object', required: ['size', 'content_type', 'sha256'], additionalProperties: false,
        properties: {
          chat: { type: 'string' },
          size: { type: 'integer', minimum: 1 },
          content_type: { type: 'string', pattern: '^[a-z]+/[A-Za-z0-9.+-]+$' },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' }
        }
      }
    }
  }, async (req, reply) => {
    const d = requireDevice(s, req)
    const r = await m.media.requestSlot(d.userId, { ...(req.body.chat !== undefined ? { chatId: req.body.chat } : {}), size: req.body.size, contentType: req.body.content_type, sha256: req.body.sha256 })
    if (r.existing) return reply.code(200).send({ media_id: r.media.id, existing: true })
    const target = await m.media.uploadTarget(r.media, r.uploadExpiresAt, baseUrl())
    return reply.code(201).send({ media_id: r.media.id, existing: false, upload: { ...target, expires_at: r.uploadExpiresAt } })
  })

  app.post<{ Params: { mediaId: string } }>('/v1/media/:mediaId/download', {
    schema: { summary: 'A download URL, for the uploader or a member of a chat the media was sent in', params: { type: 'object', properties: { mediaId: { type: 'string' } } } }
  }, async (req) => {
    const d = requireDevice(s, req)
    const media = await m.media.readable(req.params.mediaId, d.userId)
    const { url, expiresAt } = await m.media.downloadUrl(media, baseUrl())
    return { media_id: media.id, url, expires_at: expiresAt, size: media.size, sha256: media.sha256, content_type: media.contentType }
  })

  // The local backend's presigned endpoints: no device token, the URL's signature is the permission.
  const local = m.media.local
  if (!local) return
  const signer = local.signer
  await app.register(async (raw) => {
    raw.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
    raw.put<{ Params: { mediaId: string }, Querystring: { exp?: string, sig?: string } }>('/media/:mediaId', {
      config: { public: true, streamedBody: true },
      schema: { summary: 'Upload the bytes of a slot (presigned URL)', hide: true }
    }, async (req, reply) => {
      checkUrl(signer, 'PUT', req.params.mediaId, req.query)
      const body = req.body as Readable | undefined
      if (!body) throw new DomainError('size_mismatch', 'no bytes were sent', 400)
      const media = await m.media.receive(req.params.mediaId, body)
      return reply.code(201).send({ media_id: media.id, size: media.size, sha256: media.sha256 })
    })

    raw.get<{ Params: { mediaId: string }, Querystring: { exp?: string, sig?: string } }>('/media/:mediaId', {
      config: { public: true },
      schema: { summary: 'Download (presigned URL); supports Range', hide: true }
    }, async (req, reply) => {
      checkUrl(signer, 'GET', req.params.mediaId, req.query)
      const media = await m.media.get(req.params.mediaId)
      if (!media || media.status !== 'complete') throw new DomainError('not_found', 'media not found', 404)
      // Whatever its type (text/html, image/svg+xml, …), media never runs as a page of the API's origin.
      reply.header('content-disposition', 'attachment')
      reply.header('x-content-type-options', 'nosniff')
      reply.header('content-security-policy', "default-src 'none'; sandbox")
      reply.header('accept-ranges', 'bytes')
      const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '')
      if (req.headers.range !== undefined) {
        let start = range?.[1] ? Number(range[1]) : NaN
        let end = range?.[2] ? Number(range[2]) : media.size - 1
        if (range && range[1] === '' && range[2] !== '') { start = Math.max(0, media.size - Number(range[2])); end = media.size - 1 }
        if (!range || !Number.isSafeInteger(start) || start > end || start >= media.size) {
          return reply.code(416).header('content-range', `bytes */${media.size}`).send({ error: { code: 'bad_range', message: 'the requested range is not satisfiable' } })
        }
        end = Math.min(end, media.size - 1)
        return reply.code(206).header('content-type', media.contentType).header('etag', `"${media.sha256}"`).header('content-range', `bytes ${start}-${end}/${media.size}`).header('content-length', String(end - start + 1))
          .send(m.media.read(media.id, { start, end }))
      }
      return reply.header('content-type', media.contentType).header('etag', `"${media.sha256}"`).header('content-length', String(media.size)).send(m.media.read(media.id))
    })
  })
}
