// A user's own settings for a chat, the same on each of their devices:
// for now, mute (no push for the chat until a time).
import { DomainError } from './errors.js'
import type { ChatService } from './chats.js'
import { DEFAULT_CHAT_SETTINGS, type ChatSettings, type DirectoryStore } from '../store/types.js'

/** The latest time a mute may run to (year 9999): "always" is a time far enough away. */
const MAX_TIME = 253_402_300_799_000

export class ChatSettingsService {
  constructor (private readonly directory: DirectoryStore, private readonly chats: ChatService) {}

  async of (userId: string, chatId: string): Promise<ChatSettings> {
    return (await this.directory.getChatSettings(userId, chatId)) ?? DEFAULT_CHAT_SETTINGS
  }

  /** A member changes their settings of a chat; `mutedUntil` null unmutes. */
  async update (userId: string, chatId: string, patch: { mutedUntil?: number | null }): Promise<ChatSettings> {
    if (!this.chats.isMember(chatId, userId)) throw new DomainError('not_member', 'not a member of this chat', 404)
    if (patch.mutedUntil !== undefined && patch.mutedUntil !== null && (!Number.isInteger(patch.mutedUntil) || patch.mutedUntil < 0 || patch.mutedUntil > MAX_TIME)) {
      throw new DomainError('bad_request', 'muted_until must be a time in milliseconds since the epoch (before the year 10000), or null', 400)
    }
    const next = { ...(await this.of(userId, chatId)), ...patch }
    await this.directory.putChatSettings(userId, chatId, next)
    return next
  }
}
