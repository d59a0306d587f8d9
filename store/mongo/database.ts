// The cluster profile's stores on MongoDB (or a server speaking its wire
// protocol, such as FerretDB): one database, one collection per record kind.
//
// The adapters use only what FerretDB 1.x also implements: single-document
// writes, unordered insertMany (each document stands alone) and ordered
// insertMany (stored as a prefix: history.ts' runs), unique
// and compound indexes, find with sort/limit, $set/$max/
// $addToSet/$pull/$inc updates, distinct. They use no multi-document transaction
// (FerretDB 1.x has none): every write that must be atomic is one document,
// and multi-step writes are ordered so that a crash between steps is repaired
// by repeating the operation (see history.ts).
import { MongoClient, MongoServerError, type Db } from 'mongodb'
import type { DirectoryStore, HistoryStore, KeyStore, MediaStore, ProfileStore } from '../types.js'
import { MongoDirectory } from './directory.js'
import { MongoHistory } from './history.js'
import { MongoMedia } from './media.js'
import { MongoKeys } from './keys.js'
import { MongoProfiles } from './profiles.js'

export interface MongoStores {
  directory: DirectoryStore
  history: HistoryStore
  media: MediaStore
  keys: KeyStore
  profiles: ProfileStore
  /** Commands sent to MongoDB since the stores were opened, by command name (the driver's command monitoring). */
  commands (): Record<string, number>
  /** The database's size (dbStats): documents, data and storage bytes (for operators). */
  sizes (): Promise<Record<string, number>>
  close (): Promise<void>
}

export interface MongoOptions {
  url: string
  /** The database name; defaults to the one in the URL, else "mqchat". */
  database?: string
}

export const isDuplicateKey = (err: unknown): boolean => err instanceof MongoServerError && err.code === 11000

export async function openMongoStores (opts: MongoOptions): Promise<MongoStores> {
  const client = new MongoClient(opts.url, { serverSelectionTimeoutMS: 10_000, retryWrites: false, monitorCommands: true })
  // Counted for the round trips per message the bench reports (SIGUSR2 logs them; clients/cli/serve.ts).
  const commands: Record<string, number> = {}
  client.on('commandStarted', (e) => { commands[e.commandName] = (commands[e.commandName] ?? 0) + 1 })
  await client.connect()
  const db = client.db(opts.database)
  const directory = new MongoDirectory(db)
  const history = new MongoHistory(db)
  const media = new MongoMedia(db)
  const keys = new MongoKeys(db)
  const profiles = new MongoProfiles(db)
  await Promise.all([directory.init(), history.init(), media.init(), keys.init(), profiles.init()])
  const sizes = async (): Promise<Record<string, number>> => {
    const st = await db.stats()
    return { mongo_documents: Number(st.objects ?? 0), mongo_data_bytes: Number(st.dataSize ?? 0), mongo_storage_bytes: Number(st.storageSize ?? 0) }
  }
  return { directory, history, media, keys, profiles, sizes, commands: () => ({ ...commands }), close: async () => { await history.close(); await client.close() } }
}
