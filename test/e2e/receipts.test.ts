// Receipts as watermarks: ✓ (ack), ✓✓ (delivered), blue (read), on every
// device of the sender; the reader's other devices follow its read state;
// read receipts switched off hide reads both ways; message info.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { TestServer, Device, cli, tempDir, waitFor, type DeviceCreds, type InboxEvent } from '../helpers/server.js'

const server = new TestServer()
const home = tempDir('mqchat-cli-')
let a: DeviceCreds, a2: DeviceCreds, b: DeviceCreds, b2: DeviceCreds, c: DeviceCreds
let A1: Device, A2: Device, B1: Device, B2: Device, C1: Device
let group: string

before(async () => {
  await server.start()
  a = await server.register('+15550800001')
  a2 = await server.link(a)
  b = await server.register('+15550800002')
  b2 = await server.link(b)
  c = await server.register('+15550800003')
  group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'ticks', members: [b.userId, c.userId] })).body.chat_id
  ;[A1, A2, B1, B2, C1] = await Promise.all([a, a2, b, b2, c].map((x) => new Device(server, x).connect()))
})
after(async () => {
  for (const d of [A1, A2, B1, B2, C1]) await d.close().catch(() => {})
  await server.dispose()
  rmSync(home, { recursive: true, force: true })
})

const receiptOf = (d: Device, user: string, pred: (e: InboxEvent) => boolean): Promise<InboxEvent> =>
  d.waitEvent(`receipt of ${user}`, (e) => e.type === 'receipt' && e.chat === group && e.user === user && pred(e))

test('✓ then ✓✓ per member then blue, on both of the sender\'s devices; the reader\'s other device follows', async () => {
  await A1.publish(group, { id: 't-1', body: 'tick me' })
  const ack = await A1.waitEvent('ack', (e) => e.type === 'ack' && e.id === 't-1')
  const seq = ack.seq as number
  for (const d of [B1, C1]) await d.waitEvent('the message', (e) => e.type === 'msg' && e.seq === seq)

  await B1.publish(group, { type: 'delivered', seq }, 'receipt')
  for (const d of [A1, A2]) {
    const r = await receiptOf(d, b.userId, (e) => e.delivered === seq)
    assert.equal(r.read, 0)
  }
  await C1.publish(group, { type: 'delivered', seq }, 'receipt')
  for (const d of [A1, A2]) await receiptOf(d, c.userId, (e) => e.delivered === seq)

  await B1.publish(group, { type: 'read', seq }, 'receipt')
  for (const d of [A1, A2]) await receiptOf(d, b.userId, (e) => e.read === seq)
  // B's second device learns B has read up to seq: it clears its unread state.
  const own = await receiptOf(B2, b.userId, (e) => e.read === seq)
  assert.equal(own.delivered, seq)
  // C's reads are not sent to B: B wrote nothing in that range.
  assert.equal(B1.events.some((e) => e.type === 'receipt' && e.user === c.userId), false)

  // Watermarks never move backwards; a repeat changes nothing and announces nothing.
  const before = A1.of('receipt').length
  await B1.publish(group, { type: 'delivered', seq }, 'receipt')
  await B1.publish(group, { type: 'read', seq }, 'receipt')
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(A1.of('receipt').length, before)

  const info = await server.api('GET', `/v1/chats/${group}/messages/${seq}/receipts`, a.token)
  assert.deepEqual(info.body.delivered.sort(), [b.userId, c.userId].sort())
  assert.deepEqual(info.body.read, [b.userId])
})

test('with read receipts off, C\'s reads are never shown to A and C sees nobody\'s read', async () => {
  const off = await server.api('PATCH', '/v1/me/settings', c.token, { read_receipts: false })
  assert.deepEqual(off.body, { read_receipts: false, last_seen: 'chats', profile: 'everyone' })

  await A1.publish(group, { id: 't-2', body: 'second' })
  const seq = (await A1.waitEvent('ack', (e) => e.type === 'ack' && e.id === 't-2')).seq as number
  await C1.publish(group, { type: 'read', seq }, 'receipt')
  const r = await receiptOf(A1, c.userId, (e) => e.delivered === seq)
  assert.equal(r.read, undefined, 'delivered flows, read does not')
  const info = await server.api('GET', `/v1/chats/${group}/messages/${seq}/receipts`, a.token)
  assert.ok(info.body.delivered.includes(c.userId))
  assert.equal(info.body.read.includes(c.userId), false)

  // C writes; B reads it: C gets B's delivered, never B's read.
  await C1.publish(group, { id: 't-3', body: 'from C' })
  const cseq = (await C1.waitEvent('ack', (e) => e.type === 'ack' && e.id === 't-3')).seq as number
  await B1.publish(group, { type: 'read', seq: cseq }, 'receipt')
  const seen = await receiptOf(C1, b.userId, (e) => (e.delivered as number) >= cseq)
  assert.equal(seen.read, undefined)
  const cinfo = await server.api('GET', `/v1/chats/${group}/messages/${cseq}/receipts`, c.token)
  assert.deepEqual(cinfo.body.read, [])
  await server.api('PATCH', '/v1/me/settings', c.token, { read_receipts: true })
})

test('receipt refusals: beyond the last seq, malformed, not a member', async () => {
  await B1.publish(group, { type: 'read', seq: 99999 }, 'receipt')
  const e1 = await B1.waitEvent('bad_request for seq', (e) => e.type === 'error' && e.topic === `chat/${group}/receipt`)
  assert.equal(e1.code, 'bad_request')
  await B1.publish(group, { type: 'seen', seq: 1 }, 'receipt')
  await waitFor('second bad_request', () => B1.of('error').filter((e) => e.topic === `chat/${group}/receipt`).length === 2)
  const outsider = await new Device(server, await server.register('+15550800009')).connect()
  await outsider.publish(group, { type: 'read', seq: 1 }, 'receipt')
  assert.equal((await outsider.waitEvent('not_member', (e) => e.type === 'error')).code, 'not_member')
  await outsider.close()
})

test('mqchat listen sends delivered receipts by itself; mqchat read turns the ticks blue', async () => {
  writeFileSync(`${home}/c.json`, JSON.stringify({ server: server.url, user_id: c.userId, device_id: c.deviceId, token: c.token }))
  await C1.close()
  await A1.publish(group, { id: 't-4', body: 'for the CLI' })
  const seq = (await A1.waitEvent('ack', (e) => e.type === 'ack' && e.id === 't-4')).seq as number
  const l = await cli(home, ['listen', '--profile', 'c', '--count', '1', '--timeout', '15'])
  assert.equal(l.code, 0, l.stderr)
  await receiptOf(A1, c.userId, (e) => e.delivered === seq && e.read !== seq)
  const r = await cli(home, ['read', group, '--profile', 'c'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`read ${group} up to #${seq}`))
  await receiptOf(A1, c.userId, (e) => e.read === seq)
  const info = await cli(home, ['info', group, String(seq), '--profile', 'c', '--json'])
  assert.deepEqual(JSON.parse(info.stdout).read.sort(), [c.userId])
  C1 = await new Device(server, c).connect()
})
