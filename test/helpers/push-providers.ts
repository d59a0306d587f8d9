// Local servers that play the push providers' side strictly, for tests that
// cannot reach FCM, APNs or a browser's push service: each checks the
// credentials the way its provider does (the OAuth JWT's and the APNs JWT's
// signatures, VAPID), the request's shape, and Web Push decrypts the payload
// with the subscription's private key. Each records what it accepted, and
// can be told to answer a target as gone, or to fail for a while.
import { createECDH, generateKeyPairSync, randomBytes, type ECDH } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createSecureServer, type Http2SecureServer, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import ece from 'http_ece'
import { importJWK, importSPKI, jwtVerify, decodeProtectedHeader } from 'jose'
import { selfSignedCert } from './tls.js'

/** What a provider does with a request for an address: accept it, say it is gone, or fail with a status (and Retry-After). */
type Behaviour = { kind: 'gone' } | { kind: 'fail', status: number, times: number, retryAfter?: string }

export interface Received {
  /** The token or endpoint id the push was for. */
  address: string
  /** What the device would get: the data (FCM), the body (APNs, UnifiedPush without keys) or the decrypted payload (Web Push). */
  payload: Record<string, unknown>
  headers: Record<string, string>
  at: number
}

abstract class Provider {
  readonly received: Received[] = []
  /** Every refusal it gave, with its reason (bad credentials, shape). */
  readonly rejected: string[] = []
  readonly #behaviours = new Map<string, Behaviour>()
  /** Requests answered, accepted or not. */
  requests = 0

  gone (address: string): void { this.#behaviours.set(address, { kind: 'gone' }) }
  failing (address: string, status: number, times: number, retryAfter?: string): void { this.#behaviours.set(address, { kind: 'fail', status, times, ...(retryAfter !== undefined ? { retryAfter } : {}) }) }

  /** undefined: accept; otherwise the scripted answer. */
  protected scripted (address: string): { status: number, retryAfter?: string, gone?: boolean } | undefined {
    const b = this.#behaviours.get(address)
    if (b === undefined) return undefined
    if (b.kind === 'gone') return { status: 410, gone: true }
    if (b.times <= 0) return undefined
    b.times--
    return { status: b.status, ...(b.retryAfter !== undefined ? { retryAfter: b.retryAfter } : {}) }
  }

  for (address: string): Received[] { return this.received.filter((r) => r.address === address) }
}

async function body (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

function headersOf (h: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([, v]) => typeof v === 'string') as Array<[string, string]>)
}

async function listenTls (server: HttpsServer | Http2SecureServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/**
 * FCM HTTP v1 and Google's OAuth token endpoint. The service account key it
 * writes has its token_uri here; the token endpoint verifies the assertion's
 * RS256 signature against the key's public half, issuer, audience, scope and
 * lifetime, and messages:send wants one of the tokens it issued and a
 * data-only, high-priority message with a collapse key.
 */
export class FcmProvider extends Provider {
  readonly project = 'mqchat-push-test'
  readonly clientEmail = 'push@mqchat-push-test.iam.gserviceaccount.com'
  readonly #keys = generateKeyPairSync('rsa', { modulusLength: 2048 })
  readonly #tokens = new Set<string>()
  #server!: HttpsServer
  url = ''
  keyFile = ''
  tokensIssued = 0

  async start (dir: string, cert: { cert: string, key: string }): Promise<void> {
    this.#server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => { this.handle(req, res).catch((err: Error) => { res.writeHead(500); res.end(err.message) }) })
    const port = await listenTls(this.#server)
    this.url = `https://localhost:${port}`
    this.keyFile = join(dir, 'fcm-service-account.json')
    writeFileSync(this.keyFile, JSON.stringify({
      type: 'service_account',
      project_id: this.project,
      client_email: this.clientEmail,
      private_key: this.#keys.privateKey.export({ type: 'pkcs8', format: 'pem' }),
      token_uri: `${this.url}/token`
    }))
  }

  private refuse (res: ServerResponse, status: number, why: string, details?: object): void {
    this.rejected.push(why)
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: status, message: why, ...(details ?? {}) } }))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++
    const raw = await body(req)
    if (req.method === 'POST' && req.url === '/token') {
      const form = new URLSearchParams(raw.toString('utf8'))
      if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return this.refuse(res, 400, 'token: not a form')
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return this.refuse(res, 400, 'token: wrong grant_type')
      try {
        const key = await importSPKI(this.#keys.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'RS256')
        const { payload } = await jwtVerify(form.get('assertion') ?? '', key, { issuer: this.clientEmail, audience: `${this.url}/token`, algorithms: ['RS256'], maxTokenAge: '1h' })
        if (payload.scope !== 'https://www.googleapis.com/auth/firebase.messaging') return this.refuse(res, 400, 'token: wrong scope')
        if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number' || payload.exp - payload.iat > 3600) return this.refuse(res, 400, 'token: lifetime over an hour')
      } catch (err) {
        return this.refuse(res, 400, `token: bad assertion (${(err as Error).message})`)
      }
      const token = randomBytes(24).toString('base64url')
      this.#tokens.add(token)
      this.tokensIssued++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ access_token: token, expires_in: 3599, token_type: 'Bearer' }))
      return
    }
    if (req.method !== 'POST' || req.url !== `/v1/projects/${this.project}/messages:send`) return this.refuse(res, 404, `no such route ${req.method} ${req.url}`)
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    if (auth === null || !this.#tokens.has(auth[1]!)) return this.refuse(res, 401, 'send: no valid access token', { status: 'UNAUTHENTICATED' })
    const m = (JSON.parse(raw.toString('utf8')) as { message?: { token?: unknown, data?: Record<string, unknown>, notification?: unknown, android?: { priority?: string, collapse_key?: string } } }).message
    if (m === undefined || typeof m.token !== 'string') return this.refuse(res, 400, 'send: no message.token', { status: 'INVALID_ARGUMENT' })
    if (m.notification !== undefined) return this.refuse(res, 400, 'send: a notification message (the body would be visible); data only', { status: 'INVALID_ARGUMENT' })
    if (m.data === undefined || Object.values(m.data).some((v) => typeof v !== 'string')) return this.refuse(res, 400, 'send: data values must be strings', { status: 'INVALID_ARGUMENT' })
    if (m.android?.priority !== 'high' || typeof m.android.collapse_key !== 'string') return this.refuse(res, 400, 'send: android priority high and a collapse_key expected', { status: 'INVALID_ARGUMENT' })
    const s = this.scripted(m.token)
    if (s?.gone === true) return this.refuse(res, 404, 'Requested entity was not found.', { status: 'NOT_FOUND', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }] })
    if (s !== undefined) {
      res.writeHead(s.status, { 'content-type': 'application/json', ...(s.retryAfter !== undefined ? { 'retry-after': s.retryAfter } : {}) })
      res.end(JSON.stringify({ error: { code: s.status, status: 'UNAVAILABLE' } }))
      return
    }
    this.received.push({ address: m.token, payload: m.data, headers: headersOf(req.headers), at: Date.now() })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ name: `projects/${this.project}/messages/${randomBytes(8).toString('hex')}` }))
  }

  async stop (): Promise<void> { await new Promise((resolve) => this.#server.close(resolve)); this.#server.closeAllConnections() }
}

/**
 * APNs over HTTP/2 with TLS. Verifies the provider JWT (ES256, signed by the
 * .p8 key it writes, with its key id and team id, at most an hour old) and
 * the headers a background push needs; a dead token gets 410 Unregistered.
 */
export class ApnsProvider extends Provider {
  readonly keyId = 'ABC123DEFG'
  readonly teamId = 'TEAM123456'
  readonly topic = 'org.mqchat.test'
  readonly #keys = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  #server!: Http2SecureServer
  url = ''
  keyFile = ''

  async start (dir: string, cert: { cert: string, key: string }): Promise<void> {
    this.#server = createSecureServer({ cert: cert.cert, key: cert.key })
    this.#server.on('stream', (stream, headers) => { this.handle(stream, headers).catch((err: Error) => { stream.respond({ ':status': 500 }); stream.end(err.message) }) })
    const port = await listenTls(this.#server)
    this.url = `https://localhost:${port}`
    this.keyFile = join(dir, 'apns-key.p8')
    writeFileSync(this.keyFile, this.#keys.privateKey.export({ type: 'pkcs8', format: 'pem' }))
  }

  private refuse (stream: ServerHttp2Stream, status: number, reason: string): void {
    this.rejected.push(reason)
    stream.respond({ ':status': status, 'content-type': 'application/json' })
    stream.end(JSON.stringify({ reason }))
  }

  private async handle (stream: ServerHttp2Stream, h: IncomingHttpHeaders): Promise<void> {
    this.requests++
    const chunks: Buffer[] = []
    for await (const c of stream) chunks.push(c as Buffer)
    const path = /^\/3\/device\/([0-9a-f]+)$/.exec(String(h[':path']))
    if (h[':method'] !== 'POST' || path === null) return this.refuse(stream, 405, 'MethodNotAllowed')
    const jwt = /^bearer (.+)$/.exec(String(h.authorization ?? ''))
    if (jwt === null) return this.refuse(stream, 403, 'MissingProviderToken')
    try {
      if (decodeProtectedHeader(jwt[1]!).kid !== this.keyId) return this.refuse(stream, 403, 'InvalidProviderToken')
      const key = await importSPKI(this.#keys.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'ES256')
      await jwtVerify(jwt[1]!, key, { issuer: this.teamId, algorithms: ['ES256'], maxTokenAge: '1h' })
    } catch {
      return this.refuse(stream, 403, 'InvalidProviderToken')
    }
    if (h['apns-topic'] !== this.topic) return this.refuse(stream, 400, 'BadTopic')
    if (h['apns-push-type'] !== 'background' || h['apns-priority'] !== '5') return this.refuse(stream, 400, 'BadPriority')
    const collapse = String(h['apns-collapse-id'] ?? '')
    if (collapse === '' || Buffer.byteLength(collapse) > 64) return this.refuse(stream, 400, 'BadCollapseId')
    const payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { aps?: Record<string, unknown> } & Record<string, unknown>
    if (payload.aps?.['content-available'] !== 1 || payload.aps.alert !== undefined) return this.refuse(stream, 400, 'BadPayload')
    const s = this.scripted(path[1]!)
    if (s?.gone === true) return this.refuse(stream, 410, 'Unregistered')
    if (s !== undefined) {
      stream.respond({ ':status': s.status, 'content-type': 'application/json', ...(s.retryAfter !== undefined ? { 'retry-after': s.retryAfter } : {}) })
      stream.end(JSON.stringify({ reason: s.status === 429 ? 'TooManyRequests' : 'ServiceUnavailable' }))
      return
    }
    this.received.push({ address: path[1]!, payload, headers: headersOf(h), at: Date.now() })
    stream.respond({ ':status': 200, 'apns-id': randomBytes(16).toString('hex') })
    stream.end()
  }

  async stop (): Promise<void> { await new Promise((resolve) => this.#server.close(resolve)) }
}

/** A browser's push subscription: its endpoint on the push service, and the keys only the browser holds. */
export interface Subscription { id: string, endpoint: string, keys: { p256dh: string, auth: string }, ecdh: ECDH, authSecret: string }

/**
 * A push service (RFC 8030) for Web Push and UnifiedPush endpoints. A Web
 * Push request must carry a VAPID JWT (ES256 under the server's public key,
 * for this origin, not expired) and an aes128gcm body, which is decrypted
 * with the subscription's private key; a UnifiedPush one without keys is
 * taken as it is.
 */
export class PushService extends Provider {
  #server!: HttpsServer
  url = ''
  readonly #subs = new Map<string, Subscription>()
  readonly #noVapid = new Set<string>()
  vapidPublicKey = ''

  async start (cert: { cert: string, key: string }, vapidPublicKey: string): Promise<void> {
    this.vapidPublicKey = vapidPublicKey
    this.#server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => { this.handle(req, res).catch((err: Error) => { res.writeHead(500); res.end(err.message) }) })
    const port = await listenTls(this.#server)
    this.url = `https://localhost:${port}`
  }

  /**
   * A new subscription, as a browser (or a UnifiedPush distributor) would make one, its keys generated
   * here. `encrypted` false: a UnifiedPush endpoint without keys. `vapid` false: encrypted, but with no
   * VAPID token expected (UnifiedPush with keys).
   */
  subscribe (encrypted = true, vapid = true): Subscription {
    const id = randomBytes(9).toString('base64url')
    const ecdh = createECDH('prime256v1')
    ecdh.generateKeys()
    const authSecret = randomBytes(16).toString('base64url')
    const sub = { id, endpoint: `${this.url}/push/${id}`, keys: { p256dh: ecdh.getPublicKey('base64url'), auth: authSecret }, ecdh, authSecret }
    if (encrypted) this.#subs.set(id, sub)
    if (!vapid) this.#noVapid.add(id)
    return sub
  }

  private refuse (res: ServerResponse, status: number, why: string): void {
    this.rejected.push(why)
    res.writeHead(status)
    res.end(why)
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++
    const raw = await body(req)
    const path = /^\/push\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '')
    if (req.method !== 'POST' || path === null) return this.refuse(res, 404, 'no such subscription')
    const id = path[1]!
    if (req.headers.ttl === undefined || !/^\d+$/.test(String(req.headers.ttl))) return this.refuse(res, 400, 'TTL header missing')
    const sub = this.#subs.get(id)
    let payload: Record<string, unknown>
    if (sub !== undefined && this.#noVapid.has(id) && req.headers.authorization !== undefined) return this.refuse(res, 400, 'a UnifiedPush request with an Authorization header')
    if (sub !== undefined && !this.#noVapid.has(id)) {
      const vapid = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '')
      if (vapid === null) return this.refuse(res, 401, 'no VAPID authorization')
      if (vapid[2] !== this.vapidPublicKey) return this.refuse(res, 403, 'VAPID key is not the one the subscription was made for')
      try {
        const point = Buffer.from(vapid[2]!, 'base64url')
        const key = await importJWK({ kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') }, 'ES256')
        const { payload: claims } = await jwtVerify(vapid[1]!, key, { audience: this.url, algorithms: ['ES256'] })
        if (typeof claims.exp !== 'number' || claims.exp * 1000 > Date.now() + 24 * 3600_000) return this.refuse(res, 403, 'VAPID token expiring more than 24 h ahead')
        if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) return this.refuse(res, 403, 'VAPID subject missing')
      } catch (err) {
        return this.refuse(res, 403, `VAPID token invalid (${(err as Error).message})`)
      }
    }
    if (sub !== undefined) {
      if (req.headers['content-encoding'] !== 'aes128gcm') return this.refuse(res, 415, 'not aes128gcm')
      try {
        payload = JSON.parse(ece.decrypt(raw, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.authSecret }).toString('utf8')) as Record<string, unknown>
      } catch (err) {
        return this.refuse(res, 400, `cannot decrypt (${(err as Error).message})`)
      }
    } else {
      // A UnifiedPush endpoint without keys: the distributor reads the body as it is.
      try { payload = JSON.parse(raw.toString('utf8')) as Record<string, unknown> } catch { return this.refuse(res, 400, 'not JSON') }
    }
    const s = this.scripted(id)
    if (s !== undefined) {
      res.writeHead(s.status, s.retryAfter !== undefined ? { 'retry-after': s.retryAfter } : {})
      res.end()
      return
    }
    this.received.push({ address: id, payload, headers: headersOf(req.headers), at: Date.now() })
    res.writeHead(201, { location: `${this.url}/message/${randomBytes(8).toString('hex')}` })
    res.end()
  }

  async stop (): Promise<void> { await new Promise((resolve) => this.#server.close(resolve)); this.#server.closeAllConnections() }
}

/** The three providers on one self-signed localhost certificate (the server trusts it through NODE_EXTRA_CA_CERTS). */
export async function startProviders (dir: string, vapidPublicKey: string): Promise<{ fcm: FcmProvider, apns: ApnsProvider, push: PushService, caFile: string, stop: () => Promise<void> }> {
  const cert = selfSignedCert(dir, 'localhost')
  const tls = { cert: readFileSync(cert.cert, 'utf8'), key: readFileSync(cert.key, 'utf8') }
  const fcm = new FcmProvider()
  const apns = new ApnsProvider()
  const push = new PushService()
  await fcm.start(dir, tls)
  await apns.start(dir, tls)
  await push.start(tls, vapidPublicKey)
  return { fcm, apns, push, caFile: cert.cert, stop: async () => { await Promise.all([fcm.stop(), apns.stop(), push.stop()]) } }
}
