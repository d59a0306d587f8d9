// Media: upload slots (deduplicated by SHA-256, limited per kind, with an
// hourly quota), verified completion, and who may download or send what.
// The bytes never pass through here: devices upload and download with
// presigned URLs straight to the backend (S3, or the API's own /media
// endpoints for the local backend).
import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { MediaBackend, UploadTarget } from '../media/backend.js'
import type { LocalBackend } from '../media/local-backend.js'
import type { Media, MediaKind, MediaLink, MediaStore } from '../store/types.js'
import type { ChatService } from './chats.js'
import { DomainError, notFound } from './errors.js'

export interface MediaLimits {
  maxBytes: Record<MediaKind, number>
  quotaBytesPerHour: number
  uploadUrlSeconds: number
  downloadUrlSeconds: number
}

export function kindOf (contentType: string): MediaKind {
  const top = contentType.split('/')[0]
  return top === 'image' || top === 'audio' || top === 'video' ? top : 'document'
}

export type SlotAnswer =
  | { media: Media, existing: true }
  | { media: Media, existing: false, uploadExpiresAt: number }

export class MediaService {
  #alsoReadable: Array<(mediaId: string, userId: string) => Promise<boolean>> = []
  #keep: Array<(mediaId: string) => Promise<boolean>> = []

  /** Another reason a user may read a media object (an avatar: whoever may see its owner's profile). */
  alsoReadable (fn: (mediaId: string, userId: string) => Promise<boolean>): void { this.#alsoReadable.push(fn) }
  /** Media the lifecycle job keeps whatever its age (a current avatar). */
  keepWhile (fn: (mediaId: string) => Promise<boolean>): void { this.#keep.push(fn) }

  constructor (
    private readonly store: MediaStore,
    readonly backend: MediaBackend,
    private readonly chats: ChatService,
    readonly limits: MediaLimits
  ) {}

  /** The local backend, which receives and serves bytes through the API itself; undefined for S3. */
  get local (): LocalBackend | undefined { return this.backend.name === 'local' ? this.backend as LocalBackend : undefined }

  uploadTarget (media: Media, expiresAt: number, baseUrl: string): Promise<UploadTarget> { return this.backend.uploadTarget(media, expiresAt, baseUrl) }

  async downloadUrl (media: Media, baseUrl: string): Promise<{ url: string, expiresAt: number }> {
    const expiresAt = Date.now() + this.limits.downloadUrlSeconds * 1000
    return { url: await this.backend.downloadUrl(media, expiresAt, baseUrl), expiresAt }
  }

  /** A pending upload whose bytes the backend now holds, verified, becomes complete (S3 uploads bypass the API). */
  private async completed (media: Media | undefined): Promise<Media | undefined> {
    if (!media || media.status === 'complete') return media
    if (!await this.backend.confirm(media)) return undefined
    await this.store.markComplete(media.id)
    return { ...media, status: 'complete', uploadExpiresAt: null }
  }

  /**
   * An upload slot: for a chat the user is in, or (`chatId` undefined) for
   * the user's own use, such as an avatar, which must then be an image.
   */
  async requestSlot (userId: string, req: { chatId?: string, size: number, contentType: string, sha256: string }): Promise<SlotAnswer> {
    if (req.chatId !== undefined && !this.chats.isMember(req.chatId, userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
    const kind = kindOf(req.contentType)
    if (req.chatId === undefined && kind !== 'image') throw new DomainError('bad_request', 'an upload for no chat is an avatar: an image', 400)
    const max = this.limits.maxBytes[kind]
    if (req.size > max) throw new DomainError('too_large', `${kind} files may be at most ${max} bytes`, 413)
    const existing = await this.store.findComplete(req.sha256, req.size)
    if (existing) {
      // The same bytes are stored already: no upload. Knowing the hash and size
      // entitles the caller to send it (the usual dedup trade-off).
      await this.store.addOwner(existing.id, userId, Date.now())
      return { media: existing, existing: true }
    }
    const now = Date.now()
    const used = await this.store.bytesUploadedSince(userId, now - 3_600_000)
    if (used + req.size > this.limits.quotaBytesPerHour) {
      throw new DomainError('quota_exceeded', `uploads are limited to ${this.limits.quotaBytesPerHour} bytes per hour; try again later`, 429)
    }
    const uploadExpiresAt = now + this.limits.uploadUrlSeconds * 1000
    const media: Media = {
      id: `m_${randomBytes(10).toString('hex')}`, sha256: req.sha256, size: req.size, contentType: req.contentType,
      kind, uploader: userId, status: 'pending', createdAt: now, uploadExpiresAt
    }
    await this.store.put(media)
    return { media, existing: false, uploadExpiresAt }
  }

  /** Receives the bytes of a pending upload; a failed check removes the slot and everything written. */
  async receive (mediaId: string, source: Readable): Promise<Media> {
    const local = this.local
    if (!local) throw notFound('media')
    const media = await this.store.get(mediaId)
    if (!media) throw notFound('media')
    if (media.status === 'complete') throw new DomainError('already_uploaded', 'this media is uploaded already', 409)
    try {
      await local.blobs.put(media.id, source, { size: media.size, sha256: media.sha256 })
    } catch (err) {
      await this.store.delete(media.id)
      throw err
    }
    await this.store.markComplete(media.id)
    return { ...media, status: 'complete', uploadExpiresAt: null }
  }

  /**
   * The media a user may download: they uploaded it (or were given it by
   * deduplication), or it was sent in a chat where they may read a message
   * that carried it (core/membership.ts). Otherwise "not found".
   */
  async readable (mediaId: string, userId: string): Promise<Media> {
    const media = await this.completed(await this.store.get(mediaId))
    if (!media) throw notFound('media')
    if (await this.store.isOwner(mediaId, userId)) return media
    for (const link of await this.store.linksOf(mediaId)) if (await this.seesLink(link, userId)) return media
    for (const also of this.#alsoReadable) if (await also(mediaId, userId)) return media
    throw notFound('media')
  }

  /** A completed upload of the user's (theirs by upload or deduplication); undefined otherwise. */
  async owned (mediaId: string, userId: string): Promise<Media | undefined> {
    const media = await this.completed(await this.store.get(mediaId))
    return media !== undefined && await this.store.isOwner(mediaId, userId) ? media : undefined
  }

  /**
   * Whether a user may read a message of the chat that carried the media.
   * Only the first and last such message are recorded; a user who could read
   * only one in between is refused (never the other way round).
   */
  private async seesLink (link: MediaLink, userId: string): Promise<boolean> {
    return await this.chats.canRead(link.chatId, userId, link.lastSeq) || await this.chats.canRead(link.chatId, userId, link.firstSeq)
  }

  /** Refuses a media message that references media the sender may not send in this chat: theirs, or readable to them in this chat. */
  async checkSendable (mediaId: string, userId: string, chatId: string): Promise<void> {
    const media = await this.completed(await this.store.get(mediaId))
    let ok = media !== undefined && await this.store.isOwner(mediaId, userId)
    if (media !== undefined && !ok) {
      const link = (await this.store.linksOf(mediaId)).find((l) => l.chatId === chatId)
      ok = link !== undefined && await this.seesLink(link, userId)
    }
    if (!ok) throw new DomainError('unknown_media', 'no completed upload of yours (or of this chat) has this media id', 404)
  }

  /**
   * The lifecycle: deletes media older than the retention period, and media
   * never sent in any chat (an upload left pending, or never referenced)
   * within `unreferencedMs`. Returns the ids deleted.
   */
  async expire (retentionMs: number, unreferencedMs: number, now = Date.now()): Promise<string[]> {
    const gone: string[] = []
    for (const m of await this.store.expired(now - retentionMs, now - unreferencedMs)) {
      if (await this.#kept(m.id)) continue
      await this.#remove(m.id)
      gone.push(m.id)
    }
    return gone
  }

  /** An erased account's media: what no one else owns is deleted, bytes and record. Returns the ids deleted. */
  async eraseOwner (userId: string): Promise<string[]> {
    const orphans = await this.store.disown(userId)
    for (const id of orphans) await this.#remove(id)
    return orphans
  }

  /** Deletes a media object: its bytes, then its record. */
  async #remove (mediaId: string): Promise<void> {
    await this.backend.delete(mediaId)
    await this.store.delete(mediaId)
  }

  async #kept (mediaId: string): Promise<boolean> {
    for (const keep of this.#keep) if (await keep(mediaId)) return true
    return false
  }

  /** Records that a message (chat, seq) carries the media: the chat's readers of that seq may download it. */
  async sent (mediaId: string, chatId: string, seq: number): Promise<void> { await this.store.linkChat(mediaId, chatId, seq, Date.now()) }

  get (mediaId: string): Promise<Media | undefined> { return this.store.get(mediaId) }
  /** Streams stored bytes (local backend). */
  read (mediaId: string, range?: { start: number, end: number }): Readable {
    const local = this.local
    if (!local) throw notFound('media')
    return local.blobs.get(mediaId, range)
  }
}
