// Directory (users, devices, chats, members, one-time codes) on SQLite.
import type { Chat, ChatSettings, Device, DirectoryStore, Member, MemberPeriod, OneTimeCode, PushTarget, Role, User, UserSettings } from '../types.js'
import type { SqliteDb } from './database.js'
import { plainRow, plainRows } from '../../lib/sqlite.js'
import type { ScramCredentials } from '../../lib/scram.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, phone TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), name TEXT NOT NULL,
  token_hash TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER, scram TEXT);
CREATE INDEX IF NOT EXISTS devices_by_user ON devices (user_id);
CREATE TABLE IF NOT EXISTS chats (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, created_by TEXT NOT NULL, created_at INTEGER NOT NULL, e2ee INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS members (
  chat_id TEXT NOT NULL REFERENCES chats(id), user_id TEXT NOT NULL, role TEXT NOT NULL, joined_at INTEGER NOT NULL,
  from_seq INTEGER NOT NULL DEFAULT 0, engaged INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, chat_id);
CREATE TABLE IF NOT EXISTS member_periods (
  chat_id TEXT NOT NULL, user_id TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL,
  joined_at INTEGER NOT NULL, left_at INTEGER NOT NULL,
  PRIMARY KEY (chat_id, user_id, from_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (blocker TEXT NOT NULL, blocked TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (blocker, blocked)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_settings (user_id TEXT PRIMARY KEY, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chat_settings (user_id TEXT NOT NULL, chat_id TEXT NOT NULL, settings TEXT NOT NULL, PRIMARY KEY (user_id, chat_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS push_targets (
  id TEXT PRIMARY KEY, device_id TEXT NOT NULL, target TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS push_targets_by_device ON push_targets (device_id, created_at);
CREATE TABLE IF NOT EXISTS one_time_codes (
  phone TEXT PRIMARY KEY, code_hash TEXT NOT NULL, expires_at INTEGER NOT NULL, attempts INTEGER NOT NULL);
`

interface DeviceRow { id: string, user_id: string, name: string, token_hash: string, created_at: number, revoked_at: number | null, scram: string | null, linked: number | null }
interface ChatRow { id: string, kind: 'direct' | 'group', name: string | null, created_by: string, created_at: number, e2ee: number, disappearing: number | null }
interface MemberRow { chat_id: string, user_id: string, role: Role, joined_at: number, from_seq: number, engaged: number }

const toDevice = (r: DeviceRow): Device => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  tokenHash: r.token_hash,
  ...(r.scram !== null ? { scram: JSON.parse(r.scram) as ScramCredentials } : {}),
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  ...(r.linked === 1 ? { linked: true } : {})
})
const toChat = (r: ChatRow): Chat => ({ id: r.id, kind: r.kind, name: r.name, createdBy: r.created_by, createdAt: r.created_at, ...(r.e2ee === 1 ? { e2ee: true } : {}), ...(r.disappearing !== null && r.disappearing !== undefined ? { disappearing: r.disappearing } : {}) })
/** A users row: the ban only while there is one. */
const userOf = (row: unknown): User | undefined => {
  const r = row as { id: string, phone: string, createdAt: number, bannedAt: number | null } | undefined
  return r === undefined ? undefined : { id: r.id, phone: r.phone, createdAt: r.createdAt, ...(r.bannedAt !== null ? { bannedAt: r.bannedAt } : {}) }
}
const toMember = (r: MemberRow): Member => ({ chatId: r.chat_id, userId: r.user_id, role: r.role, joinedAt: r.joined_at, fromSeq: r.from_seq, engaged: r.engaged === 1 })

export class SqliteDirectory implements DirectoryStore {
  #db: SqliteDb
  #st

  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    // Devices tables made before SCRAM keys were kept.
    const have = new Set((db.prepare('PRAGMA table_info(devices)').all() as Array<{ name: string }>).map((c) => c.name))
    if (!have.has('scram')) db.exec('ALTER TABLE devices ADD COLUMN scram TEXT')
    // ... and before linked devices were told apart (those read as created by a phone verification).
    if (!have.has('linked')) db.exec('ALTER TABLE devices ADD COLUMN linked INTEGER')
    // Members recorded before membership periods read the whole chat (from_seq 0), and count as engaged.
    const memberColumns = new Set((db.prepare('PRAGMA table_info(members)').all() as Array<{ name: string }>).map((c) => c.name))
    // ... and chats made before end-to-end encryption could be required.
    const chatColumns = new Set((db.prepare('PRAGMA table_info(chats)').all() as Array<{ name: string }>).map((c) => c.name))
    if (!chatColumns.has('e2ee')) db.exec('ALTER TABLE chats ADD COLUMN e2ee INTEGER NOT NULL DEFAULT 0')
    // ... and users before bans.
    const userColumns = new Set((db.prepare('PRAGMA table_info(users)').all() as Array<{ name: string }>).map((c) => c.name))
    if (!userColumns.has('banned_at')) db.exec('ALTER TABLE users ADD COLUMN banned_at INTEGER')
    // ... and before disappearing messages.
    if (!chatColumns.has('disappearing')) db.exec('ALTER TABLE chats ADD COLUMN disappearing INTEGER')
    if (!memberColumns.has('from_seq')) db.exec('ALTER TABLE members ADD COLUMN from_seq INTEGER NOT NULL DEFAULT 0')
    if (!memberColumns.has('engaged')) db.exec('ALTER TABLE members ADD COLUMN engaged INTEGER NOT NULL DEFAULT 1')
    this.#st = {
      insertUser: db.prepare('INSERT INTO users (id, phone, created_at) VALUES (?, ?, ?)'),
      user: db.prepare('SELECT id, phone, created_at AS createdAt, banned_at AS bannedAt FROM users WHERE id = ?'),
      userByPhone: db.prepare('SELECT id, phone, created_at AS createdAt, banned_at AS bannedAt FROM users WHERE phone = ?'),
      usersByPrefix: db.prepare('SELECT id, phone, created_at AS createdAt, banned_at AS bannedAt FROM users WHERE phone >= ? AND phone < ? ORDER BY phone LIMIT ?'),
      setBanned: db.prepare('UPDATE users SET banned_at = ? WHERE id = ?'),
      banned: db.prepare('SELECT id FROM users WHERE banned_at IS NOT NULL'),
      insertDevice: db.prepare('INSERT INTO devices (id, user_id, name, token_hash, created_at, revoked_at, scram, linked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      setScram: db.prepare('UPDATE devices SET scram = ? WHERE id = ?'),
      device: db.prepare('SELECT * FROM devices WHERE id = ?'),
      devicesOf: db.prepare('SELECT * FROM devices WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, id'),
      activeCount: db.prepare('SELECT count(*) AS n FROM devices WHERE user_id = ? AND revoked_at IS NULL'),
      allDevices: db.prepare('SELECT * FROM devices'),
      revoke: db.prepare('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      insertChat: db.prepare('INSERT OR IGNORE INTO chats (id, kind, name, created_by, created_at, e2ee) VALUES (?, ?, ?, ?, ?, ?)'),
      requireE2ee: db.prepare('UPDATE chats SET e2ee = 1 WHERE id = ?'),
      setDisappearing: db.prepare('UPDATE chats SET disappearing = ? WHERE id = ?'),
      disappearingChats: db.prepare('SELECT id, disappearing FROM chats WHERE disappearing IS NOT NULL'),
      e2eeChats: db.prepare('SELECT id FROM chats WHERE e2ee = 1'),
      chat: db.prepare('SELECT * FROM chats WHERE id = ?'),
      rename: db.prepare('UPDATE chats SET name = ? WHERE id = ?'),
      chatsOf: db.prepare('SELECT c.* FROM members m JOIN chats c ON c.id = m.chat_id WHERE m.user_id = ? ORDER BY c.created_at, c.id'),
      members: db.prepare('SELECT * FROM members WHERE chat_id = ? ORDER BY joined_at, user_id'),
      insertMember: db.prepare('INSERT OR IGNORE INTO members (chat_id, user_id, role, joined_at, from_seq, engaged) VALUES (?, ?, ?, ?, ?, ?)'),
      setEngaged: db.prepare('UPDATE members SET engaged = 1 WHERE chat_id = ? AND user_id = ?'),
      member: db.prepare('SELECT * FROM members WHERE chat_id = ? AND user_id = ?'),
      removeMember: db.prepare('DELETE FROM members WHERE chat_id = ? AND user_id = ?'),
      closePeriod: db.prepare('INSERT OR REPLACE INTO member_periods (chat_id, user_id, from_seq, to_seq, joined_at, left_at) VALUES (?, ?, ?, ?, ?, ?)'),
      closedPeriods: db.prepare(`SELECT from_seq AS fromSeq, to_seq AS toSeq, joined_at AS joinedAt, left_at AS leftAt
        FROM member_periods WHERE chat_id = ? AND user_id = ? ORDER BY from_seq`),
      setRole: db.prepare('UPDATE members SET role = ? WHERE chat_id = ? AND user_id = ?'),
      allMemberships: db.prepare('SELECT chat_id, user_id, from_seq, engaged FROM members'),
      block: db.prepare('INSERT OR IGNORE INTO blocks (blocker, blocked, at) VALUES (?, ?, ?)'),
      unblock: db.prepare('DELETE FROM blocks WHERE blocker = ? AND blocked = ?'),
      allBlocks: db.prepare('SELECT blocker, blocked FROM blocks ORDER BY blocker, blocked'),
      getSettings: db.prepare('SELECT settings FROM user_settings WHERE user_id = ?'),
      putSettings: db.prepare('INSERT OR REPLACE INTO user_settings (user_id, settings) VALUES (?, ?)'),
      allSettings: db.prepare('SELECT user_id, settings FROM user_settings'),
      getChatSettings: db.prepare('SELECT settings FROM chat_settings WHERE user_id = ? AND chat_id = ?'),
      putChatSettings: db.prepare('INSERT OR REPLACE INTO chat_settings (user_id, chat_id, settings) VALUES (?, ?, ?)'),
      chatSettingsOf: db.prepare('SELECT chat_id, settings FROM chat_settings WHERE user_id = ?'),
      pushTarget: db.prepare('SELECT target FROM push_targets WHERE id = ?'),
      putPushTarget: db.prepare('INSERT OR REPLACE INTO push_targets (id, device_id, target, created_at) VALUES (?, ?, ?, ?)'),
      pushTargets: db.prepare('SELECT target FROM push_targets WHERE device_id = ? ORDER BY created_at, id'),
      deletePushTarget: db.prepare('DELETE FROM push_targets WHERE device_id = ? AND id = ?'),
      deletePushTargets: db.prepare('DELETE FROM push_targets WHERE device_id = ?'),
      pushTargetDevices: db.prepare('SELECT DISTINCT device_id FROM push_targets'),
      putCode: db.prepare('INSERT OR REPLACE INTO one_time_codes (phone, code_hash, expires_at, attempts) VALUES (?, ?, ?, ?)'),
      code: db.prepare('SELECT phone, code_hash AS codeHash, expires_at AS expiresAt, attempts FROM one_time_codes WHERE phone = ?'),
      countAttempt: db.prepare('UPDATE one_time_codes SET attempts = attempts + 1 WHERE phone = ? RETURNING attempts'),
      deleteCode: db.prepare('DELETE FROM one_time_codes WHERE phone = ?'),
      erase: [
        'DELETE FROM push_targets WHERE device_id IN (SELECT id FROM devices WHERE user_id = ?1)',
        'DELETE FROM devices WHERE user_id = ?1',
        'DELETE FROM user_settings WHERE user_id = ?1',
        'DELETE FROM chat_settings WHERE user_id = ?1',
        'DELETE FROM blocks WHERE blocker = ?1 OR blocked = ?1',
        'DELETE FROM users WHERE id = ?1'
      ].map((sql) => db.prepare(sql))
    }
  }

  async createUser (u: User): Promise<void> { this.#st.insertUser.run(u.id, u.phone, u.createdAt) }
  async getUser (id: string): Promise<User | undefined> { return userOf(this.#st.user.get(id)) }
  async getUserByPhone (phone: string): Promise<User | undefined> { return userOf(this.#st.userByPhone.get(phone)) }
  async setBanned (userId: string, at: number | null): Promise<void> { this.#st.setBanned.run(at, userId) }
  async bannedUsers (): Promise<string[]> { return (this.#st.banned.all() as Array<{ id: string }>).map((r) => r.id) }
  async findUsers (query: { phonePrefix?: string, id?: string }, limit: number): Promise<User[]> {
    if (query.id !== undefined) return [await this.getUser(query.id)].filter((u): u is User => u !== undefined)
    const prefix = query.phonePrefix ?? '+'
    // Numbers are digits after "+": the prefix's range ends before the next character (":" follows "9").
    return this.#st.usersByPrefix.all(prefix, `${prefix}:`, limit).map((r) => userOf(r)!)
  }

  async usersByPhones (phones: string[]): Promise<User[]> {
    const out: User[] = []
    for (const phone of new Set(phones)) {
      const u = userOf(this.#st.userByPhone.get(phone))
      if (u !== undefined) out.push(u)
    }
    return out
  }

  async addDevice (d: Device): Promise<void> {
    this.#st.insertDevice.run(d.id, d.userId, d.name, d.tokenHash, d.createdAt, d.revokedAt, d.scram ? JSON.stringify(d.scram) : null, d.linked === true ? 1 : 0)
  }

  async addDeviceWithin (d: Device, maxActive: number): Promise<boolean> {
    return this.#db.transaction(() => {
      if ((this.#st.activeCount.get(d.userId) as { n: number }).n >= maxActive) return false
      this.#st.insertDevice.run(d.id, d.userId, d.name, d.tokenHash, d.createdAt, d.revokedAt, d.scram ? JSON.stringify(d.scram) : null, d.linked === true ? 1 : 0)
      return true
    })()
  }

  async setDeviceScram (id: string, scram: ScramCredentials): Promise<void> { this.#st.setScram.run(JSON.stringify(scram), id) }

  async getDevice (id: string): Promise<Device | undefined> {
    const row = this.#st.device.get(id) as DeviceRow | undefined
    return row ? toDevice(row) : undefined
  }

  async listDevices (userId: string): Promise<Device[]> { return (this.#st.devicesOf.all(userId) as DeviceRow[]).map(toDevice) }
  async allDevices (): Promise<Device[]> { return (this.#st.allDevices.all() as DeviceRow[]).map(toDevice) }
  async revokeDevice (id: string, at: number): Promise<boolean> { return this.#st.revoke.run(at, id).changes === 1 }

  async createChat (chat: Chat, members: Member[]): Promise<boolean> {
    return this.#db.transaction(() => {
      if (this.#st.insertChat.run(chat.id, chat.kind, chat.name, chat.createdBy, chat.createdAt, chat.e2ee === true ? 1 : 0).changes === 0) return false
      for (const m of members) this.#st.insertMember.run(m.chatId, m.userId, m.role, m.joinedAt, m.fromSeq, m.engaged ? 1 : 0)
      return true
    })()
  }

  async getChat (id: string): Promise<Chat | undefined> {
    const row = this.#st.chat.get(id) as ChatRow | undefined
    return row ? toChat(row) : undefined
  }

  async requireE2ee (id: string): Promise<void> { this.#st.requireE2ee.run(id) }
  async e2eeChatIds (): Promise<string[]> { return (this.#st.e2eeChats.all() as Array<{ id: string }>).map((r) => r.id) }
  async setDisappearing (id: string, seconds: number | null): Promise<void> { this.#st.setDisappearing.run(seconds, id) }
  async disappearingChats (): Promise<Array<{ chatId: string, seconds: number }>> {
    return (this.#st.disappearingChats.all() as Array<{ id: string, disappearing: number }>).map((r) => ({ chatId: r.id, seconds: r.disappearing }))
  }

  async renameChat (id: string, name: string): Promise<void> { this.#st.rename.run(name, id) }
  async chatsOfUser (userId: string): Promise<Chat[]> { return (this.#st.chatsOf.all(userId) as ChatRow[]).map(toChat) }
  async members (chatId: string): Promise<Member[]> { return (this.#st.members.all(chatId) as MemberRow[]).map(toMember) }

  async addMembers (members: Member[]): Promise<Member[]> {
    return this.#db.transaction(() => members.filter((m) => this.#st.insertMember.run(m.chatId, m.userId, m.role, m.joinedAt, m.fromSeq, m.engaged ? 1 : 0).changes === 1))()
  }

  async removeMember (chatId: string, userId: string, end: { toSeq: number, at: number }): Promise<boolean> {
    return this.#db.transaction(() => {
      const m = this.#st.member.get(chatId, userId) as MemberRow | undefined
      if (!m) return false
      this.#st.closePeriod.run(chatId, userId, m.from_seq, end.toSeq, m.joined_at, end.at)
      this.#st.removeMember.run(chatId, userId)
      return true
    })()
  }

  async periods (chatId: string, userId: string): Promise<MemberPeriod[]> {
    const closed = plainRows<MemberPeriod>(this.#st.closedPeriods.all(chatId, userId))
    const m = this.#st.member.get(chatId, userId) as MemberRow | undefined
    return m ? [...closed, { fromSeq: m.from_seq, toSeq: null, joinedAt: m.joined_at, leftAt: null }] : closed
  }

  async setRole (chatId: string, userId: string, role: Role): Promise<boolean> { return this.#st.setRole.run(role, chatId, userId).changes === 1 }
  async setEngaged (chatId: string, userId: string): Promise<boolean> { return this.#st.setEngaged.run(chatId, userId).changes === 1 }

  async allMemberships (): Promise<Array<{ chatId: string, userId: string, fromSeq: number, engaged: boolean }>> {
    return (this.#st.allMemberships.all() as MemberRow[]).map((r) => ({ chatId: r.chat_id, userId: r.user_id, fromSeq: r.from_seq, engaged: r.engaged === 1 }))
  }

  async block (blocker: string, blocked: string, at: number): Promise<boolean> { return this.#st.block.run(blocker, blocked, at).changes === 1 }
  async unblock (blocker: string, blocked: string): Promise<boolean> { return this.#st.unblock.run(blocker, blocked).changes === 1 }
  async allBlocks (): Promise<Array<{ blocker: string, blocked: string }>> { return plainRows<{ blocker: string, blocked: string }>(this.#st.allBlocks.all()) }

  async getSettings (userId: string): Promise<UserSettings | undefined> {
    const row = this.#st.getSettings.get(userId) as { settings: string } | undefined
    return row ? JSON.parse(row.settings) as UserSettings : undefined
  }

  async putSettings (userId: string, settings: UserSettings): Promise<void> { this.#st.putSettings.run(userId, JSON.stringify(settings)) }
  async allSettings (): Promise<Array<{ userId: string, settings: UserSettings }>> {
    return (this.#st.allSettings.all() as Array<{ user_id: string, settings: string }>).map((r) => ({ userId: r.user_id, settings: JSON.parse(r.settings) as UserSettings }))
  }

  async getChatSettings (userId: string, chatId: string): Promise<ChatSettings | undefined> {
    const row = this.#st.getChatSettings.get(userId, chatId) as { settings: string } | undefined
    return row ? JSON.parse(row.settings) as ChatSettings : undefined
  }

  async putChatSettings (userId: string, chatId: string, settings: ChatSettings): Promise<void> { this.#st.putChatSettings.run(userId, chatId, JSON.stringify(settings)) }
  async chatSettingsOf (userId: string): Promise<Map<string, ChatSettings>> {
    return new Map((this.#st.chatSettingsOf.all(userId) as Array<{ chat_id: string, settings: string }>).map((r) => [r.chat_id, JSON.parse(r.settings) as ChatSettings]))
  }

  async addPushTarget (t: PushTarget): Promise<PushTarget> {
    return this.#db.transaction(() => {
      const row = this.#st.pushTarget.get(t.id) as { target: string } | undefined
      const existing = row ? JSON.parse(row.target) as PushTarget : undefined
      if (existing?.deviceId === t.deviceId) return existing
      this.#st.putPushTarget.run(t.id, t.deviceId, JSON.stringify(t), t.createdAt)
      return t
    })()
  }

  async pushTargets (deviceId: string): Promise<PushTarget[]> {
    return (this.#st.pushTargets.all(deviceId) as Array<{ target: string }>).map((r) => JSON.parse(r.target) as PushTarget)
  }

  async removePushTarget (deviceId: string, id: string): Promise<boolean> { return this.#st.deletePushTarget.run(deviceId, id).changes > 0 }
  async removePushTargets (deviceId: string): Promise<number> { return Number(this.#st.deletePushTargets.run(deviceId).changes) }
  async pushTargetDevices (): Promise<string[]> { return (this.#st.pushTargetDevices.all() as Array<{ device_id: string }>).map((r) => r.device_id) }

  async putCode (c: OneTimeCode): Promise<void> { this.#st.putCode.run(c.phone, c.codeHash, c.expiresAt, c.attempts) }
  async getCode (phone: string): Promise<OneTimeCode | undefined> { return plainRow<OneTimeCode>(this.#st.code.get(phone)) }
  async countAttempt (phone: string): Promise<number> {
    const row = this.#st.countAttempt.get(phone) as { attempts: number } | undefined
    return row?.attempts ?? 0
  }

  async deleteCode (phone: string): Promise<void> { this.#st.deleteCode.run(phone) }

  async eraseUser (userId: string, phone: string): Promise<void> {
    this.#db.transaction(() => {
      for (const st of this.#st.erase) st.run(userId)
      this.#st.deleteCode.run(phone)
    })()
  }

  /** Copies the WAL into the database and empties it: pages from before a deletion are not left there. */
  async compact (): Promise<void> { this.#db.pragma('wal_checkpoint(TRUNCATE)') }

  async close (): Promise<void> { /* the database is closed by its owner, shared with the history store */ }
}
