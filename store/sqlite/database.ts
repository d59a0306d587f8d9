// Opens the local profile's SQLite file with the settings every adapter shares.
import { SqliteDatabase } from '../../lib/sqlite.js'

export type SqliteDb = SqliteDatabase

export function openDatabase (path: string, synchronous: 'normal' | 'full' = 'normal'): SqliteDb {
  const db = new SqliteDatabase(path)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  // Deleted content is overwritten, not left in free pages: an erased account or an expired message is gone from the file.
  db.pragma('secure_delete = ON')
  db.checkpointInBackground(100)
  return db
}
