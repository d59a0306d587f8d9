// Catch-up: a device offline while 2,000 messages arrive gets all of them
// from history, in order, once; its event log (receipts, chat changes) is
// what is bounded, and an overflow is reported with one `sync` event.
// Retention gaps are reported, not silently absent.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { TestServer, Device, serverWithPair, waitFor, within } from '../helpers/server.js'

const servers: TestServer[] = []
after(async () => { for (const s of servers) await s.dispose() })

interface SyncChat { chat_id: string, last_seq: number, messages: Array<{ seq: number, id: string }>, next_after: number, has_more: boolean, missing?: { from: number, to: number } }

test('2,000 messages while away, with the event log bound at 500 and 100 recent messages cached: all come over MQTT from history, in order, each once, no sync needed', async (t) => {
  // The cache holds far fewer than the device is owed: the catch-up reads history, a window at a time.
  const server = new TestServer({ MQCHAT_MAX_QUEUE: '500', MQCHAT_INBOX_CACHE_MESSAGES: '100', MQCHAT_PUBLISH_RATE: '100000', MQCHAT_PUBLISH_BURST: '100000' })
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
  await within('PUBACKs for 2,000 pipelined publishes', Promise.all(sends), 60_000)
  await sender.waitCount('ack', chatId, 2000, 60_000)
  assert.deepEqual(sender.of('ack', chatId).map((e) => e.seq), Array.from({ length: 2000 }, (_, i) => i + 1), 'the sender\'s acks, in order')
  await sender.close()

  const back = await new Device(server, b).connect({ subscribe: false })
  const msgs = await back.waitCount('msg', chatId, 2000, 60_000)
  assert.deepEqual(msgs.map((m) => m.seq), Array.from({ length: 2000 }, (_, i) => i + 1), 'all 2,000, in order')
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(back.of('msg', chatId).length, 2000, 'none twice')
  assert.equal(back.of('sync').length, 0, 'messages are owed from history: nothing was dropped')
  await back.close()

  // Acknowledged is remembered: the next connection gets nothing again.
  const again = await new Device(server, b).connect({ subscribe: false })
  const s2 = await new Device(server, a).connect()
  await s2.publish(chatId, { id: 'next', body: 'next' })
  const next = await again.waitEvent('the next message', (e) => e.type === 'msg' && e.id === 'next')
  assert.equal(next.seq, 2001)
  assert.deepEqual(again.of('msg', chatId).map((m) => m.seq), [2001], 'only the new one')
  t.diagnostic(`server log lines: ${server.log.split('\n').length}`)
  await again.close()
  await s2.close()
})

test('an away device\'s event log past its bound: the oldest events go, one sync event comes first, the newest are kept', async () => {
  const { server, a, b, chatId } = await serverWithPair(servers, ['+15551100021', '+15551100022'], { MQCHAT_MAX_QUEUE: '10' }, { group: 'r0' })
  const away = await new Device(server, b).connect()
  await away.waitEvent('the chat event', (e) => e.type === 'chat' && e.change === 'created')
  await away.close()
  for (let i = 1; i <= 25; i++) assert.equal((await server.api('PATCH', `/v1/chats/${chatId}`, a.token, { name: `r${i}` })).status, 200)

  const back = await new Device(server, b).connect({ subscribe: false })
  const renames = await waitFor('the sync event and ten renames', () => back.events.length >= 11 ? back.events : undefined)
  assert.equal(renames[0]?.type, 'sync')
  assert.equal(renames[0]?.reason, 'queue_overflow')
  assert.equal(renames[0]?.dropped, 15)
  assert.deepEqual(renames.slice(1).map((e) => e.name), Array.from({ length: 10 }, (_, i) => `r${16 + i}`))
  await back.close()

  const again = await new Device(server, b).connect({ subscribe: false })
  await server.api('PATCH', `/v1/chats/${chatId}`, a.token, { name: 'last' })
  await again.waitEvent('the last rename', (e) => e.type === 'chat' && e.name === 'last')
  assert.equal(again.events.length, 1, 'the overflow was reported once; nothing else is owed')
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

  // Over MQTT, b's phone (never connected) is owed both chats from their start: the purged seqs are reported in the chat's order, then the rest.
  const phone = await new Device(server, b).connect()
  const dmEvents = await waitFor('the purge note and the two messages left', () => {
    const inDm = phone.events.filter((e) => e.chat === dm && e.type !== 'chat')
    return inDm.length >= 3 ? inDm : undefined
  })
  assert.deepEqual(dmEvents.map((e) => [e.type, e.reason ?? e.seq]), [['sync', 'history_purged'], ['msg', 5], ['msg', 6]])
  assert.deepEqual([dmEvents[0]?.from, dmEvents[0]?.to], [1, 4])
  await phone.waitEvent('the group message', (e) => e.type === 'msg' && e.chat === group && e.id === 'g1')
  await phone.close()
})
