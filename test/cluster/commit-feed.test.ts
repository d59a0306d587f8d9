// The feed of committed messages on a real Redis: one call per partition and
// turn raises the chats' last seqs, keeps each chat's recent cache a gapless
// run ending at its newest message, and announces the messages.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { CommitFeed, COMMITTED_CHANNEL, lastKey, recentKey } from '../../cluster/commit-feed.js'
import { partitionOf } from '../../cluster/chat-stream.js'
import type { StoredMessage } from '../../store/types.js'
import { RedisServer } from '../helpers/services.js'
import { waitFor } from '../helpers/server.js'

const server = new RedisServer()
let conn: Redis
let sub: Redis
const heard: StoredMessage[][] = []
const PARTITIONS = 4

before(async () => {
  await server.start()
  conn = new Redis(server.url)
  sub = new Redis(server.url)
  await sub.subscribe(COMMITTED_CHANNEL)
  sub.on('message', (_channel, payload: string) => { heard.push(JSON.parse(payload) as StoredMessage[]) })
})
after(async () => {
  conn?.disconnect()
  sub?.disconnect()
  await server.destroy()
})

const msg = (chatId: string, seq: number, type = 'text'): StoredMessage => ({
  chatId, seq, senderUser: 'u1', senderDevice: 'd1', clientId: `${chatId}-${seq}-${type}`, type, body: `"${seq}"`, clientTs: null, serverTs: 1000 + seq
})
/** Two chats of one partition. */
function chats (): [string, string] {
  const out: string[] = []
  for (let i = 0; out.length < 2; i++) if (partitionOf(`feed${i}`, PARTITIONS) === 1) out.push(`feed${i}`)
  return [out[0]!, out[1]!]
}
const cached = async (chatId: string): Promise<number[]> =>
  (await conn.zrange(recentKey(1, chatId), 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1).map(Number)

test('one turn\'s messages of several chats: last seqs raised, caches gapless and bounded, one announcement', async () => {
  const [a, b] = chats()
  const feed = new CommitFeed(conn, { partitions: PARTITIONS, recentPerChat: 5, recentTtlSeconds: 60 })
  const calls = (): Promise<string> => conn.info('commandstats')
  const count = (stats: string, cmd: string): number => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  const before = await calls()
  // a: 1..7 (bounded to the newest 5); b: 1, 2, then 3 again (a repeat) — handed over out of order.
  await Promise.all([...[3, 1, 2, 4, 5, 6, 7].map((s) => feed.committed(msg(a, s))), ...[2, 1, 3].map((s) => feed.committed(msg(b, s))), feed.committed(msg(b, 3))])
  const stats = await calls()
  // The first call of a script may go as EVAL (not yet loaded), the others as EVALSHA.
  const evals = count(stats, 'evalsha') + count(stats, 'eval') - count(before, 'evalsha') - count(before, 'eval')
  assert.equal(evals, 1, 'one script call for one partition\'s turn')
  // Inside the script, each chat's new messages are added at once, not one ZADD (and trim) per message.
  for (const cmd of ['zadd', 'zremrangebyrank', 'hget']) {
    const n = count(stats, cmd) - count(before, cmd)
    assert.ok(n <= 2, `${n} ${cmd} for 2 chats`)
  }
  assert.deepEqual(await cached(a), [3, 4, 5, 6, 7])
  assert.deepEqual(await cached(b), [1, 2, 3])
  assert.deepEqual(await conn.hmget(lastKey(1), a, b), ['7', '3'])
  await waitFor('the announcement', () => heard.flat().length >= 11, 5000)
  assert.deepEqual(heard.flat().filter((m) => m.chatId === a).map((m) => m.seq).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7])
  assert.ok(heard.length <= 2)

  // Next turn: a gap (another writer's seq 8 not seen here) restarts a's cache at 9; an edit restarts b's with the edit.
  await Promise.all([feed.committed(msg(a, 9)), feed.committed(msg(a, 10)), feed.committed(msg(b, 4)), feed.committed(msg(b, 5, 'edit')), feed.committed(msg(b, 6))])
  assert.deepEqual(await cached(a), [9, 10])
  assert.deepEqual(await cached(b), [5, 6])
  assert.deepEqual(await conn.hmget(lastKey(1), a, b), ['10', '6'])
  // An older seq never lowers the last seq, nor enters the cache.
  await feed.committed(msg(a, 2))
  assert.deepEqual(await cached(a), [9, 10])
  assert.equal(await conn.hget(lastKey(1), a), '10')
  assert.ok(await conn.ttl(recentKey(1, a)) > 0, 'the cache expires when the chat is quiet')
})
