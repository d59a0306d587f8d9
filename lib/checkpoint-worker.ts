// The background WAL checkpointer's thread (see SqliteDatabase.checkpointInBackground):
// every `intervalMs` it opens its own connection to the database file, copies
// the WAL into the file with a PASSIVE checkpoint (which never waits for the
// writer and never blocks it), and closes the connection again, so it holds
// no file open between checkpoints. The fsync of the file happens here, not
// on the thread that serves clients.
import { existsSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { SqliteDatabase } from './sqlite.js'

const { path, intervalMs } = workerData as { path: string, intervalMs: number }
const timer = setInterval(() => {
  // Never create the file: it may have been closed and removed since the last tick.
  if (!existsSync(path)) return
  try {
    const db = new SqliteDatabase(path)
    try {
      // Busy means the writer is checkpointing or resetting the WAL itself: try again next time.
      db.pragma('busy_timeout = 0')
      db.exec('PRAGMA wal_checkpoint(PASSIVE)')
    } finally {
      db.close()
    }
  } catch {}
}, intervalMs)
parentPort?.on('message', (m: unknown) => {
  if (m !== 'stop') return
  clearInterval(timer)
  parentPort?.close()
})
