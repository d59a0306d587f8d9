// The key directory on MongoDB. Every read and write of one key goes by _id;
// a claim is one findOneAndDelete, so two claims never get the same key.
import type { Collection, Db } from 'mongodb'
import type { ClaimedPrekey, DeviceIdentity, KeyStore, SignedPrekey } from '../types.js'
import { isDuplicateKey } from './database.js'

type IdentityDoc = Omit<DeviceIdentity, 'deviceId'> & { _id: string }
/** _id `<deviceId>\n<keyId>`. */
interface OneTimeKeyDoc { _id: string, deviceId: string, key: string, signature: string }

const keyDocId = (deviceId: string, keyId: string): string => `${deviceId}\n${keyId}`

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
    const taken = await this.#keys.findOneAndDelete({ deviceId })
    if (taken !== null) return { prekey: { keyId: taken._id.slice(deviceId.length + 1), key: taken.key, signature: taken.signature }, fallback: false }
    const fallback = (await this.getIdentity(deviceId))?.fallbackKey ?? null
    return fallback === null ? undefined : { prekey: fallback, fallback: true }
  }

  async dropDevice (deviceId: string): Promise<void> {
    await this.#keys.deleteMany({ deviceId })
    await this.#identities.deleteOne({ _id: deviceId })
  }
}
