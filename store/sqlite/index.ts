// The local profile's stores: one SQLite file (mqchat.db) for directory and history.
import { join } from 'node:path'
import type { DirectoryStore, HistoryStore, InboxStore, KeyStore, MediaStore, ProfileStore } from '../types.js'
import { openDatabase } from './database.js'
import { SqliteDirectory } from './directory.js'
import { SqliteHistory } from './history.js'
import { SqliteInbox } from './inbox.js'
import { SqliteKeys } from './keys.js'
import { SqliteMedia } from './media.js'
import { SqliteProfiles } from './profiles.js'

export interface Stores { directory: DirectoryStore, history: HistoryStore, media: MediaStore, inbox: InboxStore, keys: KeyStore, profiles: ProfileStore, close (): Promise<void> }

export function openSqliteStores (dataDir: string, synchronous: 'normal' | 'full' = 'normal'): Stores {
  const db = openDatabase(join(dataDir, 'mqchat.db'), synchronous)
  return {
    directory: new SqliteDirectory(db),
    history: new SqliteHistory(db),
    media: new SqliteMedia(db),
    inbox: new SqliteInbox(db),
    keys: new SqliteKeys(db),
    profiles: new SqliteProfiles(db),
    async close () { db.close() }
  }
}
