// A user's own settings for a chat, the same on each of their devices: mute
// (no push for the chat until a time), archive (out of the main list) and
// pin (at the top of it; at most MAX_PINNED chats). A change reaches the
// user's devices as a `chat_settings` inbox event, so each shows the same.
// "Last read" is the user's read watermark (core receipts), synced the same
// way by `receipt` events.
import { DomainError } from './errors.js'
import type { ChatService } from './chats.js'
import type { DeviceService } from './devices.js'
import { DEFAULT_CHAT_SETTINGS, type ChatSettings, type DirectoryStore } from '../store/types.js'

/** The latest time a mute may run to (year 9999): "always" is a time far enough away. */
const MAX_TIME = 253_402_300_799_000
export const MAX_PINNED = 3

export interface ChatSettingsPatch { mutedUntil?: number | null, archived?: boolean, pinned?: boolean }

/** A user's settings of a chat as clients are shown them (none set: the defaults). */
export const chatSettingsJson = (s: Partial<ChatSettings> = {}) => ({ muted_until: s.mutedUntil ?? null, archived: s.archived === true, pinned: (s.pinnedAt ?? null) !== null })

export class ChatSettingsService {
  constructor (
    private readonly directory: DirectoryStore,
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly send: (deviceId: string, payload: string) => void
  ) {}

  async of (userId: string, chatId: string): Promise<ChatSettings> {
    return { ...DEFAULT_CHAT_SETTINGS, ...(await this.directory.getChatSettings(userId, chatId)) }
  }

  /** Every chat setting of a user, by chat (chats without any are absent). */
  async allOf (userId: string): Promise<Map<string, ChatSettings>> { return await this.directory.chatSettingsOf(userId) }

  /** A member changes their settings of a chat; `mutedUntil` null unmutes. */
  async update (userId: string, chatId: string, patch: ChatSettingsPatch): Promise<ChatSettings> {
    if (!this.chats.isMember(chatId, userId)) throw new DomainError('not_member', 'not a member of this chat', 404)
    if (patch.mutedUntil !== undefined && patch.mutedUntil !== null && (!Number.isInteger(patch.mutedUntil) || patch.mutedUntil < 0 || patch.mutedUntil > MAX_TIME)) {
      throw new DomainError('bad_request', 'muted_until must be a time in milliseconds since the epoch (before the year 10000), or null', 400)
    }
    const before = await this.of(userId, chatId)
    const next: ChatSettings = { ...before }
    if (patch.mutedUntil !== undefined) next.mutedUntil = patch.mutedUntil
    if (patch.archived !== undefined) next.archived = patch.archived
    if (patch.pinned === false) next.pinnedAt = null
    if (patch.pinned === true && (before.pinnedAt ?? null) === null) {
      const pinned = [...(await this.allOf(userId)).entries()].filter(([id, s]) => id !== chatId && (s.pinnedAt ?? null) !== null && this.chats.isMember(id, userId))
      if (pinned.length >= MAX_PINNED) throw new DomainError('limit_reached', `at most ${MAX_PINNED} chats are pinned; unpin one first`, 409)
      next.pinnedAt = Date.now()
    }
    await this.directory.putChatSettings(userId, chatId, next)
    const payload = JSON.stringify({ type: 'chat_settings', chat: chatId, ...chatSettingsJson(next), ts: Date.now() })
    for (const d of this.devices.activeIds(userId)) this.send(d, payload)
    return next
  }
}
