// Offline delivery: a device that disconnected (clean=false) gets, on
// reconnect, every message sent meanwhile, in seq order — also when the
// server was killed with SIGKILL while it was away and then restarted.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestServer, Device, serverWithPair, waitFor, within } from '../helpers/server.js'
import { runPahoInbox } from '../helpers/paho.js'

const servers: TestServer[] = []
after(async () => { for (const s of servers) await s.dispose() })

async function setup (): Promise<{ server: TestServer, chatId: string, sender: Device, away: Device }> {
  const { server, a, b, chatId } = await serverWithPair(servers, ['+15550200001', '+15550200002'], {}, { group: 'offline' })
  const sender = await new Device(server, a).connect()
  const away = await new Device(server, b).connect()
  return { server, chatId, sender, away }
}

test('a device that was away gets everything sent meanwhile, in seq order', async () => {
  const { server, chatId, sender, away } = await setup()
  await sender.publish(chatId, { id: 'before', body: 'while online' })
  await away.waitEvent('the first message', (e) => e.type === 'msg' && e.id === 'before')
  await away.close()

  for (let i = 0; i < 30; i++) await sender.publish(chatId, { id: `m${i}`, body: `message ${i}` })
  await sender.waitCount('ack', chatId, 31)

  const back = await new Device(server, away.creds).connect({ subscribe: false })
  const msgs = await back.waitCount('msg', chatId, 30)
  assert.deepEqual(msgs.map((m) => m.id), Array.from({ length: 30 }, (_, i) => `m${i}`))
  assert.deepEqual(msgs.map((m) => m.seq), Array.from({ length: 30 }, (_, i) => i + 2))
  await back.close()
  await sender.close()
})

test('messages queued for an away device survive a SIGKILL of the server', async () => {
  const { server, chatId, sender, away } = await setup()
  await away.close()
  for (let i = 0; i < 20; i++) await sender.publish(chatId, { id: `k${i}`, body: `before crash ${i}` })
  // Every PUBACK above means "in history"; the queue copies are durable too.
  await sender.waitCount('ack', chatId, 20)
  await sender.close()

  await server.kill()
  await server.start()

  const back = await new Device(server, away.creds).connect({ subscribe: false })
  const msgs = await back.waitCount('msg', chatId, 20)
  assert.deepEqual(msgs.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => i + 1))
  assert.deepEqual(msgs.map((m) => m.body), Array.from({ length: 20 }, (_, i) => `before crash ${i}`))

  // Seqs continue after the restart, and history has everything.
  const again = await new Device(server, sender.creds).connect()
  await again.publish(chatId, { id: 'after', body: 'after restart' })
  const m = await back.waitEvent('the message after the restart', (e) => e.type === 'msg' && e.id === 'after')
  assert.equal(m.seq, 21)
  const hist = await server.api('GET', `/v1/chats/${chatId}/messages?limit=100`, sender.creds.token)
  assert.equal(hist.body.messages.length, 21)
  await back.close()
  await again.close()
})

test('a message stored before a crash but never fanned out is delivered at the next start', async () => {
  const { server, chatId, sender, away } = await setup()
  await sender.publish(chatId, { id: 'delivered', body: 'normal' })
  await away.waitEvent('the normal message', (e) => e.id === 'delivered')
  await away.close()
  await sender.close()
  await server.stop()

  // The crash window: history committed (the PUBACK went out) but the server
  // died before the inbox copies were queued. Recreate it in the database file.
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const { join } = await import('node:path')
  const db = new SqliteDatabase(join(server.dataDir, 'mqchat.db'))
  db.prepare("UPDATE chat_seq SET last_seq = last_seq + 1 WHERE chat_id = ?").run(chatId)
  db.prepare(`INSERT INTO messages (chat_id, seq, sender_user, sender_device, client_id, type, body, client_ts, server_ts, fanned_out)
    VALUES (?, 2, ?, ?, 'orphan', 'text', '"stored, not fanned out"', NULL, ?, 0)`).run(chatId, sender.creds.userId, sender.creds.deviceId, Date.now())
  db.close()

  await server.start()
  const back = await new Device(server, away.creds).connect({ subscribe: false })
  const m = await back.waitEvent('the orphaned message', (e) => e.type === 'msg' && e.id === 'orphan')
  assert.equal(m.seq, 2)
  assert.equal(m.body, 'stored, not fanned out')
  // The sender's device gets its ack too; afterwards nothing is pending.
  const s2 = await new Device(server, sender.creds).connect({ subscribe: false })
  await s2.waitEvent('the ack for the orphan', (e) => e.type === 'ack' && e.id === 'orphan')
  await back.close()
  await s2.close()
})

test('messages sent while a device reconnects come after everything queued for it: one seq order across catch-up and live delivery', async (t) => {
  // A small inbox window makes the catch-up take many round trips, so live messages are sure to be
  // written while it runs (from the memory cache it otherwise outpaces a sender writing one at a time).
  const { server, a, b, chatId } = await serverWithPair(servers, ['+15550200011', '+15550200012'], { MQCHAT_PUBLISH_RATE: '100000', MQCHAT_PUBLISH_BURST: '100000', MQCHAT_INBOX_WINDOW: '5' })
  const away = await new Device(server, b).connect()
  await away.close()
  const sender = await new Device(server, a).connect()
  const queued = 1000
  await within('PUBACKs for the queued messages', Promise.all(Array.from({ length: queued }, (_, i) => sender.publish(chatId, { id: `q${i}`, body: i }))), 60_000)

  // The sender keeps writing, one message at a time, while the device
  // reconnects and its queue is replayed, until the device has seen live ones too.
  const back = new Device(server, b)
  let live = 0
  let duringReplay = 0
  let stop = false
  const writing = (async () => {
    while (!stop && live < 5000) {
      await sender.publish(chatId, { id: `l${live}`, body: live })
      live++
      if (back.client?.connected && back.of('msg', chatId).length < queued) duringReplay++
    }
  })()
  await waitFor('the sender to be writing', () => live >= 5 || undefined)
  await back.connect({ subscribe: false })
  await waitFor('live messages after the queued ones', () => back.of('msg', chatId).length >= queued + 200 || undefined, 60_000)
  stop = true
  await within('the sender to stop', writing, 30_000)
  const seqs = await back.waitCount('msg', chatId, queued + live, 30_000).then((m) => m.map((e) => e.seq as number))
  const firstOutOfOrder = seqs.findIndex((s, i) => i > 0 && s <= seqs[i - 1])
  t.diagnostic(`${queued} queued, ${live} sent during and after the reconnect, ${duringReplay} of them stored while the queue was being replayed`)
  assert.ok(duringReplay > 0, 'the test overlapped live messages with the replay')
  assert.equal(firstOutOfOrder, -1, `seqs in order; out of order at index ${firstOutOfOrder}: …${seqs.slice(Math.max(0, firstOutOfOrder - 3), firstOutOfOrder + 3).join(', ')}…`)
  assert.deepEqual(seqs, Array.from({ length: queued + live }, (_, i) => i + 1), 'each seq once')
  await back.close()
  await sender.close()
})

test('a device created just before a crash that lost its inbox subscription gets it back at the next start, and its queue works', async () => {
  const { server, a, b, chatId } = await serverWithPair(servers, ['+15550200021', '+15550200022'])
  await server.stop()
  // The crash window: the device row committed, its inbox subscription not (written into broker.db as it would be).
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const { join } = await import('node:path')
  const db = new SqliteDatabase(join(server.dataDir, 'broker.db'))
  assert.equal(db.prepare('DELETE FROM subscriptions WHERE client_id = ?').run(b.deviceId).changes, 1)
  db.close()
  await server.start()
  // The line is written before the server reports ready, but reaches the test through a pipe: wait for it.
  await waitFor('the repair to be logged', () => /"repaired":1,.*devices without an inbox subscription/.test(server.log) || undefined)
  // Sent before b ever connects: queued, and delivered when it does.
  const sender = await new Device(server, a).connect()
  await sender.publish(chatId, { id: 'after-crash', body: 'queued for you' })
  const back = await new Device(server, b).connect({ subscribe: false })
  await back.waitEvent('the message queued before its first connection', (e) => e.type === 'msg' && e.id === 'after-crash')
  await back.close()
  await sender.close()
})

test('a device on a stock client\'s defaults (paho-mqtt: clean session) gets what was sent while it was away, once', async () => {
  const { server, a, b, chatId } = await serverWithPair(servers, ['+15550200031', '+15550200032'])
  const sender = await new Device(server, a).connect()
  const paho = { HOST: '127.0.0.1', PORT: String(server.ports.mqtt), DEVICE: b.deviceId, TOKEN: b.token }
  await sender.publish(chatId, { id: 'one', body: 'while it is connected' })
  const first = await runPahoInbox({ ...paho, COUNT: '1' })
  assert.ok(first.connected)
  assert.deepEqual(first.events.filter((e) => e.type === 'msg').map((e) => e.id), ['one'])

  // Away: paho's clean session leaves nothing behind in the MQTT session store.
  for (const id of ['two', 'three', 'four']) await sender.publish(chatId, { id, body: id })
  const second = await runPahoInbox({ ...paho, COUNT: '3' })
  const msgs = second.events.filter((e) => e.type === 'msg')
  assert.deepEqual(msgs.map((e) => [e.id, e.seq]), [['two', 2], ['three', 3], ['four', 4]], 'the three sent while away, in order, and not the one acknowledged before')
  await sender.close()
})

test('a device catching up past more messages it may not see than one page (reactions to a message from before its user joined) still gets what follows them', async () => {
  // No recent-messages cache: the catch-up reads history, a window (100) at a time.
  const server = new TestServer({ MQCHAT_PUBLISH_RATE: '100000', MQCHAT_PUBLISH_BURST: '100000', MQCHAT_INBOX_CACHE_MESSAGES: '0' })
  servers.push(server)
  await server.start()
  const a = await server.register('+15550200041')
  const b = await server.register('+15550200042')
  const c = await server.register('+15550200043')
  const group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'late', members: [b.userId] })).body.chat_id as string
  const sender = await new Device(server, a).connect()
  await sender.publish(group, { id: 'old', body: 'before c joined' })
  assert.equal((await server.api('POST', `/v1/chats/${group}/members`, a.token, { users: [c.userId] })).status, 200)
  // c's phone has never connected: it catches up on everything since c joined.
  for (let i = 0; i < 150; i++) await sender.publish(group, { id: `r${i}`, type: 'reaction', ref: 1, body: i % 2 === 0 ? '👍' : '🎉' })
  await sender.publish(group, { id: 'after', body: 'for c too' })
  const phone = await new Device(server, c).connect()
  const m = await phone.waitEvent('the message after the reactions', (e) => e.type === 'msg' && e.id === 'after')
  assert.equal(m.seq, 152)
  assert.equal(phone.of('msg', group).filter((e) => e.kind === 'reaction').length, 0, 'no reaction to a message c cannot read')
  await phone.close()
  await sender.close()
})
