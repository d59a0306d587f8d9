// Message archive (XEP-0313, urn:xmpp:mam:2) over chat history: the user's
// archive (every direct chat, in server-time order), one conversation
// (`with` = a contact's bare JID) or a group (a query to its room). Every
// result id is `<chatId>:<seq>`, the same id the live stanza had, so RSM
// `after`/`before` continue from any message a client has. A group's archive
// holds only what was sent while the user was a member.
import { isEncryptedBody } from '../bridge/e2ee.js'
import { xml, type Element } from '@xmpp/xml'
import jid from '@xmpp/jid'
import type { ChatService } from '../core/chats.js'
import type { StoredMessage } from '../store/types.js'
import type { MemberHistory } from '../core/membership.js'
import { stanzaError } from './stream.js'
import { parseMessageRef } from './ids.js'

export const NS_MAM = 'urn:xmpp:mam:2'
const RSM = 'http://jabber.org/protocol/rsm'
const DATA = 'jabber:x:data'
const FORWARD = 'urn:xmpp:forward:0'
const DELAY = 'urn:xmpp:delay'
const SID = 'urn:xmpp:sid:0'
const MAX_PAGE = 200
const DEFAULT_PAGE = 50

export interface ArchiveHost {
  who: { userId: string }
  bare: string
  full: string
  domain: string
  groupsDomain: string
  chats: ChatService
  /** History as this user may read it: nothing from outside their membership periods. */
  history: MemberHistory
  /** The direct chat with a user, if there is one. */
  existingDirectChat (other: string): string | undefined
  /** The user's direct chats. */
  directChats (): string[]
}

const refOf = (chat: string, id: string | undefined): number | undefined => {
  if (id === undefined || !id.startsWith(`${chat}:`)) return undefined
  const seq = Number(id.slice(chat.length + 1))
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined
}

/** Answers a MAM query (an iq set with <query xmlns='urn:xmpp:mam:2'/>): result messages, then the iq result with <fin/>. */
export async function archiveQuery (h: ArchiveHost, iq: Element): Promise<Element[]> {
  const query = iq.getChild('query', NS_MAM)
  const fail = (condition: string, text: string, type = 'cancel'): Element[] => [stanzaError(iq, { from: iq.attrs.to ?? h.bare, to: h.full }, type, condition, text)]
  if (!query) return fail('bad-request', 'no MAM query')
  const field = (name: string): string | undefined => query.getChild('x', DATA)?.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value') ?? undefined
  // Paging (XEP-0059): max, after <id>, before <id> or an empty before (the last page).
  const set = query.getChild('set', RSM)
  const max = Math.min(MAX_PAGE, Math.max(0, Number(set?.getChildText('max') ?? DEFAULT_PAGE) || 0))

  // Which chat: a room's archive, or the user's archive narrowed to one contact.
  let chat: string | undefined
  let room: string | undefined
  const to = iq.attrs.to
  if (to !== undefined && to.endsWith(`@${h.groupsDomain}`)) {
    room = to
    chat = to.slice(0, to.indexOf('@'))
    if (!h.chats.isMember(chat, h.who.userId)) return fail('forbidden', 'only members read a group\'s archive', 'auth')
  } else if (to === undefined || to === h.bare) {
    const w = field('with')
    if (w === undefined) return userArchive(h, iq, { set, max, field }, (c, t) => fail(c, t, 'modify'))
    let other
    try { other = jid(w) } catch { return fail('bad-request', 'with is not a JID', 'modify') }
    if (other.domain === h.groupsDomain) {
      room = other.bare().toString()
      chat = other.local
      if (!h.chats.isMember(chat, h.who.userId)) return fail('forbidden', 'only members read a group\'s archive', 'auth')
    } else {
      chat = h.existingDirectChat(other.local)
      if (chat === undefined) return fail('item-not-found', `no conversation with ${w}`)
    }
  } else {
    return fail('forbidden', 'only your own archive and your groups\' archives can be read', 'auth')
  }

  const afterId = set?.getChildText('after') ?? undefined
  const before = set?.getChild('before')
  let messages: StoredMessage[]
  if (before !== undefined) {
    const beforeText = before.text()
    const upTo = beforeText === '' ? await h.history.lastSeq(chat) + 1 : refOf(chat, beforeText)
    if (upTo === undefined) return fail('item-not-found', 'before is not a message id of this chat')
    const from = Math.max(0, upTo - 1 - max)
    messages = upTo - 1 - from > 0 ? (await h.history.after(chat, from, upTo - 1 - from)).filter((m) => m.seq < upTo) : []
  } else {
    const after = afterId === undefined ? 0 : refOf(chat, afterId)
    if (after === undefined) return fail('item-not-found', 'after is not a message id of this chat')
    messages = max > 0 ? await h.history.after(chat, after, max) : []
  }
  const last = await h.history.lastSeq(chat)
  const first = await h.history.firstSeq(chat)
  const lo = messages.at(0)?.seq
  const hi = messages.at(-1)?.seq
  // Complete: this page reaches the end it was paging towards.
  const complete = before !== undefined ? (lo === undefined || lo <= first) : (hi === undefined || hi >= last)
  return page(h, iq, messages.map((m) => ({ chat: chat as string, room, m })), complete, Math.max(0, last - first + 1))
}

interface Found { chat: string, room: string | undefined, m: StoredMessage }

/** What an XMPP client is shown of an end-to-end encrypted message (XMPP devices hold no mqchat keys; docs/protocol.md §6). */
export const ENCRYPTED_NOTICE = '[an end-to-end encrypted message: open it in an mqchat client that holds this chat\'s keys]'

/** The result messages and the closing iq result with <fin/>. */
function page (h: ArchiveHost, iq: Element, found: Found[], complete: boolean, count?: number): Element[] {
  const queryid = iq.getChild('query', NS_MAM)?.attrs.queryid
  const out: Element[] = []
  for (const { chat, room, m } of found) {
    if (m.body === null || m.body === undefined) continue
    // A string body is its text; any other body goes out as the JSON text it was stored as (never parsed, however it nests).
    let text = isEncryptedBody(m.body) ? ENCRYPTED_NOTICE : m.body
    if (m.body.startsWith('"')) {
      try { text = JSON.parse(m.body) as string } catch { continue }
    }
    const ref = `${chat}:${m.seq}`
    const inner = room !== undefined
      ? xml('message', { type: 'groupchat', from: `${room}/${m.senderUser}`, id: ref }, xml('body', {}, text), xml('stanza-id', { xmlns: SID, id: ref, by: room }))
      : xml('message', { type: 'chat', from: `${m.senderUser}@${h.domain}/${m.senderDevice}`, to: m.senderUser === h.who.userId ? `${h.chats.otherMember(chat, h.who.userId) ?? ''}@${h.domain}` : h.bare, id: ref },
        xml('body', {}, text), xml('stanza-id', { xmlns: SID, id: ref, by: h.bare }))
    out.push(xml('message', { from: room ?? h.bare, to: h.full, id: `mam-${ref}` },
      xml('result', { xmlns: NS_MAM, id: ref, ...(queryid !== undefined ? { queryid } : {}) },
        xml('forwarded', { xmlns: FORWARD }, xml('delay', { xmlns: DELAY, stamp: new Date(m.serverTs).toISOString() }), inner))))
  }
  const a = found.at(0)
  const z = found.at(-1)
  out.push(xml('iq', { type: 'result', id: iq.attrs.id, from: iq.attrs.to ?? h.bare, to: h.full },
    xml('fin', { xmlns: NS_MAM, complete: String(complete) },
      xml('set', { xmlns: RSM }, ...(a && z ? [xml('first', {}, `${a.chat}:${a.m.seq}`), xml('last', {}, `${z.chat}:${z.m.seq}`)] : []), ...(count !== undefined ? [xml('count', {}, String(count))] : [])))))
  return out
}

/** Orders messages of several chats: server time, then chat id, then seq (a total order every page agrees on). */
type Key = [number, string, number]
const keyOf = (f: Found): Key => [f.m.serverTs, f.chat, f.m.seq]
const cmp = (a: Key, b: Key): number => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2]

/** The smallest seq of a chat whose server time is at least `ts` (lastSeq + 1 when none): server times rise with seq. */
async function seqFrom (h: ArchiveHost, chat: string, ts: number): Promise<number> {
  // A position, not content: searched in the whole history (reads through h.history skip what the user may not see).
  const all = h.history.history
  let lo = await all.firstSeq(chat)
  let hi = await all.lastSeq(chat) + 1
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    const m = await all.get(chat, mid)
    if (m === undefined || m.serverTs < ts) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The user's archive across every direct chat (a query without `with`, as
 * clients send to catch up): pages in (server time, chat, seq) order.
 * Forward from `start` or after an id; backward before an id, or the newest
 * page for an empty <before/>. Each chat is read from the seq its part of
 * the page starts at (found by server time), so a page costs a few reads
 * per chat, not a scan.
 */
async function userArchive (h: ArchiveHost, iq: Element, q: { set: Element | undefined, max: number, field: (name: string) => string | undefined }, fail: (c: string, t: string) => Element[]): Promise<Element[]> {
  const { set, max, field } = q
  const chats = h.directChats()
  const cursorOf = async (id: string): Promise<Key | undefined> => {
    const ref = parseMessageRef(id)
    if (!ref || !chats.includes(ref.chat)) return undefined
    const m = await h.history.get(ref.chat, ref.seq)
    return m ? [m.serverTs, ref.chat, ref.seq] : undefined
  }
  const startText = field('start')
  const endText = field('end')
  const start = startText !== undefined ? Date.parse(startText) : undefined
  const end = endText !== undefined ? Date.parse(endText) : undefined
  if ((start !== undefined && Number.isNaN(start)) || (end !== undefined && Number.isNaN(end))) return fail('bad-request', 'start and end are XEP-0082 date-times')
  const inRange = (f: Found): boolean => (start === undefined || f.m.serverTs >= start) && (end === undefined || f.m.serverTs <= end)
  const before = set?.getChild('before')
  const found: Found[] = []
  let truncated = false
  if (before !== undefined) {
    const text = before.text()
    const cursor = text === '' ? undefined : await cursorOf(text)
    if (text !== '' && cursor === undefined) return fail('item-not-found', 'before is not a message id of your archive')
    for (const chat of chats) {
      // Seqs below `upTo` are before the cursor in the total order.
      const upTo = cursor === undefined ? await h.history.lastSeq(chat) + 1
        : chat === cursor[1] ? cursor[2] : await seqFrom(h, chat, chat < cursor[1] ? cursor[0] + 1 : cursor[0])
      const from = Math.max(0, upTo - 1 - max)
      if (upTo - 1 - from <= 0) continue
      const got = (await h.history.after(chat, from, upTo - 1 - from)).filter((m) => m.seq < upTo)
      if (from > 0 && got.length > 0) truncated = true
      found.push(...got.map((m) => ({ chat, room: undefined, m })))
    }
    const sorted = found.filter(inRange).sort((a, b) => cmp(keyOf(a), keyOf(b)))
    const pageOf = sorted.slice(Math.max(0, sorted.length - max))
    return page(h, iq, pageOf, !truncated && sorted.length <= max)
  }
  const afterText = set?.getChildText('after') ?? undefined
  const cursor = afterText !== undefined ? await cursorOf(afterText) : undefined
  if (afterText !== undefined && cursor === undefined) return fail('item-not-found', 'after is not a message id of your archive')
  for (const chat of chats) {
    const from = cursor === undefined ? (start === undefined ? 0 : await seqFrom(h, chat, start))
      : chat === cursor[1] ? cursor[2] + 1 : await seqFrom(h, chat, chat > cursor[1] ? cursor[0] : cursor[0] + 1)
    const got = max > 0 ? await h.history.after(chat, from - 1, max) : []
    if (got.length >= max) truncated = true
    found.push(...got.map((m) => ({ chat, room: undefined, m })))
  }
  const sorted = found.filter(inRange).sort((a, b) => cmp(keyOf(a), keyOf(b)))
  return page(h, iq, sorted.slice(0, max), !truncated && sorted.length <= max)
}
