// Media records on SQLite (the bytes live in a BlobStore).
import type { Media, MediaLink, MediaStore } from '../types.js'
import type { SqliteDb } from './database.js'
import { plainRows } from '../../lib/sqlite.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS media (
  id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, content_type TEXT NOT NULL, kind TEXT NOT NULL,
  uploader TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL, upload_expires_at INTEGER);
CREATE INDEX IF NOT EXISTS media_by_hash ON media (sha256, size) WHERE status = 'complete';
CREATE INDEX IF NOT EXISTS media_by_uploader ON media (uploader, created_at);
CREATE TABLE IF NOT EXISTS media_owners (media_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (media_id, user_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_owners_by_user ON media_owners (user_id);
CREATE TABLE IF NOT EXISTS media_chats (
  media_id TEXT NOT NULL, chat_id TEXT NOT NULL, at INTEGER NOT NULL,
  first_seq INTEGER NOT NULL DEFAULT 1, last_seq INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (media_id, chat_id)) WITHOUT ROWID;
`

/** Columns added after the first release: [table, column, definition], added to older files at open. */
const ADDED_COLUMNS: Array<[string, string, string]> = [
  // The last use (upload, send, deduplication): retention counts from it. Null: the creation time.
  ['media', 'used_at', 'INTEGER'],
  // Links made before seqs were kept read as seq 1 (members since a chat's start may read them).
  ['media_chats', 'first_seq', 'INTEGER NOT NULL DEFAULT 1'],
  ['media_chats', 'last_seq', 'INTEGER NOT NULL DEFAULT 1']
]

interface Row { id: string, sha256: string, size: number, content_type: string, kind: Media['kind'], uploader: string, status: Media['status'], created_at: number, upload_expires_at: number | null }
const toMedia = (r: Row): Media => ({
  id: r.id, sha256: r.sha256, size: r.size, contentType: r.content_type, kind: r.kind, uploader: r.uploader,
  status: r.status, createdAt: r.created_at, uploadExpiresAt: r.upload_expires_at
})

export class SqliteMedia implements MediaStore {
  #db: SqliteDb
  #st
  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    for (const [table, column, definition] of ADDED_COLUMNS) {
      const have = (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).some((c) => c.name === column)
      if (!have) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    }
    this.#st = {
      put: db.prepare('INSERT INTO media (id, sha256, size, content_type, kind, uploader, status, created_at, upload_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      get: db.prepare('SELECT * FROM media WHERE id = ?'),
      byHash: db.prepare("SELECT * FROM media WHERE sha256 = ? AND size = ? AND status = 'complete' ORDER BY created_at LIMIT 1"),
      complete: db.prepare("UPDATE media SET status = 'complete', upload_expires_at = NULL WHERE id = ?"),
      del: db.prepare('DELETE FROM media WHERE id = ?'),
      delOwners: db.prepare('DELETE FROM media_owners WHERE media_id = ?'),
      delChats: db.prepare('DELETE FROM media_chats WHERE media_id = ?'),
      addOwner: db.prepare('INSERT OR IGNORE INTO media_owners (media_id, user_id) VALUES (?, ?)'),
      use: db.prepare('UPDATE media SET used_at = max(coalesce(used_at, created_at), ?) WHERE id = ?'),
      isOwner: db.prepare('SELECT 1 FROM media_owners WHERE media_id = ? AND user_id = ?'),
      ownedBy: db.prepare('SELECT media_id FROM media_owners WHERE user_id = ?'),
      disown: db.prepare('DELETE FROM media_owners WHERE user_id = ?'),
      ownerless: db.prepare('SELECT 1 FROM media_owners WHERE media_id = ? LIMIT 1'),
      link: db.prepare(`INSERT INTO media_chats (media_id, chat_id, at, first_seq, last_seq) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (media_id, chat_id) DO UPDATE SET first_seq = min(first_seq, excluded.first_seq), last_seq = max(last_seq, excluded.last_seq)`),
      links: db.prepare('SELECT chat_id AS chatId, first_seq AS firstSeq, last_seq AS lastSeq FROM media_chats WHERE media_id = ? ORDER BY at, chat_id'),
      bytesSince: db.prepare('SELECT coalesce(sum(size), 0) AS n FROM media WHERE uploader = ? AND created_at >= ?'),
      expired: db.prepare(`SELECT * FROM media WHERE coalesce(used_at, created_at) < ?
        OR (created_at < ? AND NOT EXISTS (SELECT 1 FROM media_chats c WHERE c.media_id = media.id))`)
    }
  }

  async put (m: Media): Promise<void> {
    this.#db.transaction(() => {
      this.#st.put.run(m.id, m.sha256, m.size, m.contentType, m.kind, m.uploader, m.status, m.createdAt, m.uploadExpiresAt)
      this.#st.addOwner.run(m.id, m.uploader)
    })()
  }

  async get (id: string): Promise<Media | undefined> {
    const r = this.#st.get.get(id) as Row | undefined
    return r ? toMedia(r) : undefined
  }

  async findComplete (sha256: string, size: number): Promise<Media | undefined> {
    const r = this.#st.byHash.get(sha256, size) as Row | undefined
    return r ? toMedia(r) : undefined
  }

  async markComplete (id: string): Promise<void> { this.#st.complete.run(id) }
  async delete (id: string): Promise<void> {
    this.#db.transaction(() => { this.#st.delOwners.run(id); this.#st.delChats.run(id); this.#st.del.run(id) })()
  }

  async addOwner (id: string, userId: string, at: number): Promise<void> {
    this.#db.transaction(() => { this.#st.addOwner.run(id, userId); this.#st.use.run(at, id) })()
  }

  async disown (userId: string): Promise<string[]> {
    return this.#db.transaction(() => {
      const ids = (this.#st.ownedBy.all(userId) as Array<{ media_id: string }>).map((r) => r.media_id)
      this.#st.disown.run(userId)
      return ids.filter((id) => this.#st.ownerless.get(id) === undefined)
    })()
  }

  async isOwner (id: string, userId: string): Promise<boolean> { return this.#st.isOwner.get(id, userId) !== undefined }
  async linkChat (id: string, chatId: string, seq: number, at: number): Promise<void> {
    this.#db.transaction(() => { this.#st.link.run(id, chatId, at, seq, seq); this.#st.use.run(at, id) })()
  }

  async linksOf (id: string): Promise<MediaLink[]> { return plainRows<MediaLink>(this.#st.links.all(id)) }
  async bytesUploadedSince (userId: string, since: number): Promise<number> { return (this.#st.bytesSince.get(userId, since) as { n: number }).n }
  async expired (retainedSince: number, referencedSince: number): Promise<Media[]> {
    return (this.#st.expired.all(retainedSince, referencedSince) as Row[]).map(toMedia)
  }
}
