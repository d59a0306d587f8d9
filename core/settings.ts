// Per-user privacy settings (read receipts, last seen), cached in memory:
// they are consulted on every receipt and presence change.
import { DEFAULT_SETTINGS, type DirectoryStore, type UserSettings } from '../store/types.js'

export class SettingsService {
  #cache = new Map<string, UserSettings>()
  constructor (private readonly directory: DirectoryStore) {}

  async init (): Promise<void> {
    for (const { userId, settings } of await this.directory.allSettings()) this.#cache.set(userId, settings)
  }

  of (userId: string): UserSettings { return this.#cache.get(userId) ?? DEFAULT_SETTINGS }

  async update (userId: string, patch: Partial<UserSettings>): Promise<UserSettings> {
    const next = { ...this.of(userId), ...patch }
    await this.directory.putSettings(userId, next)
    this.#cache.set(userId, next)
    return next
  }
}
