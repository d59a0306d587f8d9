// Apple Push Notification service, token-based: an ES256 JWT (jose) from the
// team's .p8 key, renewed every 50 minutes (Apple accepts one for an hour and
// refuses renewals more often than every 20), on one HTTP/2 connection per
// APNs server (node:http2, kept open and reopened when it closes). A push is
// a background notification (content-available, priority 5): the app wakes,
// syncs over MQTT and shows what it got; collapsed per chat.
import { connect, type ClientHttp2Session } from 'node:http2'
import { readFileSync } from 'node:fs'
import { SignJWT, importPKCS8 } from 'jose'
import type { PushTarget } from '../store/types.js'
import { collapseKey, networkFailure, outcomeOf, wakeUp, type PushNotice, type PushProvider, type SendOutcome } from './notice.js'

export interface ApnsOptions {
  keyPath: string
  keyId: string
  teamId: string
  /** One server for every target; undefined: Apple's, by the target's environment. */
  url?: string
}

const PRODUCTION = 'https://api.push.apple.com'
const SANDBOX = 'https://api.sandbox.push.apple.com'
const JWT_LIFETIME_MS = 50 * 60_000
const TIMEOUT_MS = 10_000
/** APNs reasons that mean the token will never work again. */
const DEAD = new Set(['BadDeviceToken', 'Unregistered', 'DeviceTokenNotForTopic'])

export class ApnsProvider implements PushProvider {
  readonly type = 'apns' as const
  readonly #key: string
  #jwt: { value: string, until: number } | undefined
  readonly #sessions = new Map<string, ClientHttp2Session>()

  constructor (private readonly opts: ApnsOptions) {
    this.#key = readFileSync(opts.keyPath, 'utf8')
  }

  private async bearer (): Promise<string> {
    if (this.#jwt !== undefined && this.#jwt.until > Date.now()) return this.#jwt.value
    const key = await importPKCS8(this.#key, 'ES256')
    const value = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: this.opts.keyId }).setIssuer(this.opts.teamId).setIssuedAt().sign(key)
    this.#jwt = { value, until: Date.now() + JWT_LIFETIME_MS }
    return value
  }

  private session (origin: string): ClientHttp2Session {
    const open = this.#sessions.get(origin)
    if (open !== undefined && !open.closed && !open.destroyed) return open
    const s = connect(origin)
    s.on('error', () => { this.#sessions.delete(origin) })
    s.on('close', () => { if (this.#sessions.get(origin) === s) this.#sessions.delete(origin) })
    // An idle connection does not keep the process alive.
    s.unref()
    this.#sessions.set(origin, s)
    return s
  }

  async send (target: PushTarget, notice: PushNotice): Promise<SendOutcome> {
    const origin = this.opts.url ?? (target.sandbox === true ? SANDBOX : PRODUCTION)
    const body = JSON.stringify({ aps: { 'content-available': 1 }, ...wakeUp(notice) })
    try {
      let outcome = await this.request(origin, target, body, notice.chatId, await this.bearer())
      if (!outcome.ok && outcome.reason === 'ExpiredProviderToken') {
        this.#jwt = undefined
        outcome = await this.request(origin, target, body, notice.chatId, await this.bearer())
      }
      return outcome
    } catch (err) {
      return networkFailure(err)
    }
  }

  private async request (origin: string, target: PushTarget, body: string, chatId: string, jwt: string): Promise<SendOutcome> {
    const session = this.session(origin)
    return await new Promise<SendOutcome>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': `/3/device/${target.address}`,
        authorization: `bearer ${jwt}`,
        'apns-topic': target.topic ?? '',
        'apns-push-type': 'background',
        'apns-priority': '5',
        'apns-collapse-id': collapseKey(chatId),
        'apns-expiration': String(Math.floor(Date.now() / 1000) + 86_400),
        'content-type': 'application/json'
      })
      req.setTimeout(TIMEOUT_MS, () => req.close())
      let status = 0
      let retryAfter: string | null = null
      let text = ''
      req.on('response', (h) => { status = Number(h[':status']); retryAfter = typeof h['retry-after'] === 'string' ? h['retry-after'] : null })
      req.setEncoding('utf8')
      req.on('data', (d: string) => { text += d })
      req.on('end', () => {
        if (status === 0) return reject(new Error('no answer'))
        let reason = `http ${status}`
        try { reason = (JSON.parse(text) as { reason?: string }).reason ?? reason } catch { /* no body */ }
        if (DEAD.has(reason)) return resolve({ ok: false, reason, drop: true })
        resolve(outcomeOf(status, retryAfter, reason))
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  close (): void {
    for (const s of this.#sessions.values()) s.close()
    this.#sessions.clear()
  }
}
