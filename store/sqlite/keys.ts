// The key directory on SQLite: device identities, fallback keys, one-time prekey pools.
import type { ClaimedPrekey, DeviceIdentity, KeyStore, SignedPrekey } from '../types.js'
import type { SqliteDb } from './database.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS device_keys (device_id TEXT PRIMARY KEY, identity TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS one_time_keys (
  device_id TEXT NOT NULL, key_id TEXT NOT NULL, key TEXT NOT NULL, signature TEXT NOT NULL,
  PRIMARY KEY (device_id, key_id)) WITHOUT ROWID;
`

export class SqliteKeys implements KeyStore {
  #db: SqliteDb
  #st
  constructor (db: SqliteDb) {
    this.#db = db
    db.exec(SCHEMA)
    this.#st = {
      identity: db.prepare('SELECT identity FROM device_keys WHERE device_id = ?'),
      putIdentity: db.prepare('INSERT OR REPLACE INTO device_keys (device_id, identity) VALUES (?, ?)'),
      addKey: db.prepare('INSERT OR IGNORE INTO one_time_keys (device_id, key_id, key, signature) VALUES (?, ?, ?, ?)'),
      count: db.prepare('SELECT count(*) AS n FROM one_time_keys WHERE device_id = ?'),
      takeOne: db.prepare('SELECT key_id AS keyId, key, signature FROM one_time_keys WHERE device_id = ? ORDER BY key_id LIMIT 1'),
      deleteKey: db.prepare('DELETE FROM one_time_keys WHERE device_id = ? AND key_id = ?'),
      dropKeys: db.prepare('DELETE FROM one_time_keys WHERE device_id = ?'),
      dropIdentity: db.prepare('DELETE FROM device_keys WHERE device_id = ?'),
      allIdentities: db.prepare("SELECT device_id AS deviceId, json_extract(identity, '$.identityKey') AS identityKey FROM device_keys")
    }
  }

  async putIdentity (identity: DeviceIdentity): Promise<void> {
    this.#db.transaction(() => {
      const before = this.read(identity.deviceId)
      if (before !== undefined && before.identityKey !== identity.identityKey) this.#st.dropKeys.run(identity.deviceId)
      this.#st.putIdentity.run(identity.deviceId, JSON.stringify(identity))
    })()
  }

  private read (deviceId: string): DeviceIdentity | undefined {
    const row = this.#st.identity.get(deviceId) as { identity: string } | undefined
    return row ? JSON.parse(row.identity) as DeviceIdentity : undefined
  }

  async getIdentity (deviceId: string): Promise<DeviceIdentity | undefined> { return this.read(deviceId) }

  async addOneTimeKeys (deviceId: string, keys: SignedPrekey[]): Promise<number> {
    return this.#db.transaction(() => {
      for (const k of keys) this.#st.addKey.run(deviceId, k.keyId, k.key, k.signature)
      return (this.#st.count.get(deviceId) as { n: number }).n
    })()
  }

  async countOneTimeKeys (deviceId: string): Promise<number> { return (this.#st.count.get(deviceId) as { n: number }).n }

  async claim (deviceId: string): Promise<ClaimedPrekey | undefined> {
    // One process owns the file; the transaction makes the read and the delete one step for it.
    return this.#db.transaction(() => {
      const k = this.#st.takeOne.get(deviceId) as SignedPrekey | undefined
      if (k !== undefined) {
        this.#st.deleteKey.run(deviceId, k.keyId)
        return { prekey: { keyId: k.keyId, key: k.key, signature: k.signature }, fallback: false }
      }
      const fallback = this.read(deviceId)?.fallbackKey ?? null
      return fallback === null ? undefined : { prekey: fallback, fallback: true }
    })()
  }

  async dropDevice (deviceId: string): Promise<void> {
    this.#db.transaction(() => {
      this.#st.dropKeys.run(deviceId)
      this.#st.dropIdentity.run(deviceId)
    })()
  }

  async identityKeys (): Promise<Array<{ deviceId: string, identityKey: string }>> {
    return (this.#st.allIdentities.all() as Array<{ deviceId: string, identityKey: string }>).map((r) => ({ deviceId: r.deviceId, identityKey: r.identityKey }))
  }
}
