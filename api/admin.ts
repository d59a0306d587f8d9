// The operator's channel (README "Operating a server", `mqchat admin`,
// docs/protocol.md § Admin): a separate HTTP listener, on the loopback address only,
// open only when MQCHAT_ADMIN_TOKEN is set, and every request carrying that
// token. Reach it from elsewhere through SSH or `kubectl port-forward`, never
// through the public listeners. Every request is an audit log line.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { DomainError, notFound } from '../core/errors.js'
import type { AccountService } from '../core/account.js'
import type { ChatService } from '../core/chats.js'
import { deviceJson, type DeviceService } from '../core/devices.js'
import type { Metrics } from '../lib/metrics.js'
import type { DirectoryStore, HistoryStore, ProfileStore } from '../store/types.js'

export interface AdminServices {
  directory: DirectoryStore
  history: HistoryStore
  profiles: ProfileStore
  devices: DeviceService
  chats: ChatService
  account: AccountService
  metrics: Metrics
  /** What this profile can tell of its load: queues and store sizes (numbers, by name). */
  load: () => Promise<{ queues: Record<string, number>, stores: Record<string, number>, connections?: number }>
}

/** Messages per second are measured over this long. */
const RATE_WINDOW_MS = 60_000
const SAMPLE_MS = 5000

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** Counts of the accepted-messages counter, sampled, for a rate over the last minute. */
class RateMeter {
  #samples: Array<{ at: number, n: number }> = []
  readonly #timer: NodeJS.Timeout
  constructor (private readonly read: () => Promise<number>) {
    this.#timer = setInterval(() => { this.sample().catch(() => {}) }, SAMPLE_MS)
    this.#timer.unref()
  }

  async sample (): Promise<{ at: number, n: number }> {
    const s = { at: Date.now(), n: await this.read() }
    this.#samples.push(s)
    while (this.#samples.length > 0 && s.at - this.#samples[0]!.at > RATE_WINDOW_MS) this.#samples.shift()
    return s
  }

  async perSecond (): Promise<number> {
    const now = await this.sample()
    const first = this.#samples[0]!
    return now.at > first.at ? Math.round((now.n - first.n) / ((now.at - first.at) / 1000) * 10) / 10 : 0
  }

  stop (): void { clearInterval(this.#timer) }
}

/** Bytes in files: `names` in `dir`, or (without names) every file under `dir`; missing ones count 0. */
export async function fileSizes (dir: string, names?: string[]): Promise<number> {
  if (names !== undefined) return (await Promise.all(names.map(async (n) => (await stat(join(dir, n)).catch(() => undefined))?.size ?? 0))).reduce((a, b) => a + b, 0)
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(join(e.parentPath, e.name)).catch(() => undefined))?.size ?? 0))
  return sizes.reduce((a, b) => a + b, 0)
}

export async function startAdmin (s: AdminServices, opts: { token: string, port: number, node: string }, log: Logger): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 4096 })
  const expected = digest(`Bearer ${opts.token}`)
  const counterValue = async (name: string): Promise<number> => {
    const m = await s.metrics.registry.getSingleMetric(name)?.get()
    return (m?.values ?? []).reduce((sum, v) => sum + v.value, 0)
  }
  const rate = new RateMeter(async () => await counterValue('mqchat_messages_accepted_total'))
  app.addHook('onClose', async () => { rate.stop() })

  app.addHook('onRequest', async (req, reply) => {
    // Compared as digests, in constant time: neither the token nor its length leaks.
    if (!timingSafeEqual(digest(req.headers.authorization ?? ''), expected)) {
      log.warn({ audit: true, action: `${req.method} ${req.url}`, ip: req.ip, outcome: 'refused' }, 'admin request without the admin token')
      return await reply.code(401).send({ error: { code: 'unauthorized', message: 'the admin token is required (Authorization: Bearer <MQCHAT_ADMIN_TOKEN>)' } })
    }
  })
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode === 401) return
    log.info({ audit: true, action: `${req.method} ${req.routeOptions.url ?? req.url}`, params: req.params, query: req.query, ip: req.ip, status: reply.statusCode }, 'admin action')
  })
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof DomainError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } })
    const e = err as { validation?: unknown, message: string }
    if (e.validation !== undefined) return reply.code(400).send({ error: { code: 'bad_request', message: e.message } })
    log.error({ err }, 'admin request failed')
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error' } })
  })
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: { code: 'not_found', message: `no admin route ${req.method} ${req.url}` } }))

  const userJson = async (id: string) => {
    const user = await s.directory.getUser(id)
    if (user === undefined) throw notFound('user')
    const profile = await s.profiles.getProfile(id)
    return {
      user_id: user.id,
      phone: user.phone,
      created_at: user.createdAt,
      banned: s.devices.isBanned(id),
      name: profile?.name ?? null,
      devices: (await s.directory.listDevices(id)).map(deviceJson),
      chats: [...s.chats.chatIdsOf(id)].sort(),
      contacts: (await s.profiles.contacts(id)).length
    }
  }

  app.get('/admin/v1/stats', async () => {
    const load = await s.load()
    return {
      node: opts.node,
      connections: load.connections ?? await counterValue('mqchat_connections'),
      messages_per_second: await rate.perSecond(),
      messages_total: await counterValue('mqchat_messages_accepted_total'),
      queues: load.queues,
      stores: load.stores
    }
  })

  app.get<{ Querystring: { phone?: string, id?: string, limit?: number } }>('/admin/v1/users', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { phone: { type: 'string', pattern: '^\\+[0-9]{0,15}$' }, id: { type: 'string', pattern: '^u_[0-9a-f]{16}$' }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } }
  }, async (req) => {
    const found = await s.directory.findUsers(req.query.id !== undefined ? { id: req.query.id } : { phonePrefix: req.query.phone ?? '+' }, req.query.limit ?? 50)
    return { users: found.map((u) => ({ user_id: u.id, phone: u.phone, created_at: u.createdAt, banned: s.devices.isBanned(u.id), devices: s.devices.activeIds(u.id).size })) }
  })

  const userParams = { type: 'object', properties: { id: { type: 'string', pattern: '^u_[0-9a-f]{16}$' } } } as const
  app.get<{ Params: { id: string } }>('/admin/v1/users/:id', { schema: { params: userParams } }, async (req) => await userJson(req.params.id))

  app.post<{ Params: { id: string } }>('/admin/v1/users/:id/ban', { schema: { params: userParams } }, async (req) => {
    if (await s.directory.getUser(req.params.id) === undefined) throw notFound('user')
    await s.devices.setBanned(req.params.id, true)
    return { user_id: req.params.id, banned: true }
  })
  app.delete<{ Params: { id: string } }>('/admin/v1/users/:id/ban', { schema: { params: userParams } }, async (req) => {
    if (await s.directory.getUser(req.params.id) === undefined) throw notFound('user')
    await s.devices.setBanned(req.params.id, false)
    return { user_id: req.params.id, banned: false }
  })
  app.delete<{ Params: { id: string } }>('/admin/v1/users/:id', { schema: { params: userParams } }, async (req) => {
    const r = await s.account.erase(req.params.id)
    return { user_id: req.params.id, deleted: true, ...r }
  })

  app.get<{ Params: { id: string } }>('/admin/v1/chats/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } } } }, async (req) => {
    const chat = await s.directory.getChat(req.params.id)
    if (chat === undefined) throw notFound('chat')
    const members = await s.directory.members(chat.id)
    return {
      chat_id: chat.id, kind: chat.kind, name: chat.name, created_by: chat.createdBy, created_at: chat.createdAt,
      e2ee: chat.e2ee === true ? 'required' : 'off', disappearing: chat.disappearing ?? null,
      last_seq: await s.history.lastSeq(chat.id),
      members: members.map((m) => ({ user_id: m.userId, role: m.role, joined_at: m.joinedAt }))
    }
  })

  app.delete<{ Params: { id: string } }>('/admin/v1/devices/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^dv_[0-9a-f]{16}$' } } } } }, async (req) => {
    const d = s.devices.get(req.params.id)
    if (d === undefined || d.revokedAt !== null) throw notFound('device')
    await s.devices.revoke(d.userId, d.id)
    return { device_id: d.id, user_id: d.userId, revoked: true }
  })

  // Never public: the loopback address only.
  await app.listen({ port: opts.port, host: '127.0.0.1' })
  return app
}
