// Message history on SQLite. append() is one transaction: dedupe on (sending
// device, client id), take the chat's next seq, insert. The `fanned_out` flag is
// the outbox: a message is durable before its fan-out is, and after a crash the
// server redoes the fan-out of every message still flagged 0.
import type { AppendOptions, AppendResult, HistoryStore, MessageEffect, NewMessage, Reaction, StoredMessage, Watermark } from '../types.js'
import type { SqliteDb } from './database.js'
import { plainRow, plainRows } from '../../lib/sqlite.js'

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
CREATE TABLE IF NOT EXISTS reactions (
  chat_id TEXT NOT NULL, seq INTEGER NOT NULL, user_id TEXT NOT NULL, emoji TEXT NOT NULL,
  PRIMARY KEY (chat_id, seq, user_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
  chat_id TEXT NOT NULL, user_id TEXT NOT NULL, delivered INTEGER NOT NULL, read INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (chat_id, user_id)) WITHOUT ROWID;
`

/** Columns added after the first release, with their definitions: added to older files at open. */
const ADDED_COLUMNS: Array<[string, string]> = [
  ['ref', 'INTEGER'],
  ['forwarded', 'INTEGER NOT NULL DEFAULT 0'],
  ['edited_at', 'INTEGER'],
  ['deleted_at', 'INTEGER'],
  ['media', 'TEXT'],
  ['expires_at', 'INTEGER']
]

interface Row {
  chat_id: string, seq: number, sender_user: string, sender_device: string, client_id: string
  type: string, body: string, client_ts: number | null, server_ts: number
  ref: number | null, forwarded: number, edited_at: number | null, deleted_at: number | null, media: string | null, expires_at: number | null
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
  serverTs: r.server_ts,
  ref: r.ref,
  forwarded: r.forwarded === 1,
  editedAt: r.edited_at,
  deletedAt: r.deleted_at,
  media: r.media,
  ...(r.expires_at !== null ? { expiresAt: r.expires_at } : {})
})

export class SqliteHistory implements HistoryStore {
  #db: SqliteDb
  #st
  #append: (m: NewMessage, effect: MessageEffect | undefined, settled: boolean) => AppendResult
  #advance: (chatId: string, userId: string, delivered: number, read: number, at: number) => Watermark | undefined

  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    const have = new Set((db.prepare('PRAGMA table_info(messages)').all() as Array<{ name: string }>).map((c) => c.name))
    for (const [name, def] of ADDED_COLUMNS) if (!have.has(name)) db.exec(`ALTER TABLE messages ADD COLUMN ${name} ${def}`)
    db.exec('CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL')
    this.#st = {
      byClientId: db.prepare('SELECT * FROM messages WHERE sender_device = ? AND client_id = ?'),
      nextSeq: db.prepare(`INSERT INTO chat_seq (chat_id, last_seq) VALUES (?, 1)
        ON CONFLICT (chat_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`),
      insert: db.prepare(`INSERT INTO messages (chat_id, seq, sender_user, sender_device, client_id, type, body, client_ts, server_ts, ref, forwarded, media, fanned_out, expires_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      // Expired messages are never read, purged or not yet.
      get: db.prepare('SELECT * FROM messages WHERE chat_id = ? AND seq = ? AND (expires_at IS NULL OR expires_at > ?)'),
      edit: db.prepare('UPDATE messages SET body = ?, edited_at = ? WHERE chat_id = ? AND seq = ?'),
      tombstone: db.prepare("UPDATE messages SET body = 'null', deleted_at = ? WHERE chat_id = ? AND seq = ?"),
      scrubEdits: db.prepare("UPDATE messages SET body = 'null' WHERE chat_id = ? AND ref = ? AND type = 'edit'"),
      dropReactions: db.prepare('DELETE FROM reactions WHERE chat_id = ? AND seq = ?'),
      react: db.prepare('INSERT OR REPLACE INTO reactions (chat_id, seq, user_id, emoji) VALUES (?, ?, ?, ?)'),
      unreact: db.prepare('DELETE FROM reactions WHERE chat_id = ? AND seq = ? AND user_id = ?'),
      reactions: db.prepare('SELECT seq, user_id AS userId, emoji FROM reactions WHERE chat_id = ? AND seq BETWEEN ? AND ? ORDER BY seq, user_id'),
      after: db.prepare('SELECT * FROM messages WHERE chat_id = ? AND seq > ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?'),
      expired: db.prepare('SELECT chat_id, seq FROM messages WHERE expires_at <= ?'),
      eraseMessages: db.prepare("UPDATE messages SET body = 'null', media = NULL, deleted_at = coalesce(deleted_at, ?) WHERE chat_id = ? AND sender_user = ?"),
      eraseReactions: db.prepare('DELETE FROM reactions WHERE chat_id = ? AND user_id = ?'),
      eraseReceipt: db.prepare('DELETE FROM receipts WHERE chat_id = ? AND user_id = ?'),
      dropExpired: db.prepare('DELETE FROM messages WHERE expires_at <= ?'),
      lastSeq: db.prepare('SELECT last_seq FROM chat_seq WHERE chat_id = ?'),
      firstSeq: db.prepare('SELECT min(seq) AS s FROM messages WHERE chat_id = ?'),
      purge: db.prepare('DELETE FROM messages WHERE server_ts < ?'),
      pending: db.prepare('SELECT * FROM messages WHERE fanned_out = 0 ORDER BY server_ts, chat_id, seq LIMIT ?'),
      fannedOut: db.prepare('UPDATE messages SET fanned_out = 1 WHERE chat_id = ? AND seq = ?'),
      receipt: db.prepare('SELECT chat_id AS chatId, user_id AS userId, delivered, read, updated_at AS updatedAt FROM receipts WHERE chat_id = ? AND user_id = ?'),
      receipts: db.prepare('SELECT chat_id AS chatId, user_id AS userId, delivered, read, updated_at AS updatedAt FROM receipts WHERE chat_id = ? ORDER BY user_id'),
      putReceipt: db.prepare('INSERT OR REPLACE INTO receipts (chat_id, user_id, delivered, read, updated_at) VALUES (?, ?, ?, ?, ?)'),
      authors: db.prepare('SELECT DISTINCT sender_user FROM messages WHERE chat_id = ? AND seq > ? AND seq <= ?'),
      unread: db.prepare("SELECT count(*) AS n FROM (SELECT 1 FROM messages WHERE chat_id = ? AND seq > ? AND sender_user <> ? AND type IN ('text', 'media', 'reply') AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > ?) LIMIT ?)")
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
    this.#append = db.transaction((m: NewMessage, effect: MessageEffect | undefined, settled: boolean): AppendResult => {
      const existing = this.#st.byClientId.get(m.senderDevice, m.clientId) as Row | undefined
      if (existing) return { message: toMessage(existing), duplicate: true }
      const { last_seq: seq } = this.#st.nextSeq.get(m.chatId) as { last_seq: number }
      this.#st.insert.run(m.chatId, seq, m.senderUser, m.senderDevice, m.clientId, m.type, m.body, m.clientTs, m.serverTs, m.ref ?? null, m.forwarded === true ? 1 : 0, m.media ?? null, settled ? 1 : 0, m.expiresAt ?? null)
      if (effect) this.apply(m.chatId, effect)
      return { message: { ...m, ref: m.ref ?? null, forwarded: m.forwarded === true, media: m.media ?? null, seq, editedAt: null, deletedAt: null }, duplicate: false }
    })
  }

  /** Group commit: resolves once the transaction that holds the message commits, shared with the other writes of this turn. */
  append (m: NewMessage, effect?: MessageEffect, opts: AppendOptions = {}): Promise<AppendResult> {
    return this.#db.grouped(() => this.#append(m, effect, opts.settled === true))
  }

  private apply (chatId: string, e: MessageEffect): void {
    switch (e.kind) {
      case 'edit':
        this.#st.edit.run(e.body, e.at, chatId, e.seq)
        break
      case 'delete':
        this.#st.tombstone.run(e.at, chatId, e.seq)
        this.#st.scrubEdits.run(chatId, e.seq)
        this.#st.dropReactions.run(chatId, e.seq)
        break
      case 'reaction':
        if (e.emoji === null) this.#st.unreact.run(chatId, e.seq, e.userId)
        else this.#st.react.run(chatId, e.seq, e.userId, e.emoji)
        break
    }
  }

  async findByClientId (senderDevice: string, clientId: string): Promise<StoredMessage | undefined> {
    const row = this.#st.byClientId.get(senderDevice, clientId) as Row | undefined
    return row ? toMessage(row) : undefined
  }

  async get (chatId: string, seq: number): Promise<StoredMessage | undefined> {
    const row = this.#st.get.get(chatId, seq, Date.now()) as Row | undefined
    return row ? toMessage(row) : undefined
  }

  async reactions (chatId: string, fromSeq: number, toSeq: number): Promise<Reaction[]> {
    return plainRows<Reaction>(this.#st.reactions.all(chatId, fromSeq, toSeq))
  }

  async after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return (this.#st.after.all(chatId, afterSeq, Date.now(), limit) as Row[]).map(toMessage)
  }

  async lastSeq (chatId: string): Promise<number> {
    return (this.#st.lastSeq.get(chatId) as { last_seq: number } | undefined)?.last_seq ?? 0
  }

  async firstSeq (chatId: string): Promise<number> {
    const row = this.#st.firstSeq.get(chatId) as { s: number | null }
    return row.s ?? (await this.lastSeq(chatId)) + 1
  }

  async purgeBefore (serverTs: number): Promise<number> { return this.#st.purge.run(serverTs).changes }

  async eraseSender (chatId: string, userId: string, at: number): Promise<number> {
    return this.#db.transaction(() => {
      const n = this.#st.eraseMessages.run(at, chatId, userId).changes
      this.#st.eraseReactions.run(chatId, userId)
      this.#st.eraseReceipt.run(chatId, userId)
      return Number(n)
    })()
  }

  async purgeExpired (now: number): Promise<string[]> {
    return this.#db.transaction(() => {
      const rows = this.#st.expired.all(now) as Array<{ chat_id: string, seq: number }>
      for (const r of rows) this.#st.dropReactions.run(r.chat_id, r.seq)
      this.#st.dropExpired.run(now)
      return [...new Set(rows.map((r) => r.chat_id))]
    })()
  }

  async pendingFanout (limit: number): Promise<StoredMessage[]> {
    return (this.#st.pending.all(limit) as Row[]).map(toMessage)
  }

  async markFannedOut (chatId: string, seq: number): Promise<void> { await this.#db.grouped(() => this.#st.fannedOut.run(chatId, seq)) }

  async advanceReceipt (chatId: string, userId: string, delivered: number, read: number, at: number): Promise<Watermark | undefined> {
    return this.#advance(chatId, userId, delivered, read, at)
  }

  async getReceipt (chatId: string, userId: string): Promise<Watermark | undefined> { return plainRow<Watermark>(this.#st.receipt.get(chatId, userId)) }
  async receipts (chatId: string): Promise<Watermark[]> { return plainRows<Watermark>(this.#st.receipts.all(chatId)) }
  async authorsBetween (chatId: string, afterSeq: number, upToSeq: number): Promise<string[]> {
    return (this.#st.authors.all(chatId, afterSeq, upToSeq) as Array<{ sender_user: string }>).map((r) => r.sender_user)
  }

  async countUnread (chatId: string, afterSeq: number, userId: string, cap: number): Promise<number> {
    return (this.#st.unread.get(chatId, afterSeq, userId, Date.now(), cap) as { n: number }).n
  }

  async close (): Promise<void> { /* closed by the owner of the shared database */ }
}
