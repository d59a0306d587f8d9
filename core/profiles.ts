// Profiles (docs/protocol.md, "Profiles"): a user's display name, "about"
// line and avatar (an image uploaded through the media path), and who may
// see them. Visibility is a privacy setting: everyone (anyone who can name
// the user), contacts (the users whose phone numbers the user uploaded; see
// core/contacts.ts), or nobody. A blocked user sees nothing. A change
// reaches, as a `profile` inbox event, the devices of the users who share a
// chat with the user and may see it, and the user's other devices.
import { DomainError } from './errors.js'
import type { BlockService } from './blocks.js'
import type { ChatService } from './chats.js'
import type { DeviceService } from './devices.js'
import type { SettingsService } from './settings.js'
import type { MediaService } from './media.js'
import type { DirectoryStore, Profile, ProfileStore } from '../store/types.js'

/** Sends an inbox event to a device (bridge.sendTo). */
export type ProfileEventSender = (deviceId: string, payload: string) => void

/**
 * A profile as one viewer may see it: every field null when hidden. `phone`
 * when the user is on the viewer's contact list (the viewer knows the
 * number already), so a client can fall back to the name it has for it.
 */
export interface VisibleProfile { userId: string, name: string | null, about: string | null, avatar: string | null, visible: boolean, phone?: string }

export const MAX_NAME = 64
export const MAX_ABOUT = 140
/** Users whose profiles one request may ask for. */
export const MAX_PROFILES_PER_REQUEST = 100
/** Avatars are images of these types. */
const AVATAR_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp'])

// Control characters (C0, DEL, C1) and the bidirectional overrides that make a name read as another.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u

function text (value: unknown, field: string, max: number): string | null {
  if (value === null) return null
  if (typeof value !== 'string') throw new DomainError('bad_request', `${field} is a string, or null to clear it`, 400)
  const t = value.normalize('NFC').trim()
  if (t.length === 0) return null
  if ([...t].length > max) throw new DomainError('bad_request', `${field} is at most ${max} characters`, 400)
  if (FORBIDDEN.test(t)) throw new DomainError('bad_request', `${field} may not contain control or direction-override characters`, 400)
  return t
}

export class ProfileService {
  constructor (
    private readonly store: ProfileStore,
    private readonly directory: DirectoryStore,
    private readonly settings: SettingsService,
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly blocks: BlockService,
    private readonly media: MediaService,
    private readonly send: ProfileEventSender
  ) {
    // An avatar may be fetched by whoever may see its owner's profile, and is kept while it is one.
    media.alsoReadable(async (mediaId, userId) => {
      const owner = await this.store.avatarOwner(mediaId)
      return owner !== undefined && await this.maySee(userId, owner)
    })
    media.keepWhile(async (mediaId) => (await this.store.avatarOwner(mediaId)) !== undefined)
  }

  /** Whether `viewer` may see `owner`'s profile. */
  async maySee (viewer: string, owner: string, viewerPhone?: string): Promise<boolean> {
    if (viewer === owner) return true
    if (this.blocks.has(owner, viewer)) return false
    const v = this.settings.of(owner).profile ?? 'everyone'
    if (v === 'everyone') return true
    if (v === 'nobody') return false
    const phone = viewerPhone ?? (await this.directory.getUser(viewer))?.phone
    return phone !== undefined && await this.store.hasContact(owner, phone)
  }

  /** The profiles of `userIds` as `viewer` may see them (unknown users left out). */
  async view (viewer: string, userIds: string[]): Promise<VisibleProfile[]> {
    const ids = [...new Set(userIds)]
    const [profiles, me, contacts] = await Promise.all([this.store.profiles(ids), this.directory.getUser(viewer), this.store.contacts(viewer)])
    const known = new Set(contacts)
    const out: VisibleProfile[] = []
    for (const id of ids) {
      if (id !== viewer && !this.devices.hasUser(id)) continue
      const p = profiles.get(id)
      const visible = await this.maySee(viewer, id, me?.phone)
      const phone = id === viewer ? me?.phone : known.size > 0 ? (await this.directory.getUser(id))?.phone : undefined
      out.push({
        userId: id, name: visible ? p?.name ?? null : null, about: visible ? p?.about ?? null : null, avatar: visible ? p?.avatar ?? null : null, visible,
        ...(phone !== undefined && (id === viewer || known.has(phone)) ? { phone } : {})
      })
    }
    return out
  }

  async own (userId: string): Promise<Profile> {
    return (await this.store.getProfile(userId)) ?? { name: null, about: null, avatar: null, updatedAt: 0 }
  }

  /** Changes the caller's profile; `null` clears a field. The avatar must be an image the caller uploaded. */
  async update (userId: string, patch: { name?: unknown, about?: unknown, avatar?: unknown }): Promise<Profile> {
    const before = await this.own(userId)
    const next: Profile = { ...before, updatedAt: Date.now() }
    if (patch.name !== undefined) next.name = text(patch.name, 'name', MAX_NAME)
    if (patch.about !== undefined) next.about = text(patch.about, 'about', MAX_ABOUT)
    if (patch.avatar !== undefined) {
      if (patch.avatar === null) next.avatar = null
      else {
        if (typeof patch.avatar !== 'string') throw new DomainError('bad_request', 'avatar is a media id, or null', 400)
        const m = await this.media.owned(patch.avatar, userId).catch(() => undefined)
        if (m === undefined) throw new DomainError('unknown_media', 'no completed upload of yours has this media id', 404)
        if (!AVATAR_TYPES.has(m.contentType)) throw new DomainError('bad_request', `an avatar is a JPEG, PNG or WebP image (this is ${m.contentType})`, 400)
        next.avatar = m.id
      }
    }
    await this.store.putProfile(userId, next)
    await this.announce(userId, next)
    return next
  }

  /**
   * Tells the devices of those who share a chat with the user and may see
   * the profile, and the user's other devices.
   */
  private async announce (userId: string, p: Profile): Promise<void> {
    const payload = JSON.stringify({ type: 'profile', user: userId, name: p.name, about: p.about, avatar: p.avatar, ts: p.updatedAt })
    for (const u of this.chats.coMembers(userId)) {
      if (!await this.maySee(u, userId)) continue
      for (const d of this.devices.activeIds(u)) this.send(d, payload)
    }
  }
}
