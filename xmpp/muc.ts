// Groups as a minimal multi-user chat service (XEP-0045) at
// groups.<domain>: a group is a members-only, non-anonymous, persistent room
// `<chatId>@groups.<domain>` whose occupants are the group's members, each
// under their user id as nickname. Joining is how a client shows the room;
// it changes no membership (members are added and removed through the API).
import { xml, type Element } from '@xmpp/xml'
import jid from '@xmpp/jid'
import type { ChatService } from '../core/chats.js'
import { DomainError } from '../core/errors.js'
import { isDirectChatId } from '../core/ids.js'
import { stanzaError } from './stream.js'

export const NS_MUC = 'http://jabber.org/protocol/muc'
const MUC_USER = 'http://jabber.org/protocol/muc#user'
const MUC_ADMIN = 'http://jabber.org/protocol/muc#admin'
const DISCO_INFO = 'http://jabber.org/protocol/disco#info'
const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'

export interface MUC {
  session: { who: { userId: string, deviceId: string }, full: string, domain: string, groupsDomain: string }
  chats: ChatService
}

/** The MUC affiliation of a group role. */
export const affiliation = (role: string): string => role === 'admin' ? 'admin' : 'member'

/** An occupant's presence (XEP-0045): affiliation, role, real JID and nickname (the user id), status codes; unavailable when the role is none. */
export function occupantPresence (room: string, userId: string, to: string, domain: string, affil: string, role: string, codes: string[] = []): Element {
  return xml('presence', { from: `${room}/${userId}`, to, ...(role === 'none' ? { type: 'unavailable' } : {}) },
    xml('x', { xmlns: MUC_USER }, xml('item', { affiliation: affil, role, jid: `${userId}@${domain}`, nick: userId }), ...codes.map((code) => xml('status', { code }))))
}

const error = (el: Element, from: string, to: string, type: string, condition: string, text: string): Element =>
  stanzaError(el, { from, to }, type, condition, text, el.is('presence') ? xml('x', { xmlns: NS_MUC }) : undefined)

/** The room of a group the user is in, with its members; undefined when it is not one of theirs (the same answer for a missing group). */
async function room (m: MUC, chatId: string): Promise<{ name: string, members: Array<{ userId: string, role: string }> } | undefined> {
  if (isDirectChatId(chatId)) return undefined
  try {
    const v = await m.chats.view(chatId, m.session.who.userId)
    return { name: v.name ?? chatId, members: v.members }
  } catch (err) {
    if (err instanceof DomainError) return undefined
    throw err
  }
}

/** Answers a presence or iq addressed to the groups service or one of its rooms. */
export async function mucStanza (m: MUC, el: Element): Promise<Element[]> {
  const s = m.session
  let to
  try { to = jid(el.attrs.to ?? '') } catch { return [error(el, s.groupsDomain, s.full, 'modify', 'jid-malformed', 'not a room address')] }
  const roomJid = to.local !== '' ? `${to.local}@${s.groupsDomain}` : s.groupsDomain

  if (el.is('presence')) {
    if (to.local === '') return []
    const type = el.attrs.type
    const self = `${roomJid}/${s.who.userId}`
    if (type === 'unavailable') {
      // Leaving the room view; the user stays a member of the group.
      return [xml('presence', { from: self, to: s.full, type: 'unavailable' }, xml('x', { xmlns: MUC_USER }, xml('item', { affiliation: 'member', role: 'none' }), xml('status', { code: '110' })))]
    }
    if (type !== undefined && type !== 'available') return []
    const r = await room(m, to.local)
    if (!r) return [error(el, `${roomJid}/${to.resource}`, s.full, 'auth', 'registration-required', 'only members of this group may join; members are added by its admins')]
    const present = (u: { userId: string, role: string }, codes?: string[]): Element => occupantPresence(roomJid, u.userId, s.full, s.domain, affiliation(u.role), 'participant', codes)
    const out = r.members.filter((u) => u.userId !== s.who.userId).map((u) => present(u))
    const me = r.members.find((u) => u.userId === s.who.userId) ?? { userId: s.who.userId, role: 'member' }
    // 110: this is you; 100: the room is non-anonymous; 210: the server chose your nickname (the user id).
    out.push(present(me, ['110', '100', ...(to.resource !== s.who.userId ? ['210'] : [])]))
    // The subject ends the join (XEP-0045 §7.2.15); history is the archive's job, so none is replayed here.
    out.push(xml('message', { type: 'groupchat', from: roomJid, to: s.full, id: `subject-${to.local}` }, xml('subject', {}, r.name)))
    return out
  }

  if (!el.is('iq') || (el.attrs.type !== 'get' && el.attrs.type !== 'set')) return []
  const query = el.children.find((c): c is Element => typeof c !== 'string')
  const result = (...children: Element[]): Element => xml('iq', { type: 'result', id: el.attrs.id, from: el.attrs.to, to: s.full }, ...children)
  if (el.attrs.type === 'get' && query?.is('query', DISCO_INFO)) {
    if (to.local === '') return [result(xml('query', { xmlns: DISCO_INFO }, xml('identity', { category: 'conference', type: 'text', name: 'groups' }), xml('feature', { var: NS_MUC })))]
    const r = await room(m, to.local)
    if (!r) return [error(el, roomJid, s.full, 'cancel', 'item-not-found', 'no such group of yours')]
    return [result(xml('query', { xmlns: DISCO_INFO }, xml('identity', { category: 'conference', type: 'text', name: r.name }),
      ...[NS_MUC, 'urn:xmpp:mam:2', 'muc_membersonly', 'muc_nonanonymous', 'muc_persistent', 'muc_unsecured'].map((v) => xml('feature', { var: v }))))]
  }
  if (el.attrs.type === 'get' && query?.is('query', DISCO_ITEMS)) {
    if (to.local !== '') return [result(xml('query', { xmlns: DISCO_ITEMS }))]
    const chats = await m.chats.listFor(s.who.userId)
    return [result(xml('query', { xmlns: DISCO_ITEMS }, ...chats.filter((c) => c.kind === 'group').map((c) => xml('item', { jid: `${c.id}@${s.groupsDomain}`, name: c.name ?? c.id }))))]
  }
  if (el.attrs.type === 'get' && query?.is('query', MUC_ADMIN) && to.local !== '') {
    // The member list: every member with the affiliation asked for.
    const wanted = query.getChild('item')?.attrs.affiliation
    const r = await room(m, to.local)
    if (!r) return [error(el, roomJid, s.full, 'auth', 'forbidden', 'only members see the member list')]
    return [result(xml('query', { xmlns: MUC_ADMIN }, ...r.members.filter((u) => wanted === undefined || affiliation(u.role) === wanted)
      .map((u) => xml('item', { affiliation: affiliation(u.role), jid: `${u.userId}@${s.domain}`, nick: u.userId }))))]
  }
  return [error(el, el.attrs.to ?? s.groupsDomain, s.full, 'cancel', 'service-unavailable', 'not offered by the groups service; membership changes go through the HTTP API')]
}
