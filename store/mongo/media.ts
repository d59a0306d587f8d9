// Media records on MongoDB: one document per media id, holding its owners and
// the chats it was sent in, so every change is a single-document update.
import type { Collection, Db } from 'mongodb'
import type { Media, MediaStore } from '../types.js'

interface MediaDoc {
  _id: string
  sha256: string
  size: number
  contentType: string
  kind: Media['kind']
  uploader: string
  status: Media['status']
  createdAt: number
  uploadExpiresAt: number | null
  owners: string[]
  chats: Array<{ chatId: string, at: number }>
  /** The chat ids of `chats`, for matching (FerretDB 1.x cannot filter on fields of array elements). */
  chatIds: string[]
  /** Whether it was ever sent in a chat (the lifecycle deletes unsent uploads). */
  linked: boolean
}

const toMedia = (d: MediaDoc): Media => ({
  id: d._id, sha256: d.sha256, size: d.size, contentType: d.contentType, kind: d.kind, uploader: d.uploader,
  status: d.status, createdAt: d.createdAt, uploadExpiresAt: d.uploadExpiresAt
})

export class MongoMedia implements MediaStore {
  #media: Collection<MediaDoc>
  constructor (db: Db) { this.#media = db.collection('media') }

  async init (): Promise<void> {
    await this.#media.createIndex({ sha256: 1, size: 1, status: 1 }, { name: 'media_by_hash' })
    await this.#media.createIndex({ uploader: 1, createdAt: 1 }, { name: 'media_by_uploader' })
    await this.#media.createIndex({ createdAt: 1 }, { name: 'media_by_time' })
  }

  async put (m: Media): Promise<void> {
    await this.#media.insertOne({
      _id: m.id, sha256: m.sha256, size: m.size, contentType: m.contentType, kind: m.kind, uploader: m.uploader,
      status: m.status, createdAt: m.createdAt, uploadExpiresAt: m.uploadExpiresAt, owners: [m.uploader], chats: [], chatIds: [], linked: false
    })
  }

  async get (id: string): Promise<Media | undefined> {
    const d = await this.#media.findOne({ _id: id })
    return d ? toMedia(d) : undefined
  }

  async findComplete (sha256: string, size: number): Promise<Media | undefined> {
    const d = await this.#media.find({ sha256, size, status: 'complete' }).sort({ createdAt: 1 }).limit(1).next()
    return d ? toMedia(d) : undefined
  }

  async markComplete (id: string): Promise<void> {
    await this.#media.updateOne({ _id: id }, { $set: { status: 'complete', uploadExpiresAt: null } })
  }

  async delete (id: string): Promise<void> { await this.#media.deleteOne({ _id: id }) }
  async addOwner (id: string, userId: string): Promise<void> { await this.#media.updateOne({ _id: id }, { $addToSet: { owners: userId } }) }
  async isOwner (id: string, userId: string): Promise<boolean> { return (await this.#media.countDocuments({ _id: id, owners: userId })) > 0 }

  async linkChat (id: string, chatId: string, at: number): Promise<void> {
    // Only the first link of a chat counts (its time orders chatsOf).
    await this.#media.updateOne({ _id: id, chatIds: { $ne: chatId } }, { $push: { chats: { chatId, at }, chatIds: chatId }, $set: { linked: true } })
  }

  async chatsOf (id: string): Promise<string[]> {
    const d = await this.#media.findOne({ _id: id }, { projection: { chats: 1 } })
    return (d?.chats ?? []).slice().sort((a, b) => a.at - b.at).map((c) => c.chatId)
  }

  async bytesUploadedSince (userId: string, since: number): Promise<number> {
    const docs = await this.#media.find({ uploader: userId, createdAt: { $gte: since } }, { projection: { size: 1 } }).toArray()
    return docs.reduce((n, d) => n + d.size, 0)
  }

  async expired (retainedSince: number, referencedSince: number): Promise<Media[]> {
    const docs = await this.#media.find({ $or: [{ createdAt: { $lt: retainedSince } }, { createdAt: { $lt: referencedSince }, linked: false }] }).toArray()
    return docs.map(toMedia)
  }
}
