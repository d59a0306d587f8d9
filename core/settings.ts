// Per-user privacy settings (read receipts, last seen), cached in memory:
// they are consulted on every receipt and presence change.
import { DEFAULT_SETTINGS, type DirectoryStore, type UserSettings } from '../store/types.js'

/** Privacy settings as clients are shown them. */
export const settingsJson = (st: UserSettings) => ({ read_receipts: st.readReceipts, last_seen: st.lastSeen, profile: st.profile ?? 'everyone' })

export class SettingsService {
  #cache = new Map<string, UserSettings>()
  #notify: (userId: string) => Promise<void> = async () => {}
  constructor (private readonly directory: DirectoryStore) {}

  /** Cluster: settings changes are announced to the other nodes through this. */
  notifyWith (notify: (userId: string) => Promise<void>): void { this.#notify = notify }

  /** Re-reads one user's settings from the store (a change made on another node). */
  async refresh (userId: string): Promise<void> {
    const s = await this.directory.getSettings(userId)
    if (s) this.#cache.set(userId, s)
    else this.#cache.delete(userId)
  }

  async init (): Promise<void> {
    const rows = await this.directory.allSettings()
    this.#cache.clear()
    for (const { userId, settings } of rows) this.#cache.set(userId, settings)
  }

  of (userId: string): UserSettings { return this.#cache.get(userId) ?? DEFAULT_SETTINGS }

  async update (userId: string, patch: Partial<UserSettings>): Promise<UserSettings> {
    const next = { ...this.of(userId), ...patch }
    await this.directory.putSettings(userId, next)
    this.#cache.set(userId, next)
    await this.#notify(userId)
    return next
  }
}
