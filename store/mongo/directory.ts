// Directory (users, devices, chats, members, blocks, settings, one-time codes) on MongoDB.
import type { Collection, Db } from 'mongodb'
import { type Chat, type ChatSettings, type Device, type DirectoryStore, type Member, type MemberPeriod, type OneTimeCode, type PushTarget, type Role, type User, type UserSettings } from '../types.js'
import { isDuplicateKey } from './database.js'
import type { ScramCredentials } from '../../lib/scram.js'

interface UserDoc { _id: string, phone: string, createdAt: number, bannedAt?: number | null }
/** `slot`: the device_slots place it holds while active (absent on devices made before slots). */
interface DeviceDoc { _id: string, userId: string, name: string, tokenHash: string, scram?: ScramCredentials, createdAt: number, revokedAt: number | null, linked?: boolean, slot?: number }
/**
 * One of a user's places for an active device: _id `<userId>#<n>`, n below
 * the limit. Claimed by inserting it (the unique _id makes a race for the
 * last place have one winner), freed when the device is revoked.
 */
interface SlotDoc { _id: string, deviceId: string, at: number }
interface ChatDoc { _id: string, kind: Chat['kind'], name: string | null, createdBy: string, createdAt: number, e2ee?: boolean, disappearing?: number | null }
/** fromSeq and engaged are absent on members recorded before they existed (they read everything, and count as engaged). */
interface MemberDoc { _id: string, chatId: string, userId: string, role: Role, joinedAt: number, fromSeq?: number, engaged?: boolean }
/** A user's ended memberships of a chat, one document per (chat, user) so that every read is by _id. */
interface PeriodsDoc { _id: string, periods: MemberPeriod[] }
interface BlockDoc { _id: string, blocker: string, blocked: string, at: number }
interface SettingsDoc { _id: string, readReceipts: boolean, lastSeen: UserSettings['lastSeen'], profile?: UserSettings['profile'] }
/** _id `<userId>\n<chatId>`. */
interface ChatSettingsDoc { _id: string, userId?: string, chatId?: string, mutedUntil: number | null, archived?: boolean, pinnedAt?: number | null }
/** _id: the target's id, which stands for its type and address. */
type PushTargetDoc = Omit<PushTarget, 'id'> & { _id: string }
interface CodeDoc { _id: string, codeHash: string, expiresAt: number, attempts: number }

const pairId = (a: string, b: string): string => `${a}\n${b}`
const toChatSettings = (d: ChatSettingsDoc): ChatSettings => ({ mutedUntil: d.mutedUntil, archived: d.archived ?? false, pinnedAt: d.pinnedAt ?? null })
const toDevice = ({ _id, linked, slot: _slot, ...d }: DeviceDoc): Device => ({ id: _id, ...d, ...(linked === true ? { linked: true } : {}) })
const slotId = (userId: string, n: number): string => `${userId}#${n}`
/** A place whose device never got written (a crash between the two writes) is taken back after this long. */
const ORPHAN_SLOT_MS = 60_000
const toChat = ({ _id, e2ee, disappearing, ...c }: ChatDoc): Chat => ({ id: _id, ...c, ...(e2ee === true ? { e2ee: true } : {}), ...(disappearing !== null && disappearing !== undefined ? { disappearing } : {}) })
const toMember = (m: MemberDoc): Member => ({ chatId: m.chatId, userId: m.userId, role: m.role, joinedAt: m.joinedAt, fromSeq: m.fromSeq ?? 0, engaged: m.engaged ?? true })
const toPushTarget = ({ _id, ...t }: PushTargetDoc): PushTarget => ({ id: _id, ...t })
const toUser = (u: UserDoc): User => ({ id: u._id, phone: u.phone, createdAt: u.createdAt, ...(u.bannedAt !== null && u.bannedAt !== undefined ? { bannedAt: u.bannedAt } : {}) })

export class MongoDirectory implements DirectoryStore {
  #users: Collection<UserDoc>
  #devices: Collection<DeviceDoc>
  #chats: Collection<ChatDoc>
  #members: Collection<MemberDoc>
  #periods: Collection<PeriodsDoc>
  #blocks: Collection<BlockDoc>
  #settings: Collection<SettingsDoc>
  #codes: Collection<CodeDoc>
  #slots: Collection<SlotDoc>
  #chatSettings: Collection<ChatSettingsDoc>
  #pushTargets: Collection<PushTargetDoc>

  constructor (db: Db) {
    this.#users = db.collection('users')
    this.#devices = db.collection('devices')
    this.#chats = db.collection('chats')
    this.#members = db.collection('members')
    this.#periods = db.collection('member_periods')
    this.#blocks = db.collection('blocks')
    this.#settings = db.collection('user_settings')
    this.#codes = db.collection('one_time_codes')
    this.#slots = db.collection('device_slots')
    this.#chatSettings = db.collection('chat_settings')
    this.#pushTargets = db.collection('push_targets')
  }

  async init (): Promise<void> {
    await this.#users.createIndex({ phone: 1 }, { unique: true, name: 'users_by_phone' })
    await this.#devices.createIndex({ userId: 1, createdAt: 1 }, { name: 'devices_by_user' })
    // Members are looked up both ways: a chat's members, a user's chats.
    await this.#members.createIndex({ chatId: 1, joinedAt: 1 }, { name: 'members_by_chat' })
    await this.#members.createIndex({ userId: 1, chatId: 1 }, { name: 'members_by_user' })
    await this.#pushTargets.createIndex({ deviceId: 1, createdAt: 1 }, { name: 'push_targets_by_device' })
    await this.#chatSettings.createIndex({ userId: 1 }, { name: 'chat_settings_by_user' })
  }

  async createUser (u: User): Promise<void> { await this.#users.insertOne({ _id: u.id, phone: u.phone, createdAt: u.createdAt }) }
  async getUser (id: string): Promise<User | undefined> {
    const u = await this.#users.findOne({ _id: id })
    return u ? toUser(u) : undefined
  }

  async getUserByPhone (phone: string): Promise<User | undefined> {
    const u = await this.#users.findOne({ phone })
    return u ? toUser(u) : undefined
  }

  async setBanned (userId: string, at: number | null): Promise<void> { await this.#users.updateOne({ _id: userId }, { $set: { bannedAt: at } }) }
  async bannedUsers (): Promise<string[]> { return (await this.#users.find({ bannedAt: { $gt: 0 } }, { projection: { _id: 1 } }).toArray()).map((u) => u._id) }
  async findUsers (query: { phonePrefix?: string, id?: string }, limit: number): Promise<User[]> {
    if (query.id !== undefined) return [await this.getUser(query.id)].filter((u): u is User => u !== undefined)
    const prefix = query.phonePrefix ?? '+'
    return (await this.#users.find({ phone: { $gte: prefix, $lt: `${prefix}:` } }).sort({ phone: 1 }).limit(limit).toArray()).map(toUser)
  }

  async usersByPhones (phones: string[]): Promise<User[]> {
    if (phones.length === 0) return []
    return (await this.#users.find({ phone: { $in: [...new Set(phones)] } }).toArray()).map(toUser)
  }

  async addDevice (d: Device): Promise<void> {
    await this.#devices.insertOne({ _id: d.id, userId: d.userId, name: d.name, tokenHash: d.tokenHash, ...(d.scram ? { scram: d.scram } : {}), createdAt: d.createdAt, revokedAt: d.revokedAt, ...(d.linked === true ? { linked: true } : {}) })
  }

  async addDeviceWithin (d: Device, maxActive: number): Promise<boolean> {
    await this.#slotExisting(d.userId, maxActive)
    let slot = await this.#claimSlot(d.userId, d.id, maxActive)
    if (slot === undefined && await this.#freeStaleSlots(d.userId, maxActive)) slot = await this.#claimSlot(d.userId, d.id, maxActive)
    if (slot === undefined) return false
    try {
      await this.#devices.insertOne({ _id: d.id, userId: d.userId, name: d.name, tokenHash: d.tokenHash, ...(d.scram ? { scram: d.scram } : {}), createdAt: d.createdAt, revokedAt: d.revokedAt, ...(d.linked === true ? { linked: true } : {}), slot })
    } catch (err) {
      await this.#slots.deleteOne({ _id: slotId(d.userId, slot), deviceId: d.id })
      throw err
    }
    return true
  }

  /** The first free place below maxActive, claimed for deviceId; undefined when all are held. */
  async #claimSlot (userId: string, deviceId: string, maxActive: number): Promise<number | undefined> {
    for (let n = 0; n < maxActive; n++) {
      try {
        await this.#slots.insertOne({ _id: slotId(userId, n), deviceId, at: Date.now() })
        return n
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
    }
    return undefined
  }

  /**
   * Active devices made before places existed take one each. Two nodes doing
   * this at once may each claim one for the same device: the first to record
   * it on the device keeps it, the other gives its claim back at once.
   */
  async #slotExisting (userId: string, maxActive: number): Promise<void> {
    for (const dev of await this.#devices.find({ userId, revokedAt: null, slot: { $exists: false } }).toArray()) {
      const n = await this.#claimSlot(userId, dev._id, maxActive)
      if (n === undefined) continue
      const kept = (await this.#devices.updateOne({ _id: dev._id, slot: { $exists: false } }, { $set: { slot: n } })).modifiedCount === 1
      if (!kept) await this.#slots.deleteOne({ _id: slotId(userId, n), deviceId: dev._id })
    }
  }

  /** Frees places whose device is revoked, holds another place, or was never written (after ORPHAN_SLOT_MS); true if one was freed. */
  async #freeStaleSlots (userId: string, maxActive: number): Promise<boolean> {
    let freed = false
    for (let n = 0; n < maxActive; n++) {
      const s = await this.#slots.findOne({ _id: slotId(userId, n) })
      if (!s) continue
      const dev = await this.#devices.findOne({ _id: s.deviceId })
      const stale = dev ? dev.revokedAt !== null || (dev.slot !== undefined && dev.slot !== n) : Date.now() - s.at > ORPHAN_SLOT_MS
      if (stale && (await this.#slots.deleteOne({ _id: s._id, deviceId: s.deviceId })).deletedCount === 1) freed = true
    }
    return freed
  }

  async setDeviceScram (id: string, scram: ScramCredentials): Promise<void> {
    await this.#devices.updateOne({ _id: id }, { $set: { scram } })
  }

  async getDevice (id: string): Promise<Device | undefined> {
    const d = await this.#devices.findOne({ _id: id })
    return d ? toDevice(d) : undefined
  }

  async listDevices (userId: string): Promise<Device[]> {
    return (await this.#devices.find({ userId, revokedAt: null }).sort({ createdAt: 1, _id: 1 }).toArray()).map(toDevice)
  }

  async allDevices (): Promise<Device[]> { return (await this.#devices.find({}).toArray()).map(toDevice) }

  async revokeDevice (id: string, at: number): Promise<boolean> {
    const d = await this.#devices.findOneAndUpdate({ _id: id, revokedAt: null }, { $set: { revokedAt: at } })
    if (!d) return false
    // Its place is free again (a failure here is repaired by #freeStaleSlots).
    if (d.slot !== undefined) await this.#slots.deleteOne({ _id: slotId(d.userId, d.slot), deviceId: id })
    return true
  }

  async createChat (chat: Chat, members: Member[]): Promise<boolean> {
    try {
      await this.#chats.insertOne({ _id: chat.id, kind: chat.kind, name: chat.name, createdBy: chat.createdBy, createdAt: chat.createdAt, ...(chat.e2ee === true ? { e2ee: true } : {}) })
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
    await this.addMembers(members)
    return true
  }

  async requireE2ee (id: string): Promise<void> { await this.#chats.updateOne({ _id: id }, { $set: { e2ee: true } }) }
  async e2eeChatIds (): Promise<string[]> { return (await this.#chats.find({ e2ee: true }, { projection: { _id: 1 } }).toArray()).map((c) => c._id) }
  async eraseUser (userId: string, phone: string): Promise<void> {
    const devices = (await this.#devices.find({ userId }, { projection: { _id: 1 } }).toArray()).map((d) => d._id)
    if (devices.length > 0) await this.#pushTargets.deleteMany({ deviceId: { $in: devices } })
    await this.#devices.deleteMany({ userId })
    await this.#slots.deleteMany({ _id: { $in: Array.from({ length: 64 }, (_, n) => slotId(userId, n)) } })
    await this.#settings.deleteOne({ _id: userId })
    await this.#chatSettings.deleteMany({ userId })
    await this.#blocks.deleteMany({ $or: [{ blocker: userId }, { blocked: userId }] })
    await this.#codes.deleteOne({ _id: phone })
    await this.#users.deleteOne({ _id: userId })
  }

  async setDisappearing (id: string, seconds: number | null): Promise<void> { await this.#chats.updateOne({ _id: id }, { $set: { disappearing: seconds } }) }
  async disappearingChats (): Promise<Array<{ chatId: string, seconds: number }>> {
    return (await this.#chats.find({ disappearing: { $gt: 0 } }, { projection: { _id: 1, disappearing: 1 } }).toArray()).map((c) => ({ chatId: c._id, seconds: c.disappearing! }))
  }

  async getChat (id: string): Promise<Chat | undefined> {
    const c = await this.#chats.findOne({ _id: id })
    return c ? toChat(c) : undefined
  }

  async renameChat (id: string, name: string): Promise<void> { await this.#chats.updateOne({ _id: id }, { $set: { name } }) }

  async chatsOfUser (userId: string): Promise<Chat[]> {
    const ids = (await this.#members.find({ userId }, { projection: { chatId: 1 } }).toArray()).map((m) => m.chatId)
    if (ids.length === 0) return []
    return (await this.#chats.find({ _id: { $in: ids } }).sort({ createdAt: 1, _id: 1 }).toArray()).map(toChat)
  }

  async members (chatId: string): Promise<Member[]> {
    return (await this.#members.find({ chatId }).sort({ joinedAt: 1, userId: 1 }).toArray()).map(toMember)
  }

  async addMembers (members: Member[]): Promise<Member[]> {
    const added: Member[] = []
    // One insert per member: the _id makes a repeat a no-op, and each outcome is known.
    for (const m of members) {
      try {
        await this.#members.insertOne({ _id: pairId(m.chatId, m.userId), chatId: m.chatId, userId: m.userId, role: m.role, joinedAt: m.joinedAt, fromSeq: m.fromSeq, engaged: m.engaged })
        added.push(m)
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
    }
    return added
  }

  async removeMember (chatId: string, userId: string, end: { toSeq: number, at: number }): Promise<boolean> {
    const id = pairId(chatId, userId)
    const m = await this.#members.findOne({ _id: id })
    if (!m) return false
    // The period is recorded before the membership goes: a crash in between leaves a member
    // whose earlier period is recorded twice (harmless), never one whose past is lost.
    const period: MemberPeriod = { fromSeq: m.fromSeq ?? 0, toSeq: end.toSeq, joinedAt: m.joinedAt, leftAt: end.at }
    await this.#periods.updateOne({ _id: id }, { $push: { periods: period } }, { upsert: true })
    return (await this.#members.deleteOne({ _id: id })).deletedCount === 1
  }

  async periods (chatId: string, userId: string): Promise<MemberPeriod[]> {
    const id = pairId(chatId, userId)
    const [closed, m] = await Promise.all([this.#periods.findOne({ _id: id }), this.#members.findOne({ _id: id })])
    const out = (closed?.periods ?? []).map((p) => ({ fromSeq: p.fromSeq, toSeq: p.toSeq, joinedAt: p.joinedAt, leftAt: p.leftAt }))
    out.sort((a, b) => a.fromSeq - b.fromSeq)
    if (m) out.push({ fromSeq: m.fromSeq ?? 0, toSeq: null, joinedAt: m.joinedAt, leftAt: null })
    return out
  }

  async setRole (chatId: string, userId: string, role: Role): Promise<boolean> {
    return (await this.#members.updateOne({ _id: pairId(chatId, userId) }, { $set: { role } })).matchedCount === 1
  }

  async setEngaged (chatId: string, userId: string): Promise<boolean> {
    return (await this.#members.updateOne({ _id: pairId(chatId, userId) }, { $set: { engaged: true } })).matchedCount === 1
  }

  async allMemberships (): Promise<Array<{ chatId: string, userId: string, fromSeq: number, engaged: boolean }>> {
    return (await this.#members.find({}, { projection: { chatId: 1, userId: 1, fromSeq: 1, engaged: 1 } }).toArray())
      .map((m) => ({ chatId: m.chatId, userId: m.userId, fromSeq: m.fromSeq ?? 0, engaged: m.engaged ?? true }))
  }

  async getSettings (userId: string): Promise<UserSettings | undefined> {
    const s = await this.#settings.findOne({ _id: userId })
    return s ? { readReceipts: s.readReceipts, lastSeen: s.lastSeen, ...(s.profile !== undefined ? { profile: s.profile } : {}) } : undefined
  }

  async putSettings (userId: string, s: UserSettings): Promise<void> {
    await this.#settings.replaceOne({ _id: userId }, { readReceipts: s.readReceipts, lastSeen: s.lastSeen, ...(s.profile !== undefined ? { profile: s.profile } : {}) }, { upsert: true })
  }

  async allSettings (): Promise<Array<{ userId: string, settings: UserSettings }>> {
    return (await this.#settings.find({}).toArray()).map((s) => ({ userId: s._id, settings: { readReceipts: s.readReceipts, lastSeen: s.lastSeen, ...(s.profile !== undefined ? { profile: s.profile } : {}) } }))
  }

  async getChatSettings (userId: string, chatId: string): Promise<ChatSettings | undefined> {
    const d = await this.#chatSettings.findOne({ _id: pairId(userId, chatId) })
    return d ? toChatSettings(d) : undefined
  }

  async putChatSettings (userId: string, chatId: string, s: ChatSettings): Promise<void> {
    await this.#chatSettings.replaceOne({ _id: pairId(userId, chatId) }, { userId, chatId, mutedUntil: s.mutedUntil, archived: s.archived ?? false, pinnedAt: s.pinnedAt ?? null }, { upsert: true })
  }

  // Settings written before chats could be archived or pinned carry no userId: a user's mute of such a chat is read one chat at a time (getChatSettings).
  async chatSettingsOf (userId: string): Promise<Map<string, ChatSettings>> {
    return new Map((await this.#chatSettings.find({ userId }).toArray()).map((d) => [d.chatId!, toChatSettings(d)]))
  }

  async addPushTarget (t: PushTarget): Promise<PushTarget> {
    const { id, ...rest } = t
    const existing = await this.#pushTargets.findOne({ _id: id })
    if (existing?.deviceId === t.deviceId) return toPushTarget(existing)
    await this.#pushTargets.replaceOne({ _id: id }, rest, { upsert: true })
    return t
  }

  async pushTargets (deviceId: string): Promise<PushTarget[]> {
    return (await this.#pushTargets.find({ deviceId }).sort({ createdAt: 1, _id: 1 }).toArray()).map(toPushTarget)
  }

  async removePushTarget (deviceId: string, id: string): Promise<boolean> { return (await this.#pushTargets.deleteOne({ _id: id, deviceId })).deletedCount > 0 }
  async removePushTargets (deviceId: string): Promise<number> { return (await this.#pushTargets.deleteMany({ deviceId })).deletedCount }
  async pushTargetDevices (): Promise<string[]> { return (await this.#pushTargets.distinct('deviceId')) }

  async block (blocker: string, blocked: string, at: number): Promise<boolean> {
    try {
      await this.#blocks.insertOne({ _id: pairId(blocker, blocked), blocker, blocked, at })
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  async unblock (blocker: string, blocked: string): Promise<boolean> {
    return (await this.#blocks.deleteOne({ _id: pairId(blocker, blocked) })).deletedCount === 1
  }

  async allBlocks (): Promise<Array<{ blocker: string, blocked: string }>> {
    return (await this.#blocks.find({}).sort({ blocker: 1, blocked: 1 }).toArray()).map((b) => ({ blocker: b.blocker, blocked: b.blocked }))
  }

  async putCode (c: OneTimeCode): Promise<void> {
    await this.#codes.replaceOne({ _id: c.phone }, { codeHash: c.codeHash, expiresAt: c.expiresAt, attempts: c.attempts }, { upsert: true })
  }

  async getCode (phone: string): Promise<OneTimeCode | undefined> {
    const c = await this.#codes.findOne({ _id: phone })
    return c ? { phone, codeHash: c.codeHash, expiresAt: c.expiresAt, attempts: c.attempts } : undefined
  }

  async countAttempt (phone: string): Promise<number> {
    const c = await this.#codes.findOneAndUpdate({ _id: phone }, { $inc: { attempts: 1 } }, { returnDocument: 'after' })
    return c?.attempts ?? 0
  }

  async deleteCode (phone: string): Promise<void> { await this.#codes.deleteOne({ _id: phone }) }

  async close (): Promise<void> { /* the client is closed by its owner, shared with the other stores */ }
}
