// aedes-persistence's own abstract suite (unmodified, from that package)
// against aedes-persistence-redis 12 as mqchat uses it with aedes
// (broker/persistence/redis.ts), on a real Redis server flushed before each case.
import { after, before, test } from 'node:test'
import { createRequire } from 'node:module'
import { Redis } from 'ioredis'
import { redisPersistence } from '../../broker/persistence/redis.js'
import { RedisServer } from '../helpers/services.js'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: object) => void

const server = new RedisServer()
before(async () => { await server.start() })
after(async () => { await server.destroy() })

abstractPersistence({
  test,
  testAsync: true,
  persistence: async () => {
    const conn = new Redis(server.url)
    await conn.flushall()
    return redisPersistence({ conn, maxQueue: 1000 })
  }
})
