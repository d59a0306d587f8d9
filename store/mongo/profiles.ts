// Profiles and contact lists on MongoDB. A contact is one document,
// _id "<userId>\n<phone>", so adding one twice is a duplicate key, not a
// second copy. Replacing a list is a delete then an insert (FerretDB 1.x has
// no transactions): a crash between them leaves a shorter list, which the
// client's next upload puts right.
import type { Collection, Db } from 'mongodb'
import { MongoBulkWriteError } from 'mongodb'
import type { Profile, ProfileStore } from '../types.js'
import { isDuplicateKey } from './database.js'

type ProfileDoc = Profile & { _id: string }
interface ContactDoc { _id: string, userId: string, phone: string }

const contactId = (userId: string, phone: string): string => `${userId}\n${phone}`
const toProfile = (d: ProfileDoc): Profile => ({ name: d.name, about: d.about, avatar: d.avatar, updatedAt: d.updatedAt })

export class MongoProfiles implements ProfileStore {
  #profiles: Collection<ProfileDoc>
  #contacts: Collection<ContactDoc>

  constructor (db: Db) {
    this.#profiles = db.collection('profiles')
    this.#contacts = db.collection('contacts')
  }

  async init (): Promise<void> {
    await Promise.all([
      this.#profiles.createIndex({ avatar: 1 }, { name: 'profiles_by_avatar' }),
      this.#contacts.createIndex({ userId: 1 }, { name: 'contacts_by_user' }),
      this.#contacts.createIndex({ phone: 1 }, { name: 'contacts_by_phone' })
    ])
  }

  async getProfile (userId: string): Promise<Profile | undefined> {
    const d = await this.#profiles.findOne({ _id: userId })
    return d === null ? undefined : toProfile(d)
  }

  async profiles (userIds: string[]): Promise<Map<string, Profile>> {
    const out = new Map<string, Profile>()
    if (userIds.length === 0) return out
    for (const d of await this.#profiles.find({ _id: { $in: [...new Set(userIds)] } }).toArray()) out.set(d._id, toProfile(d))
    return out
  }

  async putProfile (userId: string, p: Profile): Promise<void> {
    await this.#profiles.replaceOne({ _id: userId }, { name: p.name, about: p.about, avatar: p.avatar, updatedAt: p.updatedAt }, { upsert: true })
  }

  async deleteProfile (userId: string): Promise<void> { await this.#profiles.deleteOne({ _id: userId }) }

  async avatarOwner (mediaId: string): Promise<string | undefined> {
    return (await this.#profiles.findOne({ avatar: mediaId }, { projection: { _id: 1 } }))?._id
  }

  async setContacts (userId: string, phones: string[]): Promise<void> {
    await this.#contacts.deleteMany({ userId })
    await this.#insert(userId, phones)
  }

  async addContacts (userId: string, phones: string[]): Promise<number> {
    await this.#insert(userId, phones)
    return await this.#contacts.countDocuments({ userId })
  }

  async #insert (userId: string, phones: string[]): Promise<void> {
    if (phones.length === 0) return
    try {
      await this.#contacts.insertMany([...new Set(phones)].map((phone) => ({ _id: contactId(userId, phone), userId, phone })), { ordered: false })
    } catch (err) {
      // A number already on the list stays as it was.
      const dupOnly = err instanceof MongoBulkWriteError && (Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]).every((e) => e.code === 11000)
      if (!dupOnly && !isDuplicateKey(err)) throw err
    }
  }

  async contacts (userId: string): Promise<string[]> {
    return (await this.#contacts.find({ userId }, { projection: { phone: 1 } }).toArray()).map((d) => d.phone).sort()
  }

  async hasContact (userId: string, phone: string): Promise<boolean> {
    return (await this.#contacts.findOne({ _id: contactId(userId, phone) }, { projection: { _id: 1 } })) !== null
  }

  async dropContacts (userId: string): Promise<void> { await this.#contacts.deleteMany({ userId }) }
  async forgetPhone (phone: string): Promise<void> { await this.#contacts.deleteMany({ phone }) }
}
