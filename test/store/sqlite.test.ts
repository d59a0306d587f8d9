// The store contract suites against the SQLite adapters, each case on a fresh database file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { directoryContract } from '../../store/contract/directory.js'
import { historyContract } from '../../store/contract/history.js'
import { mediaContract } from '../../store/contract/media.js'
import { keysContract } from '../../store/contract/keys.js'
import { profilesContract } from '../../store/contract/profiles.js'
import { openDatabase } from '../../store/sqlite/database.js'
import { SqliteDirectory } from '../../store/sqlite/directory.js'
import { SqliteHistory } from '../../store/sqlite/history.js'
import { SqliteMedia } from '../../store/sqlite/media.js'
import { SqliteKeys } from '../../store/sqlite/keys.js'
import { SqliteProfiles } from '../../store/sqlite/profiles.js'

function opener<S> (make: (db: ReturnType<typeof openDatabase>) => S) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqchat-store-'))
    const db = openDatabase(join(dir, 'mqchat.db'))
    return { store: make(db), async close () { db.close(); rmSync(dir, { recursive: true, force: true }) } }
  }
}

directoryContract('sqlite', opener((db) => new SqliteDirectory(db)))
historyContract('sqlite', opener((db) => new SqliteHistory(db)))
mediaContract('sqlite', opener((db) => new SqliteMedia(db)))
keysContract('sqlite', opener((db) => new SqliteKeys(db)))
profilesContract('sqlite', opener((db) => new SqliteProfiles(db)))

test('a database file from before membership periods, engagement and media seqs opens with its members reading everything (engaged) and its media readable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-store-'))
  try {
    const file = join(dir, 'mqchat.db')
    // The tables as the previous release made them.
    const old = openDatabase(file)
    old.exec(`
      CREATE TABLE chats (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE members (chat_id TEXT NOT NULL REFERENCES chats(id), user_id TEXT NOT NULL, role TEXT NOT NULL, joined_at INTEGER NOT NULL, PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;
      CREATE TABLE media (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, content_type TEXT NOT NULL, kind TEXT NOT NULL,
        uploader TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL, upload_expires_at INTEGER);
      CREATE TABLE media_chats (media_id TEXT NOT NULL, chat_id TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (media_id, chat_id)) WITHOUT ROWID;
      INSERT INTO chats VALUES ('g_1', 'group', 'G', 'u_1', 1);
      INSERT INTO members VALUES ('g_1', 'u_1', 'admin', 1);
      INSERT INTO media VALUES ('m_1', 'aa', 1, 'image/png', 'image', 'u_1', 'complete', 10, NULL);
      INSERT INTO media_chats VALUES ('m_1', 'g_1', 11);
    `)
    old.close()
    const db = openDatabase(file)
    try {
      const directory = new SqliteDirectory(db)
      const media = new SqliteMedia(db)
      assert.deepEqual(await directory.allMemberships(), [{ chatId: 'g_1', userId: 'u_1', fromSeq: 0, engaged: true }])
      assert.deepEqual(await directory.periods('g_1', 'u_1'), [{ fromSeq: 0, toSeq: null, joinedAt: 1, leftAt: null }])
      assert.deepEqual(await media.linksOf('m_1'), [{ chatId: 'g_1', firstSeq: 1, lastSeq: 1 }])
      // Retention still counts from creation until the media is used again.
      assert.deepEqual((await media.expired(11, 0)).map((m) => m.id), ['m_1'])
      await media.linkChat('m_1', 'g_1', 7, 50)
      assert.deepEqual(await media.linksOf('m_1'), [{ chatId: 'g_1', firstSeq: 1, lastSeq: 7 }])
      assert.deepEqual(await media.expired(11, 0), [])
    } finally { db.close() }
  } finally { rmSync(dir, { recursive: true, force: true }) }
})
