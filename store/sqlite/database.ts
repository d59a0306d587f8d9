// Opens the local profile's SQLite file with the settings every adapter shares.
import Database from 'better-sqlite3'

export type SqliteDb = Database.Database

export function openDatabase (path: string, synchronous: 'normal' | 'full' = 'normal'): SqliteDb {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  return db
}
