// The local profile's stores: one SQLite file (mqchat.db) for directory and history.
import { join } from 'node:path'
import type { DirectoryStore, HistoryStore } from '../types.js'
import { openDatabase } from './database.js'
import { SqliteDirectory } from './directory.js'
import { SqliteHistory } from './history.js'

export interface Stores { directory: DirectoryStore, history: HistoryStore, close (): Promise<void> }

export function openSqliteStores (dataDir: string, synchronous: 'normal' | 'full' = 'normal'): Stores {
  const db = openDatabase(join(dataDir, 'mqchat.db'), synchronous)
  return {
    directory: new SqliteDirectory(db),
    history: new SqliteHistory(db),
    async close () { db.close() }
  }
}
