// Opens the local profile's SQLite file with the settings every adapter shares.
import { SqliteDatabase } from '../../lib/sqlite.js'

export type SqliteDb = SqliteDatabase

export function openDatabase (path: string, synchronous: 'normal' | 'full' = 'normal'): SqliteDb {
  const db = new SqliteDatabase(path)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  db.checkpointInBackground(100)
  return db
}
