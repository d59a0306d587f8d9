// What a member may read of a chat: the seqs of their memberships. A user
// added to a group reads it from their join on; one removed and added back
// reads each period they were in it, and nothing sent while they were out.
// Every reader of history (HTTP pages, sync, message info, media, the XMPP
// archive, forwards and references) goes through a MemberHistory, so that a
// rule lives in one place.
import type { HistoryStore, MemberPeriod, StoredMessage } from '../store/types.js'
import { CONTENT_TYPES } from './message-rules.js'

/** Seqs from..to, inclusive; to is Infinity while the membership lasts. */
export interface SeqSpan { from: number, to: number }

/** The readable spans of membership periods, oldest first (an empty period, left before anything was sent, has none). */
export const spansOf = (periods: MemberPeriod[]): SeqSpan[] =>
  periods.map((p) => ({ from: Math.max(1, p.fromSeq), to: p.toSeq ?? Infinity })).filter((s) => s.to >= s.from)

export const inSpans = (spans: SeqSpan[], seq: number): boolean => spans.some((s) => seq >= s.from && seq <= s.to)

/** The message an operation (edit, delete, reaction) acts on; undefined for content (a reply's quote is not an operation). */
export const operandOf = (m: Pick<StoredMessage, 'type' | 'ref'>): number | undefined =>
  m.ref !== null && m.ref !== undefined && !CONTENT_TYPES.includes(m.type) ? m.ref : undefined

/** Whether a message is readable within spans: its seq is, and so is the message it acts on, if it is an operation. */
export function readableIn (spans: SeqSpan[], m: Pick<StoredMessage, 'seq' | 'type' | 'ref'>): boolean {
  const operand = operandOf(m)
  return inSpans(spans, m.seq) && (operand === undefined || inSpans(spans, operand))
}

/**
 * Where reading after `cursor` really starts: the cursor itself, or the seq
 * before the next span when the cursor stands in a gap. Infinity when
 * nothing after it is readable.
 */
export function skipHidden (spans: SeqSpan[], cursor: number): number {
  for (const s of spans) {
    if (cursor + 1 < s.from) return s.from - 1
    if (cursor + 1 <= s.to) return cursor
  }
  return Infinity
}

/** History as one user may read it: messages outside their membership periods do not exist for them. */
export class MemberHistory {
  #spans = new Map<string, Promise<SeqSpan[]>>()

  constructor (
    readonly history: HistoryStore,
    /** The user's readable spans of a chat (read once per chat by this view). */
    private readonly spansFor: (chatId: string) => Promise<SeqSpan[]>
  ) {}

  spans (chatId: string): Promise<SeqSpan[]> {
    let s = this.#spans.get(chatId)
    if (!s) this.#spans.set(chatId, s = this.spansFor(chatId))
    return s
  }

  /** One message, or undefined when it does not exist or is outside the user's periods (or acts on one that is). */
  async get (chatId: string, seq: number): Promise<StoredMessage | undefined> {
    const spans = await this.spans(chatId)
    if (!inSpans(spans, seq)) return undefined
    const m = await this.history.get(chatId, seq)
    return m && readableIn(spans, m) ? m : undefined
  }

  /** Readable messages with seq > afterSeq, oldest first, at most `limit`: one store read per period it crosses. */
  async after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = []
    const spans = await this.spans(chatId)
    for (const span of spans) {
      const need = limit - out.length
      if (need <= 0) break
      if (span.to <= afterSeq) continue
      const page = await this.history.after(chatId, Math.max(afterSeq, span.from - 1), need)
      const inside = page.filter((m) => m.seq <= span.to)
      // An edit, delete or reaction on a message the user cannot read is left out too.
      out.push(...inside.filter((m) => readableIn(spans, m)))
      // The history ended before the span did: nothing later exists.
      if (inside.length === page.length && page.length < need) break
    }
    return out
  }

  /** The cursor to report after reading up to `cursor`: past any gap that follows, never beyond the chat's last seq. */
  async nextCursor (chatId: string, cursor: number, lastSeq: number): Promise<number> {
    return Math.max(cursor, Math.min(skipHidden(await this.spans(chatId), cursor), lastSeq))
  }

  /** The lowest seq the user may read that is still in history. */
  async firstSeq (chatId: string): Promise<number> {
    const [first, spans] = await Promise.all([this.history.firstSeq(chatId), this.spans(chatId)])
    return Math.max(first, spans[0]?.from ?? Infinity)
  }

  /** The chat's last seq, or the end of the user's last period if it has ended. */
  async lastSeq (chatId: string): Promise<number> {
    const [last, spans] = await Promise.all([this.history.lastSeq(chatId), this.spans(chatId)])
    return Math.min(last, spans.at(-1)?.to ?? 0)
  }
}
