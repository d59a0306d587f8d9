// Chats and groups: who is in which chat, and who may change that.
//
// Membership is mirrored in memory (chat -> users, user -> chats) so that the
// broker's ACL answers without touching the store. Every change updates the
// mirror before the call returns, so it is in force before the API answers;
// and every change is emitted as a ChatChange, which the bridge turns into
// `chat` inbox events.
import { EventEmitter } from 'node:events'
import type { Chat, DirectoryStore, Member, Role } from '../store/types.js'
import { DomainError, forbidden, notFound } from './errors.js'
import { directChatId, isDirectChatId, newGroupId } from './ids.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'

export type ChatChangeKind = 'created' | 'member_added' | 'member_removed' | 'renamed' | 'role_changed'

export interface ChatChange {
  chatId: string
  change: ChatChangeKind
  by: string
  /** Users the change concerns (added, removed, promoted, …). */
  users: string[]
  name?: string | null
  role?: Role
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

  #notify: MembershipNotifier = async () => {}

  #groupsCreated: Counter
  readonly #hasBlocked: (blocker: string, blocked: string) => boolean

  constructor (
    private readonly directory: DirectoryStore,
    readonly maxGroupMembers: number,
    opts: {
      /** Groups one user may create per hour. */
      groupsPerHour?: number
      /** Where group creations are counted (default: in memory; the cluster profile: Redis). */
      counters?: CounterFactory
      /** Whether `blocker` blocked `blocked` (a user is never added to a group by someone they blocked). */
      hasBlocked?: (blocker: string, blocked: string) => boolean
    } = {}
  ) {
    super()
    this.#groupsCreated = (opts.counters ?? memoryCounters)('groups-created', opts.groupsPerHour ?? 10, 3_600_000)
    this.#hasBlocked = opts.hasBlocked ?? (() => false)
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
    for (const { chatId, userId } of rows) this.join(chatId, userId)
  }

  /** Cluster: membership changes are announced to the other nodes through this. */
  notifyWith (notify: MembershipNotifier): void { this.#notify = notify }

  /** Re-reads one chat's members from the store (a change made on another node). */
  async refresh (chatId: string): Promise<void> {
    const now = new Set((await this.directory.members(chatId)).map((m) => m.userId))
    for (const u of [...this.memberIds(chatId)]) if (!now.has(u)) this.part(chatId, u)
    for (const u of now) this.join(chatId, u)
  }

  private join (chatId: string, userId: string): void {
    let m = this.#members.get(chatId)
    if (!m) this.#members.set(chatId, m = new Set())
    m.add(userId)
    let c = this.#chatsOf.get(userId)
    if (!c) this.#chatsOf.set(userId, c = new Set())
    c.add(chatId)
  }

  private part (chatId: string, userId: string): void {
    this.#members.get(chatId)?.delete(userId)
    this.#chatsOf.get(userId)?.delete(chatId)
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

  async createDirect (by: string, other: string): Promise<{ chat: ChatView, created: boolean }> {
    if (other === by) throw new DomainError('bad_request', 'a direct chat needs another user', 400)
    await this.requireUsers([other])
    const id = directChatId(by, other)
    const now = Date.now()
    const created = await this.directory.createChat(
      { id, kind: 'direct', name: null, createdBy: by, createdAt: now },
      [by, other].map((userId) => ({ chatId: id, userId, role: 'member' as Role, joinedAt: now }))
    )
    if (created) {
      this.join(id, by)
      this.join(id, other)
      await this.#notify(id)
      this.changed({ chatId: id, change: 'created', by, users: [by, other] })
    }
    return { chat: await this.view(id, by), created }
  }

  async createGroup (by: string, name: string, memberIds: string[]): Promise<ChatView> {
    const others = [...new Set(memberIds)].filter((u) => u !== by)
    if (others.length + 1 > this.maxGroupMembers) throw this.tooMany()
    await this.requireUsers(others)
    this.refuseBlockers(by, others)
    if (!await this.#groupsCreated.hit(by)) throw new DomainError('rate_limited', 'too many groups created this hour; try again later', 429)
    const id = newGroupId()
    const now = Date.now()
    await this.directory.createChat(
      { id, kind: 'group', name, createdBy: by, createdAt: now },
      [{ chatId: id, userId: by, role: 'admin', joinedAt: now }, ...others.map((userId) => ({ chatId: id, userId, role: 'member' as Role, joinedAt: now }))]
    )
    this.join(id, by)
    for (const u of others) this.join(id, u)
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
    const added = await this.directory.addMembers(fresh.map((userId) => ({ chatId, userId, role: 'member' as Role, joinedAt: now })))
    for (const m of added) this.join(chatId, m.userId)
    if (added.length > 0) {
      await this.#notify(chatId)
      this.changed({ chatId, change: 'member_added', by, users: added.map((m) => m.userId) })
    }
    return added
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
    await this.directory.removeMember(chatId, userId)
    this.part(chatId, userId)
    await this.#notify(chatId)
    this.changed({ chatId, change: 'member_removed', by, users: [userId] }, [userId])
    // A group is never left without an admin: the longest-standing member takes over.
    const rest = members.filter((m) => m.userId !== userId)
    if (rest.length > 0 && !rest.some((m) => m.role === 'admin')) {
      await this.directory.setRole(chatId, rest[0].userId, 'admin')
      this.changed({ chatId, change: 'role_changed', by, users: [rest[0].userId], role: 'admin' })
    }
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
