// Chats and groups: who is in which chat, and who may change that.
//
// Membership is mirrored in memory (chat -> users, user -> chats) so that the
// broker's ACL answers without touching the store. Each membership starts at
// a seq (the chat's last seq at the join, plus one): the member reads and is
// sent messages from there on (core/membership.ts); a removal records the
// period that ended. Every change updates the
// mirror before the call returns, so it is in force before the API answers;
// and every change is emitted as a ChatChange, which the bridge turns into
// `chat` inbox events.
import { EventEmitter } from 'node:events'
import type { Chat, DirectoryStore, Member, Role } from '../store/types.js'
import { DomainError, forbidden, notFound } from './errors.js'
import { directChatId, isDirectChatId, newGroupId } from './ids.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'
import { MemberHistory, inSpans, operandOf, spansOf, type SeqSpan } from './membership.js'
import type { HistoryStore, StoredMessage } from '../store/types.js'

export type ChatChangeKind = 'created' | 'member_added' | 'member_removed' | 'renamed' | 'role_changed' | 'e2ee_required' | 'disappearing' | 'account_deleted'

export interface ChatChange {
  chatId: string
  change: ChatChangeKind
  by: string
  /** Users the change concerns (added, removed, promoted, …). */
  users: string[]
  name?: string | null
  role?: Role
  /** disappearing: the timer (seconds; null: off), and the seq of the `timer` message that set it. */
  seconds?: number | null
  seq?: number
  /** Users whose devices are told: members after the change, plus anyone removed. */
  recipients: string[]
  at: number
}

export interface ChatView extends Chat { members: Member[] }

/** Told of every membership change after the local mirror has it; resolves once every node has it too (cluster). */
export type MembershipNotifier = (chatId: string) => Promise<void>

export class ChatService extends EventEmitter<{ change: [ChatChange] }> {
  #members = new Map<string, Set<string>>()
  #chatsOf = new Map<string, Set<string>>()
  /** The first readable seq of members who joined after a chat's first message (chat -> user -> seq); absent means 1. */
  #from = new Map<string, Map<string, number>>()
  /** The chats each user has taken part in (Member.engaged): user -> chats. */
  #engaged = new Map<string, Set<string>>()
  /** Chats that require end-to-end encryption. */
  #e2ee = new Set<string>()
  /** Disappearing-messages timers (seconds), by chat. */
  #timers = new Map<string, number>()

  #notify: MembershipNotifier = async () => {}

  #groupsCreated: Counter
  #directsCreated: Counter
  readonly #hasBlocked: (blocker: string, blocked: string) => boolean
  readonly #lastSeq: (chatId: string) => Promise<number>

  constructor (
    private readonly directory: DirectoryStore,
    readonly maxGroupMembers: number,
    opts: {
      /** The chat's last seq (a membership starts after it). */
      lastSeq?: HistoryStore['lastSeq']
      /** Groups one user may create per hour. */
      groupsPerHour?: number
      /** New direct chats one user may open per hour. */
      directChatsPerHour?: number
      /** Where group creations are counted (default: in memory; the cluster profile: Redis). */
      counters?: CounterFactory
      /** Whether `blocker` blocked `blocked` (a user is never added to a group by someone they blocked). */
      hasBlocked?: (blocker: string, blocked: string) => boolean
    } = {}
  ) {
    super()
    this.#groupsCreated = (opts.counters ?? memoryCounters)('groups-created', opts.groupsPerHour ?? 10, 3_600_000)
    this.#directsCreated = (opts.counters ?? memoryCounters)('direct-chats-created', opts.directChatsPerHour ?? 50, 3_600_000)
    this.#hasBlocked = opts.hasBlocked ?? (() => false)
    this.#lastSeq = opts.lastSeq ?? (async () => 0)
  }

  /** Nobody is put in a group by a user they blocked (they would get that user's messages there). */
  private refuseBlockers (by: string, userIds: string[]): void {
    const blocker = userIds.find((u) => this.#hasBlocked(u, by))
    if (blocker !== undefined) throw new DomainError('blocked', `${blocker} cannot be added by you`, 403)
  }

  async init (): Promise<void> {
    const rows = await this.directory.allMemberships()
    this.#members.clear()
    this.#chatsOf.clear()
    this.#from.clear()
    this.#engaged.clear()
    for (const { chatId, userId, fromSeq, engaged } of rows) this.join(chatId, userId, fromSeq, engaged)
    this.#e2ee = new Set(await this.directory.e2eeChatIds())
    this.#timers = new Map((await this.directory.disappearingChats()).map((t) => [t.chatId, t.seconds]))
  }

  /** Cluster: membership changes are announced to the other nodes through this. */
  notifyWith (notify: MembershipNotifier): void { this.#notify = notify }

  /** Re-reads one chat's members from the store (a change made on another node). */
  async refresh (chatId: string): Promise<void> {
    const chat = await this.directory.getChat(chatId)
    if (chat?.e2ee === true) this.#e2ee.add(chatId)
    if ((chat?.disappearing ?? null) !== null) this.#timers.set(chatId, chat!.disappearing!)
    else this.#timers.delete(chatId)
    const now = new Map((await this.directory.members(chatId)).map((m) => [m.userId, m]))
    for (const u of [...this.memberIds(chatId)]) if (!now.has(u)) this.part(chatId, u)
    for (const [u, m] of now) this.join(chatId, u, m.fromSeq, m.engaged)
  }

  private join (chatId: string, userId: string, fromSeq: number, engaged: boolean): void {
    let m = this.#members.get(chatId)
    if (!m) this.#members.set(chatId, m = new Set())
    m.add(userId)
    let c = this.#chatsOf.get(userId)
    if (!c) this.#chatsOf.set(userId, c = new Set())
    c.add(chatId)
    const from = this.#from.get(chatId)
    if (fromSeq > 1) {
      if (from) from.set(userId, fromSeq)
      else this.#from.set(chatId, new Map([[userId, fromSeq]]))
    } else from?.delete(userId)
    const e = this.#engaged.get(userId)
    if (engaged) {
      if (e) e.add(chatId)
      else this.#engaged.set(userId, new Set([chatId]))
    } else e?.delete(chatId)
  }

  private part (chatId: string, userId: string): void {
    this.#members.get(chatId)?.delete(userId)
    this.#chatsOf.get(userId)?.delete(chatId)
    this.#engaged.get(userId)?.delete(chatId)
    const from = this.#from.get(chatId)
    from?.delete(userId)
    if (from?.size === 0) this.#from.delete(chatId)
  }

  /** The first seq a current member may read (and is sent); undefined for a non-member. */
  fromSeqOf (chatId: string, userId: string): number | undefined {
    if (!this.isMember(chatId, userId)) return undefined
    return this.#from.get(chatId)?.get(userId) ?? 1
  }

  /** Whether a member is sent a message: they were in the chat when it got its seq. */
  receives (chatId: string, userId: string, seq: number): boolean {
    return seq >= (this.#from.get(chatId)?.get(userId) ?? 1)
  }

  /** Whether a member is sent this message: it, and the message an edit, delete or reaction acts on, are from their membership. */
  receivesMessage (userId: string, m: Pick<StoredMessage, 'chatId' | 'seq' | 'type' | 'ref'>): boolean {
    const operand = operandOf(m)
    return this.receives(m.chatId, userId, m.seq) && (operand === undefined || this.receives(m.chatId, userId, operand))
  }

  /**
   * The seqs of a chat a user may read: every period they were a member.
   * A member since the chat's start needs no store read.
   */
  async spans (chatId: string, userId: string): Promise<SeqSpan[]> {
    if (this.fromSeqOf(chatId, userId) === 1) return [{ from: 1, to: Infinity }]
    return spansOf(await this.directory.periods(chatId, userId))
  }

  /** Whether a user may read a chat's seq (see spans). */
  async canRead (chatId: string, userId: string, seq: number): Promise<boolean> {
    const from = this.fromSeqOf(chatId, userId)
    if (from !== undefined && seq >= from) return true
    return inSpans(await this.spans(chatId, userId), seq)
  }

  /** The chat history as a user may read it. */
  readerOf (history: HistoryStore, userId: string): MemberHistory {
    return new MemberHistory(history, (chatId) => this.spans(chatId, userId))
  }

  /** Whether the chat requires end-to-end encryption (plaintext messages are refused). */
  isE2ee (chatId: string): boolean { return this.#e2ee.has(chatId) }

  /**
   * Makes a chat require end-to-end encryption, from now on (one way): in a
   * group, admins only; in a direct chat, either member. Told as a `chat`
   * event (change "e2ee_required") with its own place in the members' inboxes.
   */
  async requireE2ee (by: string, chatId: string): Promise<void> {
    const chat = await this.directory.getChat(chatId)
    if (!chat || !this.isMember(chatId, by)) throw notFound('chat')
    if (chat.kind === 'group') await this.requireGroupAdmin(chatId, by)
    if (chat.e2ee === true) return
    await this.directory.requireE2ee(chatId)
    this.#e2ee.add(chatId)
    await this.#notify(chatId)
    this.changed({ chatId, change: 'e2ee_required', by, users: [] })
  }

  /** The chat's disappearing-messages timer in seconds, or undefined when off (no store read). */
  timerOf (chatId: string): number | undefined { return this.#timers.get(chatId) }

  /**
   * Records the timer a `timer` message (seq) set: what is sent after it
   * expires that many seconds after it is stored (null: off). Told as a
   * `chat` event (change "disappearing"). Repeating it changes nothing.
   */
  async setTimer (by: string, chatId: string, seconds: number | null, seq: number): Promise<void> {
    if ((this.#timers.get(chatId) ?? null) === seconds) return
    await this.directory.setDisappearing(chatId, seconds)
    if (seconds === null) this.#timers.delete(chatId)
    else this.#timers.set(chatId, seconds)
    await this.#notify(chatId)
    this.changed({ chatId, change: 'disappearing', by, users: [], seconds, seq })
  }

  isMember (chatId: string, userId: string): boolean { return this.#members.get(chatId)?.has(userId) ?? false }
  memberIds (chatId: string): ReadonlySet<string> { return this.#members.get(chatId) ?? new Set() }
  /** The chats a user is in, from the mirror (no store read). */
  chatIdsOf (userId: string): ReadonlySet<string> { return this.#chatsOf.get(userId) ?? new Set() }

  async isAdmin (chatId: string, userId: string): Promise<boolean> {
    if (!this.isMember(chatId, userId)) return false
    return (await this.directory.members(chatId)).some((m) => m.userId === userId && m.role === 'admin')
  }

  /** The other member of a direct chat. */
  otherMember (chatId: string, userId: string): string | undefined {
    if (!isDirectChatId(chatId)) return undefined
    for (const u of this.memberIds(chatId)) if (u !== userId) return u
    return undefined
  }

  /**
   * Whether `watcher` is a contact of `target`: they share a chat in which
   * `target` has taken part (created it, wrote in it, or added members). This
   * is who may see the target's presence (with last seen set to "chats").
   * Someone who only opened a chat with the target, or put them in a group,
   * is not, until the target writes there.
   */
  isContactOf (watcher: string, target: string): boolean {
    const chats = this.#engaged.get(target)
    if (!chats) return false
    for (const chatId of chats) if (this.isMember(chatId, watcher)) return true
    return false
  }

  /** Records that a member took part in a chat (see isContactOf); a store write only the first time. */
  async engage (chatId: string, userId: string): Promise<void> {
    if (await this.markEngaged(chatId, userId)) await this.#notify(chatId)
  }

  /** Marks a member engaged in the mirror and the store, unless already; true when it changed (the caller announces it). */
  private async markEngaged (chatId: string, userId: string): Promise<boolean> {
    if (!this.isMember(chatId, userId) || this.#engaged.get(userId)?.has(chatId) === true) return false
    this.join(chatId, userId, this.fromSeqOf(chatId, userId) ?? 1, true)
    await this.directory.setEngaged(chatId, userId)
    return true
  }

  /** The user and everyone sharing a chat with them (from the mirror). */
  coMembers (userId: string): Set<string> {
    const users = new Set<string>([userId])
    for (const chatId of this.chatIdsOf(userId)) for (const u of this.memberIds(chatId)) users.add(u)
    return users
  }

  /** Whether two users are both members of at least one chat. */
  sharesChat (a: string, b: string): boolean {
    const ca = this.#chatsOf.get(a)
    const cb = this.#chatsOf.get(b)
    if (!ca || !cb) return false
    const [small, large] = ca.size <= cb.size ? [ca, cb] : [cb, ca]
    for (const chatId of small) if (large.has(chatId)) return true
    return false
  }

  private changed (c: Omit<ChatChange, 'at' | 'recipients'>, extraRecipients: string[] = []): void {
    const recipients = [...new Set([...this.memberIds(c.chatId), ...extraRecipients])]
    this.emit('change', { ...c, recipients, at: Date.now() })
  }

  private async requireUsers (ids: string[]): Promise<void> {
    for (const id of ids) {
      if (!await this.directory.getUser(id)) throw new DomainError('unknown_user', `no user ${id}`, 404)
    }
  }

  /** The chat as its member sees it; a non-member gets the same answer as for a missing chat. */
  async view (chatId: string, asUser: string): Promise<ChatView> {
    const chat = await this.directory.getChat(chatId)
    if (!chat || !this.isMember(chatId, asUser)) throw notFound('chat')
    return { ...chat, members: await this.directory.members(chatId) }
  }

  async listFor (userId: string): Promise<ChatView[]> {
    const chats = await this.directory.chatsOfUser(userId)
    return Promise.all(chats.map(async (c) => ({ ...c, members: await this.directory.members(c.id) })))
  }

  async createDirect (by: string, other: string, opts: { e2ee?: boolean } = {}): Promise<{ chat: ChatView, created: boolean }> {
    if (other === by) throw new DomainError('bad_request', 'a direct chat needs another user', 400)
    await this.requireUsers([other])
    const id = directChatId(by, other)
    // Opening a chat that exists costs nothing; a new one counts against the hourly allowance.
    // Asking for end-to-end encryption of an existing one turns it on (one way).
    if (this.isMember(id, by)) {
      if (opts.e2ee === true) await this.requireE2ee(by, id)
      return { chat: await this.view(id, by), created: false }
    }
    if (!await this.#directsCreated.hit(by)) throw new DomainError('rate_limited', 'too many new direct chats this hour; try again later', 429)
    const now = Date.now()
    const created = await this.directory.createChat(
      { id, kind: 'direct', name: null, createdBy: by, createdAt: now, ...(opts.e2ee === true ? { e2ee: true } : {}) },
      // The one who opens the chat takes part in it; the other has not, until they write.
      [by, other].map((userId) => ({ chatId: id, userId, role: 'member' as Role, joinedAt: now, fromSeq: 1, engaged: userId === by }))
    )
    if (created) {
      if (opts.e2ee === true) this.#e2ee.add(id)
      this.join(id, by, 1, true)
      this.join(id, other, 1, false)
      await this.#notify(id)
      this.changed({ chatId: id, change: 'created', by, users: [by, other] })
    }
    return { chat: await this.view(id, by), created }
  }

  async createGroup (by: string, name: string, memberIds: string[], opts: { e2ee?: boolean } = {}): Promise<ChatView> {
    const others = [...new Set(memberIds)].filter((u) => u !== by)
    if (others.length + 1 > this.maxGroupMembers) throw this.tooMany()
    await this.requireUsers(others)
    this.refuseBlockers(by, others)
    if (!await this.#groupsCreated.hit(by)) throw new DomainError('rate_limited', 'too many groups created this hour; try again later', 429)
    const id = newGroupId()
    const now = Date.now()
    await this.directory.createChat(
      { id, kind: 'group', name, createdBy: by, createdAt: now, ...(opts.e2ee === true ? { e2ee: true } : {}) },
      [{ chatId: id, userId: by, role: 'admin', joinedAt: now, fromSeq: 1, engaged: true },
        ...others.map((userId) => ({ chatId: id, userId, role: 'member' as Role, joinedAt: now, fromSeq: 1, engaged: false }))]
    )
    if (opts.e2ee === true) this.#e2ee.add(id)
    this.join(id, by, 1, true)
    for (const u of others) this.join(id, u, 1, false)
    await this.#notify(id)
    this.changed({ chatId: id, change: 'created', by, users: [by, ...others], name })
    return this.view(id, by)
  }

  private tooMany (): DomainError {
    return new DomainError('group_full', `a group may have at most ${this.maxGroupMembers} members`, 409)
  }

  private async requireGroupAdmin (chatId: string, by: string): Promise<Member[]> {
    const chat = await this.directory.getChat(chatId)
    if (!chat || !this.isMember(chatId, by)) throw notFound('chat')
    if (chat.kind !== 'group') throw new DomainError('not_a_group', 'direct chats have fixed members', 409)
    const members = await this.directory.members(chatId)
    if (members.find((m) => m.userId === by)?.role !== 'admin') throw forbidden('only group admins may do this')
    return members
  }

  async addMembers (by: string, chatId: string, userIds: string[]): Promise<Member[]> {
    const members = await this.requireGroupAdmin(chatId, by)
    const fresh = [...new Set(userIds)].filter((u) => !this.isMember(chatId, u))
    if (members.length + fresh.length > this.maxGroupMembers) throw this.tooMany()
    await this.requireUsers(fresh)
    this.refuseBlockers(by, fresh)
    const now = Date.now()
    // New members read from the next message on. One sent while this runs is either
    // at or after fromSeq (theirs) or before it (neither shown nor sent to them).
    const fromSeq = await this.#lastSeq(chatId) + 1
    const added = await this.directory.addMembers(fresh.map((userId) => ({ chatId, userId, role: 'member' as Role, joinedAt: now, fromSeq, engaged: false })))
    for (const m of added) this.join(chatId, m.userId, m.fromSeq, false)
    if (added.length > 0) {
      // Adding people is taking part: the added may see the adder's presence (announced with the addition).
      await this.markEngaged(chatId, by)
      await this.#notify(chatId)
      this.changed({ chatId, change: 'member_added', by, users: added.map((m) => m.userId) })
    }
    return added
  }

  /**
   * Ends a membership: out of the mirror first, so that nothing is sent to
   * them from here on; the period they keep then ends at a seq at least as
   * high as anything they were sent.
   */
  private async takeOut (chatId: string, userId: string): Promise<void> {
    const fromSeq = this.fromSeqOf(chatId, userId) ?? 1
    const engaged = this.#engaged.get(userId)?.has(chatId) === true
    this.part(chatId, userId)
    try {
      await this.directory.removeMember(chatId, userId, { toSeq: await this.#lastSeq(chatId), at: Date.now() })
    } catch (err) {
      this.join(chatId, userId, fromSeq, engaged)
      throw err
    }
    await this.#notify(chatId)
  }

  /** Removes a member (admins), or leaves (anyone, with userId = by). */
  async removeMember (by: string, chatId: string, userId: string): Promise<void> {
    let members: Member[]
    if (userId === by) {
      const chat = await this.directory.getChat(chatId)
      if (!chat || !this.isMember(chatId, by)) throw notFound('chat')
      if (chat.kind !== 'group') throw new DomainError('not_a_group', 'a direct chat cannot be left', 409)
      members = await this.directory.members(chatId)
    } else {
      members = await this.requireGroupAdmin(chatId, by)
      if (!this.isMember(chatId, userId)) throw notFound('member')
    }
    await this.takeOut(chatId, userId)
    this.changed({ chatId, change: 'member_removed', by, users: [userId] }, [userId])
    // A group is never left without an admin: the longest-standing member takes over.
    const rest = members.filter((m) => m.userId !== userId)
    if (rest.length > 0 && !rest.some((m) => m.role === 'admin')) {
      await this.directory.setRole(chatId, rest[0].userId, 'admin')
      this.changed({ chatId, change: 'role_changed', by, users: [rest[0].userId], role: 'admin' })
    }
  }

  /**
   * An erased account leaves every chat: groups as when leaving (an admin
   * handed over), direct chats with an `account_deleted` event for the other
   * member, who can no longer write there.
   */
  async accountGone (userId: string): Promise<string[]> {
    const chats = [...this.chatIdsOf(userId)]
    for (const chatId of chats) {
      if (!isDirectChatId(chatId)) {
        await this.removeMember(userId, chatId, userId)
        continue
      }
      await this.takeOut(chatId, userId)
      this.changed({ chatId, change: 'account_deleted', by: userId, users: [userId] })
    }
    return chats
  }

  async setRole (by: string, chatId: string, userId: string, role: Role): Promise<void> {
    const members = await this.requireGroupAdmin(chatId, by)
    const target = members.find((m) => m.userId === userId)
    if (!target) throw notFound('member')
    if (target.role === role) return
    if (role === 'member' && members.filter((m) => m.role === 'admin').length === 1) {
      throw new DomainError('last_admin', 'a group needs at least one admin; promote someone else first', 409)
    }
    await this.directory.setRole(chatId, userId, role)
    this.changed({ chatId, change: 'role_changed', by, users: [userId], role })
  }

  async rename (by: string, chatId: string, name: string): Promise<void> {
    await this.requireGroupAdmin(chatId, by)
    await this.directory.renameChat(chatId, name)
    this.changed({ chatId, change: 'renamed', by, users: [], name })
  }
}
