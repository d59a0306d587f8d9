// Inbox events: the JSON a device receives on dev/<deviceId>/inbox.
// docs/protocol.md documents each; keep the two in step.
import type { ChatChange } from '../core/chats.js'
import type { StoredMessage } from '../store/types.js'

/** A message's wire fields but its body: shared by `msg` events and history/sync JSON. */
export function messageFields (m: StoredMessage) {
  return {
    chat: m.chatId, seq: m.seq, id: m.clientId, from: m.senderUser, device: m.senderDevice,
    kind: m.type, ts: m.serverTs, cts: m.clientTs,
    ref: m.ref ?? undefined, forwarded: m.forwarded === true ? true : undefined, media: m.media ?? undefined,
    expires_at: m.expiresAt ?? undefined
  }
}

/** `msg`: a chat message. The stored body is spliced in as the JSON text the sender sent. */
export function msgEvent (m: StoredMessage): string {
  const head = JSON.stringify({ type: 'msg', ...messageFields(m) })
  return `${head.slice(0, -1)},"body":${m.body}}`
}

/** `ack`: the single tick. The sender's client id and the seq it got. */
export function ackEvent (m: StoredMessage, duplicate: boolean): string {
  return JSON.stringify({ type: 'ack', chat: m.chatId, id: m.clientId, seq: m.seq, ts: m.serverTs, duplicate })
}

export interface Refusal { code: string, message: string, id?: string, chat?: string, topic?: string, details?: Record<string, unknown> }

/** `error`: a publish that was refused, with a stable reason code. */
export function errorEvent (r: Refusal): string {
  return JSON.stringify({ type: 'error', code: r.code, message: r.message, id: r.id, chat: r.chat, topic: r.topic, ...r.details, ts: Date.now() })
}

/** `chat`: the chat was created or its members, roles or name changed. */
export function chatEvent (c: ChatChange): string {
  return JSON.stringify({ type: 'chat', chat: c.chatId, change: c.change, by: c.by, users: c.users, name: c.name, role: c.role, seconds: c.seconds, seq: c.seq, ts: c.at })
}

/** `sync`: the device's queue overflowed; fetch what it missed with POST /v1/sync. */
export function syncEvent (reason: 'queue_overflow', dropped: number): string {
  return JSON.stringify({ type: 'sync', reason, dropped, ts: Date.now() })
}

/** `sync` for the device's event log: its oldest events were dropped while it was away. */
export const overflowEvent = (dropped: number): string => syncEvent('queue_overflow', dropped)

/** `sync` in a chat's order: message `seq` is larger than the device's connection accepts (its MQTT 5 Maximum Packet Size); read it over HTTP. */
export function tooLargeEvent (chatId: string, seq: number, size: number): string {
  return JSON.stringify({ type: 'sync', reason: 'too_large', chat: chatId, seq, size, ts: Date.now() })
}

/** `sync` in a chat's order: retention purged seqs from..to before this device had them (they are gone for everyone). */
export function purgedEvent (chatId: string, from: number, to: number): string {
  return JSON.stringify({ type: 'sync', reason: 'history_purged', chat: chatId, from, to, ts: Date.now() })
}
