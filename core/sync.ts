// Catch-up for a new or long-offline device: per-chat cursors in, what each
// chat has after its cursor out, in bounded pages. What retention purged is
// reported as a missing range, never silently skipped.
import type { HistoryStore, StoredMessage } from '../store/types.js'
import type { ChatService } from './chats.js'

export interface ChatSync {
  chatId: string
  lastSeq: number
  messages: StoredMessage[]
  /** The cursor to send next time for this chat. */
  nextAfter: number
  hasMore: boolean
  /** Seqs after the cursor that are no longer in history (retention). */
  missing?: { from: number, to: number }
  delivered: number
  read: number
}

export async function syncPage (
  history: HistoryStore, chats: ChatService, userId: string, cursors: Record<string, number>, limit: number
): Promise<{ chats: ChatSync[], hasMore: boolean }> {
  const out: ChatSync[] = []
  let budget = limit
  // Only what was sent while the user was a member: a cursor in a gap between memberships moves past it.
  const reader = chats.readerOf(history, userId)
  for (const chat of await chats.listFor(userId)) {
    const [lastSeq, firstSeq, mark] = await Promise.all([history.lastSeq(chat.id), history.firstSeq(chat.id), history.getReceipt(chat.id, userId)])
    const cursor = await reader.nextCursor(chat.id, cursors[chat.id] ?? 0, lastSeq)
    const entry: ChatSync = { chatId: chat.id, lastSeq, messages: [], nextAfter: cursor, hasMore: false, delivered: mark?.delivered ?? 0, read: mark?.read ?? 0 }
    let after = cursor
    if (firstSeq > cursor + 1) {
      // Retention purged readable seqs: reported, never skipped in silence.
      entry.missing = { from: cursor + 1, to: Math.min(firstSeq - 1, lastSeq) }
      after = await reader.nextCursor(chat.id, firstSeq - 1, lastSeq)
      entry.nextAfter = Math.min(after, lastSeq)
    }
    if (after < lastSeq) {
      if (budget > 0) {
        entry.messages = await reader.after(chat.id, after, budget)
        budget -= entry.messages.length
        if (entry.messages.length > 0) entry.nextAfter = await reader.nextCursor(chat.id, entry.messages[entry.messages.length - 1].seq, lastSeq)
      }
      entry.hasMore = entry.nextAfter < lastSeq
    }
    out.push(entry)
  }
  return { chats: out, hasMore: out.some((c) => c.hasMore) }
}
