// What a push says, and what a provider answers. A push is a wake-up: it
// names the chat, the newest seq and how many messages the device has not
// received there, never a message body (docs/protocol.md, "Push", lists
// what each provider sees). Only Web Push and UnifiedPush with keys, whose
// payload is encrypted for the device (RFC 8291), add the sender and the
// chat's name.
import { createHash } from 'node:crypto'
import type { PushTarget, PushTargetType } from '../store/types.js'

export interface PushNotice {
  /** message: new messages in a chat; chat: the device's user was added to a chat. */
  kind: 'message' | 'chat'
  chatId: string
  /** The newest seq it is about (0 for a chat change). */
  seq: number
  /** Messages in the chat the device has not received (at least 1 for a message). */
  count: number
  /** Encrypted payloads only: who wrote, and the chat's name. */
  sender?: string
  chatName?: string | null
}

export type SendOutcome =
  | { ok: true }
  /**
   * `reason`: a short, bounded label (an HTTP status, a provider's error code, "network"), used as a
   * metric label; `detail`: the rest, for the log. `drop`: the target is dead (unregistered, bad token)
   * and is removed; `retry`: try again (429, 5xx, a network error), after `retryAfterMs` if given.
   */
  | { ok: false, reason: string, detail?: string, drop?: boolean, retry?: boolean, retryAfterMs?: number }

export interface PushProvider {
  readonly type: PushTargetType
  send (target: PushTarget, notice: PushNotice): Promise<SendOutcome>
  close?: () => Promise<void> | void
}

/** The wake-up every provider may see: chat id, seq, count. */
export function wakeUp (n: PushNotice): Record<string, string | number> {
  return { type: n.kind, chat: n.chatId, seq: n.seq, count: n.count }
}

/** The encrypted payload's fields: the wake-up, the sender and the chat's name. */
export function encryptedPayload (n: PushNotice): string {
  return JSON.stringify({ ...wakeUp(n), ...(n.sender !== undefined ? { sender: n.sender } : {}), ...(n.chatName !== undefined && n.chatName !== null ? { chat_name: n.chatName } : {}) })
}

/**
 * The collapse key of a chat: one notification per chat on the device. A
 * hash of the chat id, so it fits every provider's limit (Web Push's Topic:
 * 32 base64url characters; APNs: 64 bytes) and says nothing to the provider.
 */
export function collapseKey (chatId: string): string {
  return createHash('sha256').update(chatId).digest('base64url').slice(0, 32)
}

/** A Retry-After header (seconds or an HTTP date) in ms; undefined when absent or unreadable. */
export function retryAfterMs (header: string | null | undefined, now = Date.now()): number | undefined {
  if (header === null || header === undefined || header === '') return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const at = Date.parse(header)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** The common reading of an HTTP answer: 2xx sent; 404 and 410 a dead target; 429 and 5xx retried. */
export function outcomeOf (status: number, retryAfter: string | null, reason: string): SendOutcome {
  if (status >= 200 && status < 300) return { ok: true }
  if (status === 404 || status === 410) return { ok: false, reason, drop: true }
  if (status === 429 || status >= 500) {
    const after = retryAfterMs(retryAfter)
    return { ok: false, reason, retry: true, ...(after !== undefined ? { retryAfterMs: after } : {}) }
  }
  return { ok: false, reason }
}

/** A request that could not be made or answered (DNS, connection, timeout): retried. */
export function networkFailure (err: unknown): SendOutcome {
  return { ok: false, reason: 'network', detail: (err as Error).message, retry: true }
}
