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
//
// On Redis Cluster the package writes a queued packet and its count with one
// MSET, and deletes them with one DEL of two keys, unless it was built with
// its own `cluster` option, which would make it open a connection of its own
// (without our credentials and retry settings). Those commands cross hash
// slots (CROSSSLOT), so on a Cluster connection they are split here, one key
// per command; the rest of its Cluster support (retained messages as one key
// each) is not needed: they stay in one hash.
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Cluster } from 'ioredis'
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
  const conn = opts.conn instanceof Cluster ? slotSafe(opts.conn) : opts.conn
  const p = new AsyncRedisPersistence({ conn, maxSessionDelivery: opts.maxSessionDelivery })
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

/** A Redis Cluster connection on which MSET and a DEL of several keys go out one key per command. */
function slotSafe (conn: Cluster): Cluster {
  const split: Record<string, (...args: unknown[]) => Promise<unknown>> = {
    mset: async (...args) => {
      for (let i = 0; i + 1 < args.length; i += 2) await conn.set(args[i] as string, args[i + 1] as string)
      return 'OK'
    },
    del: async (...args) => {
      let n = 0
      for (const key of args.flat()) n += await conn.del(key as string)
      return n
    }
  }
  return new Proxy(conn, {
    get (target, prop, receiver) {
      if (typeof prop === 'string' && prop in split) return split[prop]
      const v: unknown = Reflect.get(target, prop, receiver)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    }
  })
}
