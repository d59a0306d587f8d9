// The store contract suites against the MongoDB adapters, on a real FerretDB
// server (the MongoDB wire protocol; SQLite backend). Each case gets a fresh
// database on the one server.
import { after, before } from 'node:test'
import { MongoClient } from 'mongodb'
import { directoryContract } from '../../store/contract/directory.js'
import { historyContract } from '../../store/contract/history.js'
import { mediaContract } from '../../store/contract/media.js'
import { openMongoStores, type MongoStores } from '../../store/mongo/database.js'
import { FerretDb } from '../helpers/services.js'

const ferret = new FerretDb()
before(async () => { await ferret.start() })
after(async () => { await ferret.destroy() })

let n = 0
function opener<S> (pick: (s: MongoStores) => S) {
  return async () => {
    const database = `contract_${process.pid}_${++n}`
    const stores = await openMongoStores({ url: ferret.url(database), retentionDays: 30 })
    return {
      store: pick(stores),
      async close () {
        await stores.close()
        const client = await MongoClient.connect(ferret.url(database))
        try { await client.db(database).dropDatabase() } finally { await client.close() }
      }
    }
  }
}

directoryContract('mongodb (FerretDB)', opener((s) => s.directory))
historyContract('mongodb (FerretDB)', opener((s) => s.history))
mediaContract('mongodb (FerretDB)', opener((s) => s.media))
