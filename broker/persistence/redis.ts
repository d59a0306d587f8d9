// The cluster profile's MQTT session store: aedes-persistence-redis 12, used
// through its async class (aedes 1.x calls an async persistence directly).
//
// aedes 1.2 declares a peer range of aedes-persistence-redis ^11; package.json
// overrides it to 12 (the release that stores QoS 2 packets per client hash).
// One incompatibility is bridged here: aedes 1.2's SUBSCRIBE handler pipes
// createRetainedStreamCombi() with .pipe(), while v12 returns async
// generators; the retained and outgoing streams are wrapped in Readables. test/broker/persistence-redis.test.ts
// runs aedes-persistence's abstract suite on this class against a real Redis,
// and the cluster tests run aedes on it.
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { BrokerPersistence } from '../index.js'

const require = createRequire(import.meta.url)
const AsyncRedisPersistence = require('aedes-persistence-redis/asyncPersistence.js') as new (opts: object) => BrokerPersistence & {
  createRetainedStreamCombi (patterns: string[]): AsyncIterable<unknown>
  outgoingStream (client: { id: string }): AsyncIterable<unknown>
}

export interface RedisPersistenceOptions {
  /** An ioredis connection (single server, Sentinel or Cluster). */
  conn: unknown
  /** Queued messages delivered at most on one CONNECT (the rest on the next). */
  maxSessionDelivery: number
}

export function redisPersistence (opts: RedisPersistenceOptions): BrokerPersistence {
  const p = new AsyncRedisPersistence({ conn: opts.conn, maxSessionDelivery: opts.maxSessionDelivery })
  const combi = p.createRetainedStreamCombi.bind(p)
  const outgoing = p.outgoingStream.bind(p)
  const streamOf = (patterns: string[]): Readable => Readable.from(combi(patterns))
  Object.assign(p, {
    createRetainedStreamCombi: streamOf,
    createRetainedStream: (pattern: string) => streamOf([pattern]),
    outgoingStream: (client: { id: string }) => Readable.from(outgoing(client))
  })
  return p
}
