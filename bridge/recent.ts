// The recent messages of each chat, in memory, as they were committed: a
// device a little behind its chat (its window full, or just reconnected) is
// served from here instead of from history. Bounded in messages overall;
// the chats used least recently leave first, and a chat keeps at most its
// last `perChat` messages.
import { isExpired, type StoredMessage } from '../store/types.js'

interface Ring { messages: StoredMessage[] }

/** How often dropExpired looks through the cache, at most. */
const EXPIRY_CHECK_MS = 5000

export class RecentMessages {
  #chats = new Map<string, Ring>()
  #total = 0
  #nextExpiryCheck = 0

  constructor (private readonly maxTotal: number, private readonly perChat: number) {}

  add (m: StoredMessage): void {
    if (this.maxTotal === 0) return
    let ring = this.#chats.get(m.chatId)
    if (ring) {
      this.#chats.delete(m.chatId)
      // Seqs arrive in order; a gap (a message committed elsewhere) starts the chat afresh.
      const last = ring.messages.at(-1)
      if (last !== undefined && last.seq !== m.seq - 1) { this.#total -= ring.messages.length; ring.messages = [] }
    } else {
      ring = { messages: [] }
    }
    this.#chats.set(m.chatId, ring)
    ring.messages.push(m)
    this.#total++
    if (ring.messages.length > this.perChat) { ring.messages.shift(); this.#total-- }
    while (this.#total > this.maxTotal) {
      const [oldest, r] = this.#chats.entries().next().value as [string, Ring]
      this.#total -= r.messages.length
      this.#chats.delete(oldest)
    }
  }

  /**
   * Messages with seq > afterSeq, at most `limit`, if the cache holds the
   * message right after afterSeq; undefined when it does not (read history).
   */
  after (chatId: string, afterSeq: number, limit: number): StoredMessage[] | undefined {
    const ring = this.#chats.get(chatId)
    const first = ring?.messages[0]
    if (ring === undefined || first === undefined || first.seq > afterSeq + 1) return undefined
    const start = afterSeq + 1 - first.seq
    if (start >= ring.messages.length) return undefined
    const page = ring.messages.slice(start, start + limit)
    // An expired disappearing message is never served: history, which leaves it out, is read instead.
    const now = Date.now()
    if (page.some((m) => isExpired(m, now))) {
      this.forget(chatId)
      return undefined
    }
    return page
  }

  /** Forgets the chats holding an expired disappearing message (looking at most every few seconds). */
  dropExpired (now: number): void {
    if (now < this.#nextExpiryCheck) return
    this.#nextExpiryCheck = now + EXPIRY_CHECK_MS
    for (const [chatId, ring] of [...this.#chats]) {
      if (ring.messages.some((m) => isExpired(m, now))) this.forget(chatId)
    }
  }

  /** Edits, deletes and retention change history: a chat's cached copies are dropped. */
  forget (chatId: string): void {
    const ring = this.#chats.get(chatId)
    if (!ring) return
    this.#total -= ring.messages.length
    this.#chats.delete(chatId)
  }

  clear (): void {
    this.#chats.clear()
    this.#total = 0
  }

  get size (): number { return this.#total }
}
