// The background WAL checkpointer's thread (see SqliteDatabase.checkpointInBackground):
// its own connection to one database file, copying the WAL into the file
// every `intervalMs` with a PASSIVE checkpoint, which never waits for the
// writer and never blocks it. The fsync of the file happens here, not on the
// thread that serves clients.
import { parentPort, workerData } from 'node:worker_threads'
import { SqliteDatabase } from './sqlite.js'

const { path, intervalMs } = workerData as { path: string, intervalMs: number }
const db = new SqliteDatabase(path)
// Busy means the writer is checkpointing or resetting the WAL itself: try again next time.
db.pragma('busy_timeout = 0')
const timer = setInterval(() => {
  try { db.exec('PRAGMA wal_checkpoint(PASSIVE)') } catch {}
}, intervalMs)
parentPort?.on('message', (m: unknown) => {
  if (m !== 'stop') return
  clearInterval(timer)
  db.close()
  parentPort?.close()
})
