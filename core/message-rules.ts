// The rules for operations on earlier messages: who may edit, delete or react
// to what, and until when. Returns the effect to apply with the operation's
// append, or throws the refusal.
import type { MessageEffect, StoredMessage } from '../store/types.js'
import { DomainError } from './errors.js'

export interface MessageRules { editWindowMs: number, deleteWindowMs: number }

/** Message types that can be edited, deleted, reacted to and forwarded (the rest are operations). */
export const CONTENT_TYPES: readonly string[] = ['text', 'media', 'reply']

export interface Operation { type: string, ref: number | null, body: string }

export function effectOf (
  op: Operation, target: StoredMessage | undefined, actor: string, isAdmin: () => Promise<boolean>, now: number, rules: MessageRules
): Promise<MessageEffect | undefined> | MessageEffect | undefined {
  if (op.type === 'text' || op.type === 'media' || op.type === 'session' || op.type === 'timer') return undefined
  if (!target) throw new DomainError('unknown_message', `no message ${String(op.ref)} in this chat`, 404)
  if (op.type === 'reply') return undefined
  if (!CONTENT_TYPES.includes(target.type)) throw new DomainError('unknown_message', `message ${target.seq} is an operation, not a message`, 404)
  if (target.deletedAt) throw new DomainError('message_deleted', `message ${target.seq} was deleted`, 409)
  const seq = target.seq
  switch (op.type) {
    case 'edit':
      if (target.senderUser !== actor) throw new DomainError('not_sender', 'only the sender may edit a message', 403)
      if (now - target.serverTs > rules.editWindowMs) throw new DomainError('edit_window_expired', `a message can be edited for ${Math.round(rules.editWindowMs / 60000)} minutes after it was sent`, 403)
      return { kind: 'edit', seq, body: op.body, at: now }
    case 'delete':
      return (async () => {
        const own = target.senderUser === actor
        if (own && now - target.serverTs <= rules.deleteWindowMs) return { kind: 'delete', seq, at: now }
        if (await isAdmin()) return { kind: 'delete', seq, at: now }
        if (own) throw new DomainError('delete_window_expired', `a message can be deleted for everyone for ${Math.round(rules.deleteWindowMs / 3600000)} hours after it was sent`, 403)
        throw new DomainError('not_allowed', 'only the sender or a group admin may delete a message for everyone', 403)
      })()
    case 'reaction':
      return { kind: 'reaction', seq, userId: actor, emoji: JSON.parse(op.body) as string | null }
  }
  throw new DomainError('bad_request', `unknown operation ${op.type}`)
}
