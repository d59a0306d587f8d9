// The key directory on MongoDB. A one-time key is taken by deleting it by
// _id, so two claims never get the same key.
import type { Collection, Db } from 'mongodb'
import type { ClaimedPrekey, DeviceIdentity, KeyStore, SignedPrekey } from '../types.js'
import { isDuplicateKey } from './database.js'
import { randomInt } from 'node:crypto'

type IdentityDoc = Omit<DeviceIdentity, 'deviceId'> & { _id: string }
/** _id `<deviceId>\n<keyId>`. */
interface OneTimeKeyDoc { _id: string, deviceId: string, key: string, signature: string }

const keyDocId = (deviceId: string, keyId: string): string => `${deviceId}\n${keyId}`
/** One-time keys a claim reads at once, to try to take one of. */
const CANDIDATES = 8

export class MongoKeys implements KeyStore {
  #identities: Collection<IdentityDoc>
  #keys: Collection<OneTimeKeyDoc>

  constructor (db: Db) {
    this.#identities = db.collection('device_keys')
    this.#keys = db.collection('one_time_keys')
  }

  async init (): Promise<void> {
    await this.#keys.createIndex({ deviceId: 1 }, { name: 'one_time_keys_by_device' })
  }

  async putIdentity (identity: DeviceIdentity): Promise<void> {
    const { deviceId, ...rest } = identity
    const before = await this.#identities.findOne({ _id: deviceId })
    if (before !== null && before.identityKey !== identity.identityKey) await this.#keys.deleteMany({ deviceId })
    await this.#identities.replaceOne({ _id: deviceId }, rest, { upsert: true })
  }

  async getIdentity (deviceId: string): Promise<DeviceIdentity | undefined> {
    const d = await this.#identities.findOne({ _id: deviceId })
    if (d === null) return undefined
    const { _id, ...rest } = d
    return { deviceId: _id, ...rest }
  }

  async addOneTimeKeys (deviceId: string, keys: SignedPrekey[]): Promise<number> {
    if (keys.length > 0) {
      try {
        await this.#keys.insertMany(keys.map((k) => ({ _id: keyDocId(deviceId, k.keyId), deviceId, key: k.key, signature: k.signature })), { ordered: false })
      } catch (err) {
        // A key id already in the pool is kept as it was; the others are in.
        if (!isDuplicateKey(err) && !(err as { writeErrors?: unknown[] }).writeErrors) throw err
      }
    }
    return await this.countOneTimeKeys(deviceId)
  }

  async countOneTimeKeys (deviceId: string): Promise<number> { return await this.#keys.countDocuments({ deviceId }) }

  async claim (deviceId: string): Promise<ClaimedPrekey | undefined> {
    // Taken by a delete by _id that reports one document deleted: of racing claims exactly one sees that.
    // (findOneAndDelete would do on MongoDB, but FerretDB hands one document to several racing calls:
    // the contract's racing case caught it.) Racers start at different candidates, and read again if all are gone.
    for (let round = 0; round < 20; round++) {
      const candidates = await this.#keys.find({ deviceId }).limit(CANDIDATES).toArray()
      if (candidates.length === 0) break
      const start = randomInt(candidates.length)
      for (let i = 0; i < candidates.length; i++) {
        const c = candidates[(start + i) % candidates.length]!
        if ((await this.#keys.deleteOne({ _id: c._id })).deletedCount === 1) {
          return { prekey: { keyId: c._id.slice(deviceId.length + 1), key: c.key, signature: c.signature }, fallback: false }
        }
      }
    }
    const fallback = (await this.getIdentity(deviceId))?.fallbackKey ?? null
    return fallback === null ? undefined : { prekey: fallback, fallback: true }
  }

  async dropDevice (deviceId: string): Promise<void> {
    await this.#keys.deleteMany({ deviceId })
    await this.#identities.deleteOne({ _id: deviceId })
  }

  async identityKeys (): Promise<Array<{ deviceId: string, identityKey: string }>> {
    return (await this.#identities.find({}, { projection: { _id: 1, identityKey: 1 } }).toArray()).map((d) => ({ deviceId: d._id, identityKey: d.identityKey }))
  }
}
