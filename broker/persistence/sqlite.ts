// Durable aedes persistence on SQLite (node:sqlite, WAL).
//
// No npm package gives aedes a durable embedded store, so this is ours. It
// implements aedes-persistence 11's async interface and passes that package's
// abstract test suite (test/broker-persistence.test.ts).
//
// Shape: every write goes to SQLite synchronously (node:sqlite is
// synchronous, so a resolved promise means the row is committed). Subscriptions
// and retained messages are also mirrored in memory, because aedes looks them up
// on every publish and every subscribe; they are reloaded from disk at setup.
// Offline queues (outgoing), QoS 2 inbound state (incoming) and wills live only
// on disk: they can be large and are read only on reconnect.
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'
import { SqliteDatabase } from '../../lib/sqlite.js'
import QlobberSub from 'qlobber/aedes/qlobber-sub.js'
import { QlobberTrue } from 'qlobber'
import { encodePacket, decodePacket } from './codec.js'

const require = createRequire(import.meta.url)
const Packet = require('aedes-packet') as new (original: object, broker?: unknown) => AnyPacket

const QLOBBER_OPTIONS = { wildcard_one: '+', wildcard_some: '#', separator: '/' }

type AnyPacket = Record<string, any>
interface ClientRef { id: string }
interface Sub { topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean, subscriptionIdentifier?: number }
interface OfflineSub { clientId: string, topic: string, qos?: number }
interface BrokerRef { id: string }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, packet TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, topic TEXT NOT NULL, record TEXT NOT NULL,
  PRIMARY KEY (client_id, topic)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outgoing (
  id INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL,
  broker_id TEXT, broker_counter INTEGER, message_id INTEGER, packet TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outgoing_by_client ON outgoing (client_id, id);
CREATE INDEX IF NOT EXISTS outgoing_by_message ON outgoing (client_id, message_id);
CREATE TABLE IF NOT EXISTS incoming (
  client_id TEXT NOT NULL, message_id INTEGER NOT NULL, packet TEXT NOT NULL,
  PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills (client_id TEXT PRIMARY KEY, broker_id TEXT, packet TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queue_overflow (client_id TEXT PRIMARY KEY, dropped INTEGER NOT NULL, since INTEGER NOT NULL);
`

export interface SqlitePersistenceOptions {
  /** Path of the database file; ':memory:' for tests that need no durability. */
  path: string
  /** 'normal' survives a process crash; 'full' also survives power loss, at an fsync per commit. */
  synchronous?: 'normal' | 'full'
  /**
   * Largest offline queue per client (0 = unbounded). Past it the oldest
   * entries are dropped and the overflow is recorded (see takeOverflow).
   */
  maxQueue?: number
  /** Called when a client's queue starts overflowing (once per episode, until takeOverflow): for logs. */
  onOverflow?: (clientId: string, dropped: number) => void
  /**
   * Whether a client is connected. Only offline queues are trimmed: aedes
   * delivers to a connected client while it queues, and a row trimmed under it
   * would break that delivery. A connected client's queue drains as it acks.
   */
  isOnline?: (clientId: string) => boolean
  /**
   * Retained messages on the topics `topic` picks are written `ms` after they
   * change, in batches; without it every retained message is written at once.
   * See storeRetained.
   */
  lazyRetained?: { ms: number, topic: (topic: string) => boolean }
}

export class SqlitePersistence {
  #db: SqliteDatabase
  #broker: BrokerRef | undefined
  #subs = new Map<string, Map<string, Omit<Sub, 'topic'>>>()
  #trie = new QlobberSub(QLOBBER_OPTIONS)
  #retained = new Map<string, AnyPacket>()
  #destroyed = false
  #st: ReturnType<SqlitePersistence['prepare']>
  #queued = new Map<string, number>()
  #maxQueue: number
  #onOverflow: (clientId: string, dropped: number) => void
  #isOnline: (clientId: string) => boolean
  #lazyRetained: { ms: number, topic: (topic: string) => boolean } | undefined
  /** Clients with a stored will: aedes asks to delete a will at every connect, and most have none. */
  #willed = new Set<string>()
  #lazy = new Set<string>()
  #lazyTimer: NodeJS.Timeout | undefined

  constructor (opts: SqlitePersistenceOptions) {
    this.#maxQueue = opts.maxQueue ?? 0
    this.#onOverflow = opts.onOverflow ?? (() => {})
    this.#isOnline = opts.isOnline ?? (() => false)
    this.#lazyRetained = opts.lazyRetained
    this.#db = new SqliteDatabase(opts.path)
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
    this.#db.checkpointInBackground(100)
    this.#db.exec(SCHEMA)
    this.#st = this.prepare()
    this.load()
  }

  private prepare () {
    const db = this.#db
    return {
      putRetained: db.prepare('INSERT OR REPLACE INTO retained (topic, packet) VALUES (?, ?)'),
      delRetained: db.prepare('DELETE FROM retained WHERE topic = ?'),
      putSub: db.prepare('INSERT OR REPLACE INTO subscriptions (client_id, topic, record) VALUES (?, ?, ?)'),
      delSub: db.prepare('DELETE FROM subscriptions WHERE client_id = ? AND topic = ?'),
      delSubsOf: db.prepare('DELETE FROM subscriptions WHERE client_id = ?'),
      enqueue: db.prepare('INSERT INTO outgoing (client_id, broker_id, broker_counter, message_id, packet) VALUES (?, ?, ?, ?, ?)'),
      outByCounter: db.prepare('SELECT id FROM outgoing WHERE client_id = ? AND broker_id = ? AND broker_counter = ? ORDER BY id LIMIT 1'),
      outByMessageId: db.prepare('SELECT id, packet FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY id LIMIT 1'),
      setMessageId: db.prepare("UPDATE outgoing SET message_id = ?, packet = json_set(packet, '$.messageId', ?) WHERE id = ?"),
      replaceOut: db.prepare('UPDATE outgoing SET broker_id = ?, broker_counter = ?, message_id = ?, packet = ? WHERE id = ?'),
      delOut: db.prepare('DELETE FROM outgoing WHERE id = ?'),
      outAfter: db.prepare('SELECT id, packet FROM outgoing WHERE client_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT 1'),
      outLast: db.prepare('SELECT max(id) AS id FROM outgoing WHERE client_id = ?'),
      putIncoming: db.prepare('INSERT OR REPLACE INTO incoming (client_id, message_id, packet) VALUES (?, ?, ?)'),
      getIncoming: db.prepare('SELECT packet FROM incoming WHERE client_id = ? AND message_id = ?'),
      delIncoming: db.prepare('DELETE FROM incoming WHERE client_id = ? AND message_id = ?'),
      cleanIncoming: db.prepare('DELETE FROM incoming WHERE client_id = ?'),
      putWill: db.prepare('INSERT OR REPLACE INTO wills (client_id, broker_id, packet) VALUES (?, ?, ?)'),
      getWill: db.prepare('SELECT packet FROM wills WHERE client_id = ?'),
      delWill: db.prepare('DELETE FROM wills WHERE client_id = ?'),
      allWills: db.prepare('SELECT broker_id, packet FROM wills'),
      queueLength: db.prepare('SELECT count(*) AS n FROM outgoing WHERE client_id = ?'),
      dropOldest: db.prepare('DELETE FROM outgoing WHERE id IN (SELECT id FROM outgoing WHERE client_id = ? ORDER BY id LIMIT ?)'),
      noteOverflow: db.prepare(`INSERT INTO queue_overflow (client_id, dropped, since) VALUES (?, ?, ?)
        ON CONFLICT (client_id) DO UPDATE SET dropped = dropped + excluded.dropped RETURNING dropped, since`),
      takeOverflow: db.prepare('DELETE FROM queue_overflow WHERE client_id = ? RETURNING dropped')
    }
  }

  private load (): void {
    for (const row of this.#db.prepare('SELECT client_id, count(*) AS n FROM outgoing GROUP BY client_id').iterate() as Iterable<{ client_id: string, n: number }>) {
      this.#queued.set(row.client_id, row.n)
    }
    for (const row of this.#db.prepare('SELECT topic, packet FROM retained').iterate() as Iterable<{ topic: string, packet: string }>) {
      this.#retained.set(row.topic, decodePacket(row.packet))
    }
    for (const row of this.#db.prepare('SELECT client_id FROM wills').iterate() as Iterable<{ client_id: string }>) this.#willed.add(row.client_id)
    for (const row of this.#db.prepare('SELECT client_id, topic, record FROM subscriptions').iterate() as Iterable<{ client_id: string, topic: string, record: string }>) {
      this.remember(row.client_id, { topic: row.topic, ...JSON.parse(row.record) })
    }
  }

  private remember (clientId: string, sub: Sub): void {
    let stored = this.#subs.get(clientId)
    if (!stored) {
      stored = new Map()
      this.#subs.set(clientId, stored)
    }
    const previous = stored.get(sub.topic)
    const record: Omit<Sub, 'topic'> = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
    if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
    if (sub.qos > 0) {
      this.#trie.add(sub.topic, { clientId, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl })
    } else if (previous !== undefined && previous.qos > 0) {
      this.#trie.remove(sub.topic, { clientId, topic: sub.topic })
    }
    stored.set(sub.topic, record)
  }

  get broker (): BrokerRef | undefined { return this.#broker }

  async setup (broker: BrokerRef): Promise<void> {
    this.#broker = broker
  }

  /**
   * Group-committed with the other writes of the turn. The topics
   * `lazyRetained` picks (the local profile: presence, which every connect and
   * disconnect changes) are held in memory and written at most `ms` later, the
   * changes of that interval in one transaction, and on destroy: a connect
   * then costs no write. A crash loses at most that interval's changes (for
   * presence, start-up treats it as it treats any crash: everyone offline).
   */
  async storeRetained (pkt: AnyPacket): Promise<void> {
    const packet = Object.assign({}, pkt)
    const lazy = this.#lazyRetained
    if (lazy !== undefined && lazy.topic(packet.topic)) {
      if (packet.payload.length === 0) this.#retained.delete(packet.topic)
      else this.#retained.set(packet.topic, packet)
      this.#lazy.add(packet.topic)
      this.#lazyTimer ??= setTimeout(() => this.flushRetained(), lazy.ms).unref()
      return
    }
    if (packet.payload.length === 0) {
      await this.#db.grouped(() => this.#st.delRetained.run(packet.topic))
      this.#retained.delete(packet.topic)
    } else {
      await this.#db.grouped(() => this.#st.putRetained.run(packet.topic, encodePacket(packet)))
      this.#retained.set(packet.topic, packet)
    }
  }

  /**
   * The retained messages a subscription gets. A filter without wildcards
   * (every filter a device may hold: its own topics, one user's presence) is
   * one lookup; only a wildcard filter (open access) is matched against all
   * of them. (Matching every filter against every retained message made
   * each SUBSCRIBE cost one match per user with a presence.)
   */
  createRetainedStreamCombi (patterns: string[]): Readable {
    const found: AnyPacket[] = []
    for (const pattern of patterns) {
      if (!/[+#]/.test(pattern)) {
        const packet = this.#retained.get(pattern)
        if (packet !== undefined) found.push(packet)
        continue
      }
      const matcher = new QlobberTrue(QLOBBER_OPTIONS).add(pattern)
      for (const [topic, packet] of this.#retained) {
        if (matcher.test(topic)) found.push(packet)
      }
    }
    return Readable.from(found)
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  /**
   * A subscription stored already as it is (a device subscribing again at
   * each connect) costs no write; the others are group-committed.
   */
  async addSubscriptions (client: ClientRef, subs: Sub[]): Promise<void> {
    const stored = this.#subs.get(client.id)
    const changed = subs.flatMap((sub) => {
      const record: Omit<Sub, 'topic'> = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
      const text = JSON.stringify(record)
      const before = stored?.get(sub.topic)
      return before !== undefined && JSON.stringify(before) === text ? [] : [{ sub, text }]
    })
    if (changed.length === 0) return
    await this.#db.grouped(() => {
      for (const { sub, text } of changed) this.#st.putSub.run(client.id, sub.topic, text)
    })
    for (const { sub } of changed) this.remember(client.id, sub)
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    const stored = this.#subs.get(client.id)
    this.#db.transaction(() => {
      for (const topic of topics) this.#st.delSub.run(client.id, topic)
    })()
    if (!stored) return
    for (const topic of topics) {
      const previous = stored.get(topic)
      if (previous === undefined) continue
      if (previous.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
      stored.delete(topic)
    }
    if (stored.size === 0) this.#subs.delete(client.id)
  }

  async subscriptionsByClient (client: ClientRef): Promise<Sub[]> {
    const stored = this.#subs.get(client.id)
    if (!stored) return []
    return [...stored].map(([topic, record]) => ({ topic, ...record }))
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.#trie.subscriptionsCount, clientsCount: this.#subs.size }
  }

  async subscriptionsByTopic (topic: string): Promise<Array<Record<string, unknown>>> {
    return this.#trie.match(topic)
  }

  async cleanSubscriptions (client: ClientRef): Promise<void> {
    const stored = this.#subs.get(client.id)
    this.#st.delSubsOf.run(client.id)
    if (!stored) return
    for (const [topic, record] of stored) {
      if (record.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
    }
    this.#subs.delete(client.id)
  }

  async outgoingEnqueue (sub: OfflineSub, packet: AnyPacket): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet)
  }

  async outgoingEnqueueCombi (subs: OfflineSub[], packet: AnyPacket): Promise<void> {
    if (subs.length === 0) return
    const stored = new Packet(packet)
    const text = encodePacket(stored)
    const overflows: Array<[string, number]> = []
    this.#db.transaction(() => {
      for (const sub of subs) {
        this.#st.enqueue.run(sub.clientId, stored.brokerId ?? null, stored.brokerCounter ?? null, null, text)
        const n = (this.#queued.get(sub.clientId) ?? 0) + 1
        if (this.#maxQueue > 0 && n > this.#maxQueue && !this.#isOnline(sub.clientId)) {
          const excess = n - this.#maxQueue
          this.#st.dropOldest.run(sub.clientId, excess)
          this.#queued.set(sub.clientId, this.#maxQueue)
          const total = this.#st.noteOverflow.get(sub.clientId, excess, Date.now()) as { dropped: number }
          if (total.dropped === excess) overflows.push([sub.clientId, excess])
        } else {
          this.#queued.set(sub.clientId, n)
        }
      }
    })()
    for (const [clientId, dropped] of overflows) this.#onOverflow(clientId, dropped)
  }

  /**
   * How many queued entries were dropped for a client since the last call
   * (0 if none), and forgets it: the caller tells the client to sync.
   */
  takeOverflow (clientId: string): number {
    return (this.#st.takeOverflow.get(clientId) as { dropped: number } | undefined)?.dropped ?? 0
  }

  async outgoingUpdate (client: ClientRef, packet: AnyPacket): Promise<void> {
    const byCounter = this.#st.outByCounter.get(client.id, packet.brokerId ?? null, packet.brokerCounter ?? null) as { id: number } | undefined
    if (byCounter) {
      this.#st.setMessageId.run(packet.messageId ?? null, packet.messageId ?? null, byCounter.id)
      return
    }
    // A packet from another broker (or a PUBREL replacing its PUBLISH) that
    // reuses a message id replaces the stored one.
    const byId = this.#st.outByMessageId.get(client.id, packet.messageId ?? null) as { id: number } | undefined
    if (byId) {
      this.#st.replaceOut.run(packet.brokerId ?? null, packet.brokerCounter ?? null, packet.messageId ?? null, encodePacket(packet), byId.id)
      return
    }
    throw new Error('no such packet')
  }

  async outgoingClearMessageId (client: ClientRef, packet: AnyPacket): Promise<AnyPacket | undefined> {
    const row = this.#st.outByMessageId.get(client.id, packet.messageId ?? null) as { id: number, packet: string } | undefined
    if (!row) return undefined
    this.#st.delOut.run(row.id)
    const n = this.#queued.get(client.id) ?? 0
    if (n <= 1) this.#queued.delete(client.id)
    else this.#queued.set(client.id, n - 1)
    return decodePacket(row.packet)
  }

  /**
   * The queue, one row at a time, read when the caller asks for it (not a
   * snapshot): a queued message that a live delivery sent and the client
   * acknowledged while the queue was being sent is gone by the time the
   * stream reaches it, so it is neither sent twice nor updated after its
   * deletion (which aedes treats as a client error). Rows queued after the
   * stream began are left to their live delivery, as with a snapshot. A long
   * queue is never all in memory. (a statement is not iterated while the
   * caller writes, so each row is its own query, by the indexed (client_id, id).)
   */
  /** Whether a client has anything queued (outgoingStream is then not empty). */
  hasQueued (clientId: string): boolean {
    return this.#queued.has(clientId)
  }

  outgoingStream (client: ClientRef): Readable {
    // Most clients have nothing queued (a device's inbox is not kept here in the local profile): no query on their connect.
    if (!this.hasQueued(client.id)) return Readable.from([])
    const next = this.#st.outAfter
    const upTo = (this.#st.outLast.get(client.id) as { id: number | null }).id ?? 0
    function * rows (): Generator<AnyPacket> {
      let last = 0
      for (;;) {
        const row = next.get(client.id, last, upTo) as { id: number, packet: string } | undefined
        if (!row) return
        last = row.id
        yield decodePacket(row.packet)
      }
    }
    return Readable.from(rows(), { highWaterMark: 1 })
  }

  /** Forgets everything about a client: subscriptions, queue, QoS 2 state, will (device revocation). */
  async purgeClient (clientId: string): Promise<void> {
    await this.cleanSubscriptions({ id: clientId })
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM outgoing WHERE client_id = ?').run(clientId)
      this.#st.cleanIncoming.run(clientId)
      this.#st.delWill.run(clientId)
      this.#st.takeOverflow.run(clientId)
    })()
    this.#queued.delete(clientId)
    this.#willed.delete(clientId)
  }

  /** Number of messages queued for one client, counted in the store. */
  queueLength (clientId: string): number {
    return (this.#st.queueLength.get(clientId) as { n: number }).n
  }

  async incomingStorePacket (client: ClientRef, packet: AnyPacket): Promise<void> {
    const stored = new Packet(packet)
    stored.messageId = packet.messageId
    this.#st.putIncoming.run(client.id, packet.messageId, encodePacket(stored))
  }

  async incomingGetPacket (client: ClientRef, packet: AnyPacket): Promise<AnyPacket> {
    const row = this.#st.getIncoming.get(client.id, packet.messageId) as { packet: string } | undefined
    if (!row) throw new Error('no such packet')
    return decodePacket(row.packet)
  }

  async incomingDelPacket (client: ClientRef, packet: AnyPacket): Promise<void> {
    const info = this.#st.delIncoming.run(client.id, packet.messageId)
    if (info.changes === 0) throw new Error('no such packet')
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    this.#st.cleanIncoming.run(client.id)
  }

  async putWill (client: ClientRef, packet: AnyPacket): Promise<void> {
    packet.brokerId = this.#broker?.id
    packet.clientId = client.id
    this.#st.putWill.run(client.id, packet.brokerId ?? null, encodePacket(packet))
    this.#willed.add(client.id)
  }

  async getWill (client: ClientRef): Promise<AnyPacket | undefined> {
    const row = this.#st.getWill.get(client.id) as { packet: string } | undefined
    return row ? decodePacket(row.packet) : undefined
  }

  /** aedes calls this at every connect: without a will there is nothing to write. */
  async delWill (client: ClientRef): Promise<AnyPacket | undefined> {
    if (!this.#willed.has(client.id)) return undefined
    const will = await this.getWill(client)
    if (will !== undefined) await this.#db.grouped(() => this.#st.delWill.run(client.id))
    this.#willed.delete(client.id)
    return will
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    const rows = this.#st.allWills.all() as Array<{ broker_id: string | null, packet: string }>
    return Readable.from(rows.filter((r) => r.broker_id === null || !brokers[r.broker_id]).map((r) => decodePacket(r.packet)))
  }

  getClientList (topic: string): Readable {
    const clients: string[] = []
    for (const [clientId, topics] of this.#subs) if (topics.has(topic)) clients.push(clientId)
    return Readable.from(clients)
  }

  /** Writes the retained messages held by storeRetained, in one transaction. */
  flushRetained (): void {
    if (this.#lazyTimer) { clearTimeout(this.#lazyTimer); this.#lazyTimer = undefined }
    if (this.#lazy.size === 0 || this.#destroyed) return
    const topics = [...this.#lazy]
    this.#lazy.clear()
    this.#db.transaction(() => {
      for (const topic of topics) {
        const packet = this.#retained.get(topic)
        if (packet === undefined) this.#st.delRetained.run(topic)
        else this.#st.putRetained.run(topic, encodePacket(packet))
      }
    })()
  }

  async destroy (): Promise<void> {
    if (this.#destroyed) throw new Error('destroyed called twice!')
    this.flushRetained()
    this.#destroyed = true
    this.#db.close()
  }
}
