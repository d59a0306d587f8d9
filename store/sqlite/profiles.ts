// Profiles and contact lists on SQLite.
import type { Profile, ProfileStore } from '../types.js'
import type { SqliteDb } from './database.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS profiles (
  user_id TEXT PRIMARY KEY, name TEXT, about TEXT, avatar TEXT, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS profiles_by_avatar ON profiles (avatar) WHERE avatar IS NOT NULL;
CREATE TABLE IF NOT EXISTS contacts (user_id TEXT NOT NULL, phone TEXT NOT NULL, PRIMARY KEY (user_id, phone)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contacts_by_phone ON contacts (phone);
`

interface ProfileRow { user_id: string, name: string | null, about: string | null, avatar: string | null, updated_at: number }
const toProfile = (r: ProfileRow): Profile => ({ name: r.name, about: r.about, avatar: r.avatar, updatedAt: r.updated_at })

export class SqliteProfiles implements ProfileStore {
  #db: SqliteDb
  #st
  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    this.#st = {
      get: db.prepare('SELECT * FROM profiles WHERE user_id = ?'),
      put: db.prepare('INSERT OR REPLACE INTO profiles (user_id, name, about, avatar, updated_at) VALUES (?, ?, ?, ?, ?)'),
      delete: db.prepare('DELETE FROM profiles WHERE user_id = ?'),
      avatarOwner: db.prepare('SELECT user_id FROM profiles WHERE avatar = ?'),
      clearContacts: db.prepare('DELETE FROM contacts WHERE user_id = ?'),
      addContact: db.prepare('INSERT OR IGNORE INTO contacts (user_id, phone) VALUES (?, ?)'),
      contacts: db.prepare('SELECT phone FROM contacts WHERE user_id = ? ORDER BY phone'),
      count: db.prepare('SELECT count(*) AS n FROM contacts WHERE user_id = ?'),
      has: db.prepare('SELECT 1 AS x FROM contacts WHERE user_id = ? AND phone = ?'),
      forget: db.prepare('DELETE FROM contacts WHERE phone = ?')
    }
  }

  async getProfile (userId: string): Promise<Profile | undefined> {
    const r = this.#st.get.get(userId) as ProfileRow | undefined
    return r === undefined ? undefined : toProfile(r)
  }

  async profiles (userIds: string[]): Promise<Map<string, Profile>> {
    const out = new Map<string, Profile>()
    for (const id of new Set(userIds)) {
      const r = this.#st.get.get(id) as ProfileRow | undefined
      if (r !== undefined) out.set(id, toProfile(r))
    }
    return out
  }

  async putProfile (userId: string, p: Profile): Promise<void> { this.#st.put.run(userId, p.name, p.about, p.avatar, p.updatedAt) }
  async deleteProfile (userId: string): Promise<void> { this.#st.delete.run(userId) }

  async avatarOwner (mediaId: string): Promise<string | undefined> {
    return (this.#st.avatarOwner.get(mediaId) as { user_id: string } | undefined)?.user_id
  }

  async setContacts (userId: string, phones: string[]): Promise<void> {
    this.#db.transaction(() => {
      this.#st.clearContacts.run(userId)
      for (const phone of phones) this.#st.addContact.run(userId, phone)
    })()
  }

  async addContacts (userId: string, phones: string[]): Promise<number> {
    return this.#db.transaction(() => {
      for (const phone of phones) this.#st.addContact.run(userId, phone)
      return (this.#st.count.get(userId) as { n: number }).n
    })()
  }

  async contacts (userId: string): Promise<string[]> { return (this.#st.contacts.all(userId) as Array<{ phone: string }>).map((r) => r.phone) }
  async hasContact (userId: string, phone: string): Promise<boolean> { return this.#st.has.get(userId, phone) !== undefined }
  async dropContacts (userId: string): Promise<void> { this.#st.clearContacts.run(userId) }
  async forgetPhone (phone: string): Promise<void> { this.#st.forget.run(phone) }
}
