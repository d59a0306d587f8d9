// The store contract suites against the SQLite adapters, each case on a fresh database file.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { directoryContract } from '../../store/contract/directory.js'
import { historyContract } from '../../store/contract/history.js'
import { mediaContract } from '../../store/contract/media.js'
import { openDatabase } from '../../store/sqlite/database.js'
import { SqliteDirectory } from '../../store/sqlite/directory.js'
import { SqliteHistory } from '../../store/sqlite/history.js'
import { SqliteMedia } from '../../store/sqlite/media.js'

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
