// The cluster profile's MQTT session store: aedes-persistence-redis 12, used
// through its async class (aedes 1.x and 2.x call an async persistence directly).
//
// aedes (1.2, and 2.0.0-beta.1) declares a peer range of aedes-persistence-redis ^11; package.json
// overrides it to 12 (the release that stores QoS 2 packets per client hash).
// One incompatibility is bridged here: aedes' SUBSCRIBE handler pipes
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
//
// A device's queue is bounded (MQCHAT_MAX_QUEUE), as the local profile's event
// log is: the package keeps a list of packet keys per client and reads at most
// `maxSessionDelivery` of them per CONNECT, leaving the rest for later, so an
// away device's queue grew without limit. Here the enqueue is the package's
// own (the same keys and encoding) but it learns each list's length from its
// RPUSH, so a queue within the bound costs no extra command. Past the bound
// one script, on the list alone, removes the oldest entries and keeps a
// `sync` marker at the head; the caller then releases the removed packets
// (their per-packet recipient counts, as an acknowledgement would) and adds
// their number to the device's dropped count. The marker is delivered first
// on the next CONNECT as the `sync` event (`queue_overflow`, with the count
// read then), and its acknowledgement takes that many off the count.
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Cluster, type Redis } from 'ioredis'
import type { BrokerPersistence } from '../index.js'

const require = createRequire(import.meta.url)
interface QueuedPacket { cmd?: string, brokerId: string, brokerCounter: number | string, topic: string, payload: Buffer, qos: number, messageId?: number }
const AsyncRedisPersistence = require('aedes-persistence-redis/asyncPersistence.js') as new (opts: object) => BrokerPersistence & {
  createRetainedStreamCombi (patterns: string[]): AsyncIterable<unknown>
  outgoingStream (client: { id: string }): AsyncIterable<QueuedPacket>
  outgoingClearMessageId (client: { id: string }, packet: { messageId: number }): Promise<QueuedPacket | undefined>
}
// The package's own encoding of a stored packet, from its own dependencies.
const packageRequire = createRequire(require.resolve('aedes-persistence-redis/asyncPersistence.js'))
const msgpack = packageRequire('msgpack-lite') as { encode (v: unknown): Buffer }
const { Packet } = packageRequire('aedes-persistence') as { Packet: new (p: object) => object }

export interface RedisPersistenceOptions {
  /** An ioredis connection (single server, Sentinel or Cluster). */
  conn: unknown
  /** A device's queue holds at most this many packets; past it the oldest go, counted by a `sync` event. */
  maxQueue: number
}

/** The package's key names (aedes-persistence-redis 12). */
const outgoingKey = (clientId: string): string => `outgoing:${encodeURIComponent(clientId)}`
const packetKey = (brokerId: string, counter: number | string): string => `packet:${brokerId}:${counter}`
const countKey = (pktKey: string): string => `${pktKey}:offlineCount`
/** The `sync` marker's packet: one per device, under a broker id no aedes node has. */
const SYNC_BROKER = 'mqchat-sync'
const droppedKey = (clientId: string): string => `mqchat:dropped:{${clientId}}`

/** On the list alone: the entries past the bound (ARGV[1] packets besides the marker ARGV[2]) are removed, the marker put first; returns the removed. */
const TRIM = `
local len = redis.call('LLEN', KEYS[1])
local from = 0
if redis.call('LINDEX', KEYS[1], 0) == ARGV[2] then from = 1 end
local excess = len - from - tonumber(ARGV[1])
if excess <= 0 then return {} end
local dropped = redis.call('LRANGE', KEYS[1], from, from + excess - 1)
redis.call('LTRIM', KEYS[1], from + excess, -1)
redis.call('LPUSH', KEYS[1], ARGV[2])
return dropped`

/** The count a `sync` event told (0 for the placeholder a concurrent overflow may have written over it meanwhile). */
function droppedIn (payload: Buffer | Uint8Array | undefined): number {
  try {
    const n = (JSON.parse(Buffer.from(payload ?? []).toString()) as { dropped?: unknown }).dropped
    return typeof n === 'number' && n > 0 ? n : 0
  } catch {
    return 0
  }
}

export function redisPersistence (opts: RedisPersistenceOptions): BrokerPersistence {
  const conn = opts.conn instanceof Cluster ? slotSafe(opts.conn) : opts.conn
  const db = conn as Redis
  // The whole bounded queue, its marker included, goes out on one CONNECT.
  const p = new AsyncRedisPersistence({ conn, maxSessionDelivery: opts.maxQueue + 1 })
  const combi = p.createRetainedStreamCombi.bind(p)
  const outgoing = p.outgoingStream.bind(p)
  const clear = p.outgoingClearMessageId.bind(p)
  const streamOf = (patterns: string[]): Readable => Readable.from(combi(patterns))

  async function trim (clientId: string): Promise<void> {
    const marker = packetKey(SYNC_BROKER, clientId)
    // The marker's packet exists before the marker is in the list: a replay never meets a marker without one.
    const placeholder = { cmd: 'publish', brokerId: SYNC_BROKER, brokerCounter: clientId, topic: `dev/${clientId}/inbox`, payload: Buffer.alloc(0), qos: 1 }
    await db.mset(marker, msgpack.encode(new Packet(placeholder)), countKey(marker), 1)
    const dropped = await db.eval(TRIM, 1, outgoingKey(clientId), String(opts.maxQueue), marker) as string[]
    if (dropped.length === 0) return
    // Each removed entry was this device's share of its packet, as an acknowledgement would release it.
    for (const key of dropped) {
      if (await db.decr(countKey(key)) <= 0) await db.del(key, countKey(key))
    }
    await db.incrby(droppedKey(clientId), dropped.length)
  }

  /** The package's enqueue, but knowing each list's length (RPUSH's reply) to keep it within the bound. */
  async function outgoingEnqueueCombi (subs: Array<{ clientId: string }> | undefined, packet: QueuedPacket): Promise<void> {
    if (!subs || subs.length === 0) return
    const pktKey = packetKey(packet.brokerId, packet.brokerCounter)
    await db.mset(pktKey, msgpack.encode(new Packet(packet)), countKey(pktKey), subs.length)
    for (const sub of subs) {
      const length = await db.rpush(outgoingKey(sub.clientId), pktKey)
      if (length > opts.maxQueue + 1) await trim(sub.clientId)
    }
  }

  /** The replay, with the marker turned into the `sync` event (the count as of now). */
  async function * replay (clientId: string): AsyncIterable<QueuedPacket> {
    for await (const packet of outgoing({ id: clientId })) {
      if (packet.brokerId === SYNC_BROKER) {
        const dropped = Number(await db.get(droppedKey(clientId)) ?? 0)
        packet.payload = Buffer.from(JSON.stringify({ type: 'sync', reason: 'queue_overflow', dropped, ts: Date.now() }))
      }
      yield packet
    }
  }

  Object.assign(p, {
    createRetainedStreamCombi: streamOf,
    createRetainedStream: (pattern: string) => streamOf([pattern]),
    outgoingEnqueueCombi,
    outgoingEnqueue: async (sub: { clientId: string }, packet: QueuedPacket) => { await outgoingEnqueueCombi([sub], packet) },
    outgoingStream: (client: { id: string }) => Readable.from(replay(client.id)),
    outgoingClearMessageId: async (client: { id: string }, packet: { messageId: number }) => {
      const orig = await clear(client, packet) as QueuedPacket | undefined
      // The `sync` event acknowledged: what it counted is told; drops since then stay counted.
      if (orig?.brokerId === SYNC_BROKER) {
        const told = droppedIn(orig.payload)
        if (told > 0) await db.decrby(droppedKey(client.id), told)
      }
      return orig
    }
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
