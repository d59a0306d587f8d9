// Message archive (XEP-0313, urn:xmpp:mam:2) over chat history: the archive
// of a conversation with a contact (`with` = their bare JID, on the user's
// own archive) or of a group (a query to its room). Pages are chat seqs:
// every result id is `<chatId>:<seq>`, the same id the live stanza had, so
// RSM `after`/`before` continue from any message a client has.
import { xml, type Element } from '@xmpp/xml'
import jid from '@xmpp/jid'
import type { ChatService } from '../core/chats.js'
import type { HistoryStore, StoredMessage } from '../store/types.js'
import { NS } from './stream.js'

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
  history: HistoryStore
  /** The direct chat with a user, if there is one. */
  existingDirectChat (other: string): string | undefined
}

const refOf = (chat: string, id: string | undefined): number | undefined => {
  if (id === undefined || !id.startsWith(`${chat}:`)) return undefined
  const seq = Number(id.slice(chat.length + 1))
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined
}

/** Answers a MAM query (an iq set with <query xmlns='urn:xmpp:mam:2'/>): result messages, then the iq result with <fin/>. */
export async function archiveQuery (h: ArchiveHost, iq: Element): Promise<Element[]> {
  const query = iq.getChild('query', NS_MAM)
  const fail = (condition: string, text: string, type = 'cancel'): Element[] => [xml('iq', { type: 'error', id: iq.attrs.id, from: iq.attrs.to ?? h.bare, to: h.full },
    xml('error', { type }, xml(condition, { xmlns: NS.stanzas }), xml('text', { xmlns: NS.stanzas }, text)))]
  if (!query) return fail('bad-request', 'no MAM query')
  const field = (name: string): string | undefined => query.getChild('x', DATA)?.getChildren('field').find((f) => f.attrs.var === name)?.getChildText('value') ?? undefined

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
    if (w === undefined) return fail('feature-not-implemented', 'give a contact in the "with" field, or query a room: the archive is kept per chat', 'modify')
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

  // Paging (XEP-0059): max, after <id>, before <id> or an empty before (the last page).
  const set = query.getChild('set', RSM)
  const max = Math.min(MAX_PAGE, Math.max(0, Number(set?.getChildText('max') ?? DEFAULT_PAGE) || 0))
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
  const queryid = query.attrs.queryid
  const out: Element[] = []
  for (const m of messages) {
    if (m.body === null || m.body === undefined) continue
    let body: unknown
    try { body = JSON.parse(m.body) } catch { continue }
    const ref = `${chat}:${m.seq}`
    const inner = room !== undefined
      ? xml('message', { type: 'groupchat', from: `${room}/${m.senderUser}`, id: ref }, xml('body', {}, typeof body === 'string' ? body : JSON.stringify(body)), xml('stanza-id', { xmlns: SID, id: ref, by: room }))
      : xml('message', { type: 'chat', from: `${m.senderUser}@${h.domain}/${m.senderDevice}`, to: m.senderUser === h.who.userId ? `${h.chats.otherMember(chat, h.who.userId) ?? ''}@${h.domain}` : h.bare, id: ref },
        xml('body', {}, typeof body === 'string' ? body : JSON.stringify(body)), xml('stanza-id', { xmlns: SID, id: ref, by: h.bare }))
    out.push(xml('message', { from: room ?? h.bare, to: h.full, id: `mam-${ref}` },
      xml('result', { xmlns: NS_MAM, id: ref, ...(queryid !== undefined ? { queryid } : {}) },
        xml('forwarded', { xmlns: FORWARD }, xml('delay', { xmlns: DELAY, stamp: new Date(m.serverTs).toISOString() }), inner))))
  }
  const lo = messages.at(0)?.seq
  const hi = messages.at(-1)?.seq
  // Complete: this page reaches the end it was paging towards.
  const complete = before !== undefined ? (lo === undefined || lo <= first) : (hi === undefined || hi >= last)
  out.push(xml('iq', { type: 'result', id: iq.attrs.id, from: iq.attrs.to ?? h.bare, to: h.full },
    xml('fin', { xmlns: NS_MAM, complete: String(complete) },
      xml('set', { xmlns: RSM }, ...(lo !== undefined && hi !== undefined ? [xml('first', {}, `${chat}:${lo}`), xml('last', {}, `${chat}:${hi}`)] : []), xml('count', {}, String(Math.max(0, last - first + 1)))))))
  return out
}
