// Media records on MongoDB: one document per media id, holding its owners and
// the chats it was sent in, so every change is a single-document update.
import type { Collection, Db } from 'mongodb'
import type { Media, MediaLink, MediaStore } from '../types.js'

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
  /** Links recorded before seqs were kept (they read as seq 1). */
  chats?: Array<{ chatId: string, at: number }>
  /** The chats it was sent in (FerretDB 1.x cannot filter on fields of array elements). */
  chatIds: string[]
  /** Per chat id, the first and last seq of a message that carried it. */
  seqs?: Record<string, { first: number, last: number }>
  /** Whether it was ever sent in a chat (the lifecycle deletes unsent uploads). */
  linked: boolean
  /** The last use (upload, send, deduplication); absent on older documents (then createdAt). */
  usedAt?: number
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
      status: m.status, createdAt: m.createdAt, uploadExpiresAt: m.uploadExpiresAt, owners: [m.uploader], chatIds: [], linked: false, usedAt: m.createdAt
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
  async addOwner (id: string, userId: string, at: number): Promise<void> {
    await this.#media.updateOne({ _id: id }, { $addToSet: { owners: userId }, $max: { usedAt: at } })
  }

  async disown (userId: string): Promise<string[]> {
    const ids = (await this.#media.find({ owners: userId }, { projection: { _id: 1 } }).toArray()).map((m) => m._id)
    if (ids.length === 0) return []
    await this.#media.updateMany({ _id: { $in: ids } }, { $pull: { owners: userId } })
    return (await this.#media.find({ _id: { $in: ids }, owners: { $size: 0 } }, { projection: { _id: 1 } }).toArray()).map((m) => m._id)
  }

  async isOwner (id: string, userId: string): Promise<boolean> { return (await this.#media.countDocuments({ _id: id, owners: userId })) > 0 }

  async linkChat (id: string, chatId: string, seq: number, at: number): Promise<void> {
    // Chat ids are [a-z_0-9] only, so they are safe as field names.
    await this.#media.updateOne({ _id: id }, {
      $addToSet: { chatIds: chatId },
      $min: { [`seqs.${chatId}.first`]: seq },
      $max: { [`seqs.${chatId}.last`]: seq, usedAt: at },
      $set: { linked: true }
    })
  }

  async linksOf (id: string): Promise<MediaLink[]> {
    const d = await this.#media.findOne({ _id: id }, { projection: { chatIds: 1, seqs: 1 } })
    return (d?.chatIds ?? []).map((chatId) => {
      const s = d?.seqs?.[chatId]
      return { chatId, firstSeq: s?.first ?? 1, lastSeq: s?.last ?? 1 }
    })
  }

  async bytesUploadedSince (userId: string, since: number): Promise<number> {
    const docs = await this.#media.find({ uploader: userId, createdAt: { $gte: since } }, { projection: { size: 1 } }).toArray()
    return docs.reduce((n, d) => n + d.size, 0)
  }

  async expired (retainedSince: number, referencedSince: number): Promise<Media[]> {
    const docs = await this.#media.find({
      $or: [
        { usedAt: { $lt: retainedSince } },
        { usedAt: { $exists: false }, createdAt: { $lt: retainedSince } },
        { createdAt: { $lt: referencedSince }, linked: false }
      ]
    }).toArray()
    return docs.map(toMedia)
  }
}
