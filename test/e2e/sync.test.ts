// Bounded offline queues and catch-up: a device offline while 2,000 messages
// arrive, with the queue bound at 500, ends with all 2,000 in order (queue +
// `sync` + POST /v1/sync), none lost, none shown twice. Retention gaps are
// reported, not silently absent.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { TestServer, Device, waitFor, within } from '../helpers/server.js'

const servers: TestServer[] = []
after(async () => { for (const s of servers) await s.dispose() })

interface SyncChat { chat_id: string, last_seq: number, messages: Array<{ seq: number, id: string }>, next_after: number, has_more: boolean, missing?: { from: number, to: number } }

test('2,000 messages past a queue bound of 500: queue, one sync event, catch-up; all in order, none twice', async (t) => {
  const server = new TestServer({ MQCHAT_MAX_QUEUE: '500', MQCHAT_PUBLISH_RATE: '100000', MQCHAT_PUBLISH_BURST: '100000', MQCHAT_LOG_LEVEL: 'debug' })
  servers.push(server)
  await server.start()
  const a = await server.register('+15551100001')
  const b = await server.register('+15551100002')
  const chatId = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string

  const away = await new Device(server, b).connect()
  await away.close()
  const sender = await new Device(server, a).connect()
  const sends: Array<Promise<unknown>> = []
  for (let i = 1; i <= 2000; i++) sends.push(sender.publish(chatId, { id: `q${i}`, body: i }))
  // The sender stays connected while its own queue of acks passes the bound: a
  // connected client's queue is never trimmed under aedes' delivery (that once stalled it).
  await within('PUBACKs for 2,000 pipelined publishes', Promise.all(sends), 60_000)
  await sender.waitCount('ack', chatId, 2000, 60_000)
  await sender.close()

  // The client: shows each seq once, in order; on `sync` it catches up from its last cursor (0).
  const shown: number[] = []
  const seen = new Set<number>()
  let duplicatesSkipped = 0
  const show = (seq: number): void => {
    if (seen.has(seq)) { duplicatesSkipped++; return }
    seen.add(seq)
    shown.push(seq)
  }
  const back = await new Device(server, b).connect({ subscribe: false })
  let syncEvent, queued
  try {
    syncEvent = await back.waitEvent('the sync event', (e) => e.type === 'sync', 30_000)
    // The queue kept the newest 500, in order.
    queued = await back.waitCount('msg', chatId, 500, 30_000)
  } catch (err) {
    // This once failed when a queued message, acknowledged through a live delivery, was updated after its deletion (test/broker/persistence-durable.test.ts): say what the device and the server saw.
    t.diagnostic(`device connected: ${String(back.client.connected)}; events: ${back.events.length}; msg events: ${back.of('msg', chatId).length}`)
    for (const line of server.log.split('\n').filter((l) => /"level":(20|40|50)/.test(l)).slice(-20)) t.diagnostic(line)
    throw err
  }
  assert.equal(syncEvent.reason, 'queue_overflow')
  assert.equal(syncEvent.dropped, 1500)
  assert.deepEqual(queued.map((m) => m.seq), Array.from({ length: 500 }, (_, i) => 1501 + i))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(back.of('sync').length, 1, 'exactly one sync event')

  let cursor = 0
  let pages = 0
  for (;;) {
    const r = await server.api('POST', '/v1/sync', b.token, { cursors: { [chatId]: cursor }, limit: 300 })
    assert.equal(r.status, 200)
    const c = (r.body.chats as SyncChat[]).find((x) => x.chat_id === chatId) as SyncChat
    for (const m of c.messages) show(m.seq)
    cursor = c.next_after
    pages++
    if (!c.has_more) break
    assert.ok(pages < 20, 'bounded pages make progress')
  }
  for (const m of queued) show(m.seq as number)
  t.diagnostic(`caught up in ${pages} pages; ${duplicatesSkipped} repeats recognised by seq`)
  assert.deepEqual(shown, Array.from({ length: 2000 }, (_, i) => i + 1), 'all 2,000, each once, in order')
  assert.equal(duplicatesSkipped, 500, 'the queued 500 also came through sync and were recognised by seq')
  await back.close()

  // The next connect brings no further sync event: the overflow was reported.
  const again = await new Device(server, b).connect({ subscribe: false })
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(again.of('sync').length, 0)
  await again.close()
})

test('sync covers every chat for a new device; retention gaps are reported as missing', async () => {
  const server = new TestServer()
  servers.push(server)
  await server.start()
  const a = await server.register('+15551100011')
  const b = await server.register('+15551100012')
  const dm = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  const group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'g', members: [b.userId] })).body.chat_id as string
  for (let i = 1; i <= 6; i++) await server.api('POST', `/v1/chats/${dm}/messages`, a.token, { id: `d${i}`, body: i })
  await server.api('POST', `/v1/chats/${group}/messages`, a.token, { id: 'g1', body: 'g' })

  // A device linked now catches up on everything with empty cursors.
  const fresh = await server.link(b, 'tablet')
  const all = await server.api('POST', '/v1/sync', fresh.token, {})
  const byChat = new Map((all.body.chats as SyncChat[]).map((c) => [c.chat_id, c]))
  assert.deepEqual(byChat.get(dm)?.messages.map((m) => m.id), ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'])
  assert.deepEqual(byChat.get(group)?.messages.map((m) => m.id), ['g1'])
  assert.equal(all.body.has_more, false)

  // Make the first 4 messages of the direct chat older than the 30-day retention, then restart: the purge runs at start.
  await server.stop()
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const db = new SqliteDatabase(join(server.dataDir, 'mqchat.db'))
  db.prepare('UPDATE messages SET server_ts = ? WHERE chat_id = ? AND seq <= 4').run(Date.now() - 31 * 86_400_000, dm)
  db.close()
  await server.start()
  await waitFor('the purge to be logged', () => /"purged":4/.test(server.log))
  const r = await server.api('POST', '/v1/sync', b.token, { cursors: { [dm]: 2 } })
  const c = (r.body.chats as SyncChat[]).find((x) => x.chat_id === dm) as SyncChat
  assert.deepEqual(c.missing, { from: 3, to: 4 })
  assert.deepEqual(c.messages.map((m) => m.seq), [5, 6])
  // Up to date: nothing missing, nothing more.
  const upToDate = await server.api('POST', '/v1/sync', b.token, { cursors: { [dm]: 6, [group]: 1 } })
  for (const x of upToDate.body.chats as SyncChat[]) {
    assert.deepEqual(x.messages, [])
    assert.equal(x.missing, undefined)
    assert.equal(x.has_more, false)
  }
  assert.equal((await server.api('POST', '/v1/sync', b.token, { limit: 5000 })).status, 400)
})
