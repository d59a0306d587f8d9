// Message history on SQLite. append() is one transaction: dedupe on (sending
// device, client id), take the chat's next seq, insert. The `fanned_out` flag is
// the outbox: a message is durable before its fan-out is, and after a crash the
// server redoes the fan-out of every message still flagged 0.
import type { AppendResult, HistoryStore, NewMessage, StoredMessage, Watermark } from '../types.js'
import type { SqliteDb } from './database.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS chat_seq (chat_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  chat_id TEXT NOT NULL, seq INTEGER NOT NULL,
  sender_user TEXT NOT NULL, sender_device TEXT NOT NULL, client_id TEXT NOT NULL,
  type TEXT NOT NULL, body TEXT NOT NULL, client_ts INTEGER, server_ts INTEGER NOT NULL,
  fanned_out INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_client_id ON messages (sender_device, client_id);
CREATE INDEX IF NOT EXISTS messages_pending_fanout ON messages (server_ts) WHERE fanned_out = 0;
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (server_ts);
CREATE TABLE IF NOT EXISTS receipts (
  chat_id TEXT NOT NULL, user_id TEXT NOT NULL, delivered INTEGER NOT NULL, read INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;
`

interface Row {
  chat_id: string, seq: number, sender_user: string, sender_device: string, client_id: string
  type: string, body: string, client_ts: number | null, server_ts: number
}

const toMessage = (r: Row): StoredMessage => ({
  chatId: r.chat_id,
  seq: r.seq,
  senderUser: r.sender_user,
  senderDevice: r.sender_device,
  clientId: r.client_id,
  type: r.type,
  body: r.body,
  clientTs: r.client_ts,
  serverTs: r.server_ts
})

export class SqliteHistory implements HistoryStore {
  #db: SqliteDb
  #st
  #append: (m: NewMessage) => AppendResult
  #advance: (chatId: string, userId: string, delivered: number, read: number, at: number) => Watermark | undefined

  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    this.#st = {
      byClientId: db.prepare('SELECT * FROM messages WHERE sender_device = ? AND client_id = ?'),
      nextSeq: db.prepare(`INSERT INTO chat_seq (chat_id, last_seq) VALUES (?, 1)
        ON CONFLICT (chat_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`),
      insert: db.prepare(`INSERT INTO messages (chat_id, seq, sender_user, sender_device, client_id, type, body, client_ts, server_ts)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      after: db.prepare('SELECT * FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      lastSeq: db.prepare('SELECT last_seq FROM chat_seq WHERE chat_id = ?'),
      firstSeq: db.prepare('SELECT min(seq) AS s FROM messages WHERE chat_id = ?'),
      purge: db.prepare('DELETE FROM messages WHERE server_ts < ?'),
      pending: db.prepare('SELECT * FROM messages WHERE fanned_out = 0 ORDER BY server_ts, chat_id, seq LIMIT ?'),
      fannedOut: db.prepare('UPDATE messages SET fanned_out = 1 WHERE chat_id = ? AND seq = ?'),
      receipt: db.prepare('SELECT chat_id AS chatId, user_id AS userId, delivered, read, updated_at AS updatedAt FROM receipts WHERE chat_id = ? AND user_id = ?'),
      receipts: db.prepare('SELECT chat_id AS chatId, user_id AS userId, delivered, read, updated_at AS updatedAt FROM receipts WHERE chat_id = ? ORDER BY user_id'),
      putReceipt: db.prepare('INSERT OR REPLACE INTO receipts (chat_id, user_id, delivered, read, updated_at) VALUES (?, ?, ?, ?, ?)'),
      authors: db.prepare('SELECT DISTINCT sender_user FROM messages WHERE chat_id = ? AND seq > ? AND seq <= ?')
    }
    this.#advance = db.transaction((chatId: string, userId: string, delivered: number, read: number, at: number): Watermark | undefined => {
      const cur = this.#st.receipt.get(chatId, userId) as Watermark | undefined
      const nextRead = Math.max(cur?.read ?? 0, read)
      const nextDelivered = Math.max(cur?.delivered ?? 0, delivered, nextRead)
      if (cur && nextRead === cur.read && nextDelivered === cur.delivered) return undefined
      if (!cur && nextRead === 0 && nextDelivered === 0) return undefined
      this.#st.putReceipt.run(chatId, userId, nextDelivered, nextRead, at)
      return { chatId, userId, delivered: nextDelivered, read: nextRead, updatedAt: at }
    })
    this.#append = db.transaction((m: NewMessage): AppendResult => {
      const existing = this.#st.byClientId.get(m.senderDevice, m.clientId) as Row | undefined
      if (existing) return { message: toMessage(existing), duplicate: true }
      const { last_seq: seq } = this.#st.nextSeq.get(m.chatId) as { last_seq: number }
      this.#st.insert.run(m.chatId, seq, m.senderUser, m.senderDevice, m.clientId, m.type, m.body, m.clientTs, m.serverTs)
      return { message: { ...m, seq }, duplicate: false }
    })
  }

  async append (m: NewMessage): Promise<AppendResult> { return this.#append(m) }

  async after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return (this.#st.after.all(chatId, afterSeq, limit) as Row[]).map(toMessage)
  }

  async lastSeq (chatId: string): Promise<number> {
    return (this.#st.lastSeq.get(chatId) as { last_seq: number } | undefined)?.last_seq ?? 0
  }

  async firstSeq (chatId: string): Promise<number> {
    const row = this.#st.firstSeq.get(chatId) as { s: number | null }
    return row.s ?? (await this.lastSeq(chatId)) + 1
  }

  async purgeBefore (serverTs: number): Promise<number> { return this.#st.purge.run(serverTs).changes }

  async pendingFanout (limit: number): Promise<StoredMessage[]> {
    return (this.#st.pending.all(limit) as Row[]).map(toMessage)
  }

  async markFannedOut (chatId: string, seq: number): Promise<void> { this.#st.fannedOut.run(chatId, seq) }

  async advanceReceipt (chatId: string, userId: string, delivered: number, read: number, at: number): Promise<Watermark | undefined> {
    return this.#advance(chatId, userId, delivered, read, at)
  }

  async getReceipt (chatId: string, userId: string): Promise<Watermark | undefined> { return this.#st.receipt.get(chatId, userId) as Watermark | undefined }
  async receipts (chatId: string): Promise<Watermark[]> { return this.#st.receipts.all(chatId) as Watermark[] }
  async authorsBetween (chatId: string, afterSeq: number, upToSeq: number): Promise<string[]> {
    return (this.#st.authors.all(chatId, afterSeq, upToSeq) as Array<{ sender_user: string }>).map((r) => r.sender_user)
  }

  async close (): Promise<void> { /* closed by the owner of the shared database */ }
}
