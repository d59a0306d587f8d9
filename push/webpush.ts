// Web Push (RFC 8030, VAPID RFC 8292, payload encryption RFC 8291) and
// UnifiedPush (an RFC 8030 POST to the device's distributor, encrypted the
// same way when the device gave keys). The web-push package builds the
// request (the VAPID JWT, the aes128gcm body, the headers); it is sent here
// with fetch, so the answer's status and Retry-After are read as for the
// other providers, and the endpoint's address is checked first.
import { lookup } from 'node:dns/promises'
import webpush from 'web-push'
import { isPrivateAddress } from '../core/push-targets.js'
import type { PushTarget } from '../store/types.js'
import { collapseKey, encryptedPayload, networkFailure, outcomeOf, wakeUp, type PushNotice, type PushProvider, type SendOutcome } from './notice.js'

export interface VapidKeys { publicKey: string, privateKey: string, subject: string }

/** A day: a wake-up older than that is worth nothing (the device syncs when it next connects). */
const TTL_SECONDS = 86_400
const TIMEOUT_MS = 10_000

/**
 * The endpoint's host must not resolve to the operator's own network (a
 * device could otherwise make the server POST there). Checked before each
 * request; a DNS answer that changes between this lookup and the connection
 * is not caught (documented in docs/security.md).
 */
async function resolvesPublic (endpoint: string): Promise<boolean> {
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '')
  const addresses = await lookup(host, { all: true })
  return addresses.length > 0 && addresses.every((a) => !isPrivateAddress(a.address))
}

async function post (target: PushTarget, details: { method: string, headers: Record<string, string | number>, body: Buffer | null }, allowInsecure: boolean): Promise<SendOutcome> {
  try {
    if (!allowInsecure && !(await resolvesPublic(target.address))) return { ok: false, reason: 'private_address', detail: 'the endpoint resolves to a private address', drop: true }
    const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]))
    const res = await fetch(target.address, { method: details.method, headers, body: details.body === null ? null : new Uint8Array(details.body), signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'manual' })
    await res.arrayBuffer()
    return outcomeOf(res.status, res.headers.get('retry-after'), `http ${res.status}`)
  } catch (err) {
    return networkFailure(err)
  }
}

/** An RFC 8291 (aes128gcm) request to `target`, with VAPID (Web Push) or without (UnifiedPush). */
async function sendEncrypted (target: PushTarget, notice: PushNotice, vapid: VapidKeys | null, allowInsecure: boolean): Promise<SendOutcome> {
  const details = webpush.generateRequestDetails(
    { endpoint: target.address, keys: { p256dh: target.p256dh!, auth: target.auth! } },
    encryptedPayload(notice),
    { vapidDetails: vapid as VapidKeys, TTL: TTL_SECONDS, urgency: 'high', topic: collapseKey(notice.chatId), contentEncoding: 'aes128gcm' }
  )
  return await post(target, details as never, allowInsecure)
}

export class WebPushProvider implements PushProvider {
  readonly type = 'webpush' as const
  constructor (private readonly vapid: VapidKeys, private readonly allowInsecure: boolean) {}

  async send (target: PushTarget, notice: PushNotice): Promise<SendOutcome> {
    return await sendEncrypted(target, notice, this.vapid, this.allowInsecure)
  }
}

export class UnifiedPushProvider implements PushProvider {
  readonly type = 'unifiedpush' as const
  constructor (private readonly allowInsecure: boolean) {}

  async send (target: PushTarget, notice: PushNotice): Promise<SendOutcome> {
    if (target.p256dh !== undefined && target.auth !== undefined) return await sendEncrypted(target, notice, null, this.allowInsecure)
    // No keys: the distributor sees the wake-up in the clear, so it carries nothing more.
    const headers = { TTL: TTL_SECONDS, Urgency: 'high', Topic: collapseKey(notice.chatId), 'Content-Type': 'application/json' }
    return await post(target, { method: 'POST', headers, body: Buffer.from(JSON.stringify(wakeUp(notice))) }, this.allowInsecure)
  }
}
