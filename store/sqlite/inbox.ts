// Device inboxes on SQLite: positions per (device, chat) and each device's
// event log (store/types.ts InboxStore). Synchronous, like every node:sqlite
// call: the delivery loop (broker/inbox.ts) reads and writes in the same turn.
import type { InboxEvent, InboxStore, Position } from '../types.js'
import type { SqliteDb } from './database.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS inbox_positions (
  device_id TEXT NOT NULL, chat_id TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (device_id, chat_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox_events (
  device_id TEXT NOT NULL, n INTEGER NOT NULL, payload TEXT NOT NULL,
  PRIMARY KEY (device_id, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox_event_counter (device_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
`

export class SqliteInbox implements InboxStore {
  #st
  #save: (rows: Position[]) => void
  #append: (deviceId: string, payload: string) => number
  #drop: (deviceId: string) => void

  constructor (db: SqliteDb) {
    db.exec(SCHEMA)
    this.#st = {
      positions: db.prepare('SELECT chat_id, seq FROM inbox_positions WHERE device_id = ?'),
      save: db.prepare(`INSERT INTO inbox_positions (device_id, chat_id, seq) VALUES (?, ?, ?)
        ON CONFLICT (device_id, chat_id) DO UPDATE SET seq = max(seq, excluded.seq)`),
      nextN: db.prepare(`INSERT INTO inbox_event_counter (device_id, n) VALUES (?, 1)
        ON CONFLICT (device_id) DO UPDATE SET n = n + 1 RETURNING n`),
      putEvent: db.prepare('INSERT INTO inbox_events (device_id, n, payload) VALUES (?, ?, ?)'),
      events: db.prepare('SELECT n, payload FROM inbox_events WHERE device_id = ? AND n > ? ORDER BY n LIMIT ?'),
      ackEvents: db.prepare('DELETE FROM inbox_events WHERE device_id = ? AND n <= ?'),
      trim: db.prepare(`DELETE FROM inbox_events WHERE device_id = ? AND n IN
        (SELECT n FROM inbox_events WHERE device_id = ? AND n > 0 ORDER BY n DESC LIMIT -1 OFFSET ?)`),
      putFirst: db.prepare('INSERT OR REPLACE INTO inbox_events (device_id, n, payload) VALUES (?, 0, ?)'),
      counts: db.prepare('SELECT device_id, count(*) AS c FROM inbox_events GROUP BY device_id'),
      lastSeqs: db.prepare('SELECT chat_id, last_seq FROM chat_seq'),
      dropPositions: db.prepare('DELETE FROM inbox_positions WHERE device_id = ?'),
      dropEvents: db.prepare('DELETE FROM inbox_events WHERE device_id = ?'),
      dropCounter: db.prepare('DELETE FROM inbox_event_counter WHERE device_id = ?')
    }
    this.#save = db.transaction((rows: Position[]) => {
      for (const r of rows) this.#st.save.run(r.deviceId, r.chatId, r.seq)
    })
    this.#append = db.transaction((deviceId: string, payload: string): number => {
      const { n } = this.#st.nextN.get(deviceId) as { n: number }
      this.#st.putEvent.run(deviceId, n, payload)
      return n
    })
    this.#drop = db.transaction((deviceId: string) => {
      this.#st.dropPositions.run(deviceId)
      this.#st.dropEvents.run(deviceId)
      this.#st.dropCounter.run(deviceId)
    })
  }

  positions (deviceId: string): Map<string, number> {
    const out = new Map<string, number>()
    for (const r of this.#st.positions.all(deviceId) as Array<{ chat_id: string, seq: number }>) out.set(r.chat_id, r.seq)
    return out
  }

  savePositions (rows: Position[]): void {
    if (rows.length > 0) this.#save(rows)
  }

  appendEvent (deviceId: string, payload: string): number { return this.#append(deviceId, payload) }

  events (deviceId: string, afterN: number, limit: number): InboxEvent[] {
    return (this.#st.events.all(deviceId, afterN, limit) as InboxEvent[]).map((r) => ({ n: r.n, payload: r.payload }))
  }

  ackEvents (deviceId: string, upToN: number): void { this.#st.ackEvents.run(deviceId, upToN) }

  trimEvents (deviceId: string, keep: number): number { return this.#st.trim.run(deviceId, deviceId, keep).changes }

  putFirstEvent (deviceId: string, payload: string): void { this.#st.putFirst.run(deviceId, payload) }

  eventCounts (): Map<string, number> {
    return new Map((this.#st.counts.all() as Array<{ device_id: string, c: number }>).map((r) => [r.device_id, r.c]))
  }

  lastSeqs (): Map<string, number> {
    return new Map((this.#st.lastSeqs.all() as Array<{ chat_id: string, last_seq: number }>).map((r) => [r.chat_id, r.last_seq]))
  }

  dropDevice (deviceId: string): void { this.#drop(deviceId) }
}
