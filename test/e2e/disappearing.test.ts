// Disappearing messages against a real server (docs/protocol.md,
// "Disappearing messages"): a chat's timer is a message of its own (type
// timer, with a seq), set by group admins or either member of a direct chat;
// what is sent while it is on carries its expiry, is never read once
// expired (history, sync, live catch-up), and is deleted from the store
// within the sweep interval.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Device, TestServer, waitFor, type DeviceCreds } from '../helpers/server.js'

const TIMER = 2
const server = new TestServer({ MQCHAT_DISAPPEARING_TIMERS: `${TIMER},86400`, MQCHAT_EXPIRY_SWEEP_SECONDS: '1' })
let a: DeviceCreds, b: DeviceCreds, c: DeviceCreds
let B: Device
let direct: string, group: string

before(async () => {
  await server.start()
  a = await server.register('+15552900001')
  b = await server.register('+15552900002')
  c = await server.register('+15552900003')
  direct = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id
  group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'short-lived', members: [b.userId, c.userId] })).body.chat_id
  B = await new Device(server, b).connect()
})
after(async () => {
  await B?.close()
  await server.dispose()
})

const send = (creds: DeviceCreds, chat: string, envelope: object): Promise<{ status: number, body: any }> => server.api('POST', `/v1/chats/${chat}/messages`, creds.token, envelope)
const history = async (creds: DeviceCreds, chat: string): Promise<any[]> => (await server.api('GET', `/v1/chats/${chat}/messages?after=0`, creds.token)).body.messages
const rows = (clientId: string): number => {
  const db = new DatabaseSync(join(server.dataDir, 'mqchat.db'), { readOnly: true })
  try { return (db.prepare('SELECT count(*) AS n FROM messages WHERE client_id = ?').get(clientId) as { n: number }).n } finally { db.close() }
}

test('the timer: only the allowed values, only admins in a group, either member in a direct chat; a chat event and a message with its own seq', async () => {
  assert.equal((await send(b, direct, { id: 't-bad', type: 'timer', body: { seconds: 7 } })).status, 400)
  assert.equal((await send(b, direct, { id: 't-bad2', type: 'timer', body: { seconds: -1 } })).status, 400)
  assert.equal((await send(b, group, { id: 't-member', type: 'timer', body: { seconds: TIMER } })).body.error.code, 'not_allowed')
  const set = await send(b, direct, { id: 't-1', type: 'timer', body: { seconds: TIMER } })
  assert.equal(set.status, 201, JSON.stringify(set.body))
  const e = await B.waitEvent('the chat event', (x) => x.type === 'chat' && x.chat === direct && x.change === 'disappearing')
  assert.deepEqual({ seconds: e.seconds, seq: e.seq, by: e.by }, { seconds: TIMER, seq: set.body.seq, by: b.userId })
  assert.equal((await server.api('GET', `/v1/chats/${direct}`, a.token)).body.disappearing, TIMER)
  assert.equal((await send(a, group, { id: 't-admin', type: 'timer', body: { seconds: 86400 } })).status, 201)
  assert.equal((await server.api('GET', `/v1/chats/${group}`, c.token)).body.disappearing, 86400)
})

test('a message sent while the timer is on carries its expiry, is gone from history, sync and catch-up once expired, and from the store within the sweep', async () => {
  const sent = await send(a, direct, { id: 'vanish-1', body: 'this will self-destruct' })
  const live = await B.waitEvent('the message', (x) => x.type === 'msg' && x.id === 'vanish-1')
  assert.ok(Math.abs(Number(live.expires_at) - (Number(live.ts) + TIMER * 1000)) <= 1, JSON.stringify(live))
  assert.ok((await history(b, direct)).some((m) => m.id === 'vanish-1'), 'readable before it expires')
  assert.equal(rows('vanish-1'), 1)
  // A device that was away (never got it) must not get it after its expiry.
  const b2 = await server.link(b, 'away tablet')
  await waitFor('the message to expire from history', async () => !(await history(b, direct)).some((m) => m.id === 'vanish-1') || undefined, 10_000)
  const sync = await server.api('POST', '/v1/sync', b.token, {})
  assert.equal(JSON.stringify(sync.body).includes('vanish-1'), false, 'sync never returns it')
  const B2 = await new Device(server, b2).connect()
  try {
    await send(a, direct, { id: 'after-vanish', body: 'still here for a while' })
    await B2.waitEvent('what came after', (x) => x.type === 'msg' && x.id === 'after-vanish')
    assert.equal(B2.events.some((x) => x.id === 'vanish-1'), false, 'catch-up skips it')
  } finally { await B2.close() }
  await waitFor('the sweep to delete it from the store', () => rows('vanish-1') === 0 || undefined, 10_000)
  assert.equal((await send(a, direct, { id: 'reply-to-gone', type: 'reply', reply_to: sent.body.seq, body: 'to what?' })).body.error.code, 'unknown_message')
})

test('the timer off: messages after it stay; the timer message itself never expires', async () => {
  const off = await send(a, direct, { id: 't-off', type: 'timer', body: { seconds: 0 } })
  assert.equal(off.status, 201)
  const e = await B.waitEvent('the chat event', (x) => x.type === 'chat' && x.change === 'disappearing' && x.seq === off.body.seq)
  assert.equal(e.seconds, null)
  await send(a, direct, { id: 'stays', body: 'not disappearing' })
  const m = await B.waitEvent('the message', (x) => x.id === 'stays')
  assert.equal(m.expires_at, undefined)
  await waitFor('the last message sent under the timer to go', async () => !(await history(a, direct)).some((x) => x.id === 'after-vanish') || undefined, 10_000)
  const ids = (await history(a, direct)).map((x) => x.id)
  assert.ok(ids.includes('t-1') && ids.includes('t-off') && ids.includes('stays'), ids.join(','))
  assert.equal((await server.api('GET', `/v1/chats/${direct}`, a.token)).body.disappearing, null)
})
