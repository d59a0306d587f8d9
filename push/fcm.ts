// Firebase Cloud Messaging, HTTP v1. The service account's key signs a JWT
// (RS256, jose) that its token_uri exchanges for an OAuth access token
// (RFC 7523), kept until shortly before it expires; each push is then one
// POST to projects/<id>/messages:send. The message is data only (the app
// wakes and syncs; it builds the notification), high priority, collapsed
// per chat.
import { readFileSync } from 'node:fs'
import { SignJWT, importPKCS8 } from 'jose'
import type { PushTarget } from '../store/types.js'
import { collapseKey, networkFailure, outcomeOf, retryAfterMs, wakeUp, type PushNotice, type PushProvider, type SendOutcome } from './notice.js'

interface ServiceAccount { project_id: string, client_email: string, private_key: string, token_uri: string }

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging'
const TIMEOUT_MS = 10_000

/** Reads and checks the key file; throws with what is missing. */
export function readServiceAccount (path: string): ServiceAccount {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<ServiceAccount>
  const missing = (['project_id', 'client_email', 'private_key', 'token_uri'] as const).filter((k) => typeof raw[k] !== 'string' || raw[k] === '')
  if (missing.length > 0) throw new Error(`${path}: not a service account key (missing ${missing.join(', ')})`)
  return raw as ServiceAccount
}

export class FcmProvider implements PushProvider {
  readonly type = 'fcm' as const
  #token: { value: string, until: number } | undefined
  #pending: Promise<string> | undefined

  constructor (private readonly account: ServiceAccount, private readonly apiUrl: string) {}

  private async accessToken (): Promise<string> {
    if (this.#token !== undefined && this.#token.until > Date.now()) return this.#token.value
    this.#pending ??= this.fetchToken().finally(() => { this.#pending = undefined })
    return await this.#pending
  }

  private async fetchToken (): Promise<string> {
    const key = await importPKCS8(this.account.private_key, 'RS256')
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .setIssuer(this.account.client_email)
      .setAudience(this.account.token_uri)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key)
    const res = await fetch(this.account.token_uri, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
      signal: AbortSignal.timeout(TIMEOUT_MS)
    })
    const body = await res.json().catch(() => ({})) as { access_token?: string, expires_in?: number }
    if (!res.ok || typeof body.access_token !== 'string') throw new Error(`the token endpoint answered ${res.status}`)
    // Renewed a minute before it runs out.
    this.#token = { value: body.access_token, until: Date.now() + Math.max(0, (body.expires_in ?? 3600) - 60) * 1000 }
    return body.access_token
  }

  async send (target: PushTarget, notice: PushNotice): Promise<SendOutcome> {
    const message = {
      message: {
        token: target.address,
        // FCM data values are strings.
        data: Object.fromEntries(Object.entries(wakeUp(notice)).map(([k, v]) => [k, String(v)])),
        android: { priority: 'high', collapse_key: collapseKey(notice.chatId), ttl: '86400s' }
      }
    }
    try {
      let token = await this.accessToken()
      let res = await this.post(token, message)
      if (res.status === 401) {
        // The access token was refused (revoked, clock skew): one more try with a new one.
        this.#token = undefined
        token = await this.accessToken()
        res = await this.post(token, message)
      }
      const body = await res.json().catch(() => ({})) as { error?: { status?: string, details?: Array<{ errorCode?: string }> } }
      const code = body.error?.details?.find((d) => d.errorCode !== undefined)?.errorCode ?? body.error?.status
      if (code === 'UNREGISTERED') return { ok: false, reason: 'UNREGISTERED', drop: true }
      if (code === 'QUOTA_EXCEEDED' || code === 'UNAVAILABLE' || code === 'INTERNAL') {
        const after = retryAfterMs(res.headers.get('retry-after'))
        return { ok: false, reason: code, retry: true, ...(after !== undefined ? { retryAfterMs: after } : {}) }
      }
      return outcomeOf(res.status, res.headers.get('retry-after'), code ?? `http ${res.status}`)
    } catch (err) {
      return networkFailure(err)
    }
  }

  private async post (token: string, message: object): Promise<Response> {
    return await fetch(`${this.apiUrl.replace(/\/$/, '')}/v1/projects/${encodeURIComponent(this.account.project_id)}/messages:send`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(TIMEOUT_MS)
    })
  }
}
