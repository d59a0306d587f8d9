// Message operations (reply, edit, delete for everyone, reactions, forward)
// and blocking, with each refusal's documented reason code.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { TestServer, Device, waitFor, type DeviceCreds, type InboxEvent } from '../helpers/server.js'

const server = new TestServer({ MQCHAT_PUBLISH_RATE: '1000', MQCHAT_PUBLISH_BURST: '1000' })
let admin: DeviceCreds, b: DeviceCreds, c: DeviceCreds
let A: Device, B: Device, C: Device
let group: string

before(async () => {
  await server.start()
  admin = await server.register('+15551200001')
  b = await server.register('+15551200002')
  c = await server.register('+15551200003')
  group = (await server.api('POST', '/v1/chats', admin.token, { kind: 'group', name: 'ops', members: [b.userId, c.userId] })).body.chat_id
  ;[A, B, C] = await Promise.all([admin, b, c].map((x) => new Device(server, x).connect()))
})
after(async () => {
  for (const d of [A, B, C]) await d.close().catch(() => {})
  await server.dispose()
})

let n = 0
/** Publishes an envelope and waits for its outcome: the ack, or the error event. */
async function send (d: Device, chatId: string, envelope: Record<string, unknown>): Promise<InboxEvent> {
  const id = `op-${++n}`
  await d.publish(chatId, { ...envelope, id })
  return d.waitEvent(`outcome of ${id}`, (e) => (e.type === 'ack' || e.type === 'error') && e.id === id)
}

/** Makes a message look older, as if sent `ms` ago. */
async function age (chatId: string, seq: number, ms: number): Promise<void> {
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const db = new SqliteDatabase(join(server.dataDir, 'mqchat.db'))
  try {
    db.pragma('busy_timeout = 5000')
    db.prepare('UPDATE messages SET server_ts = server_ts - ? WHERE chat_id = ? AND seq = ?').run(ms, chatId, seq)
  } finally {
    db.close()
  }
}

const history = async (token: string, chatId: string) => (await server.api('GET', `/v1/chats/${chatId}/messages?limit=500`, token)).body.messages as Array<Record<string, any>>

test('reply and edit: the edit reaches members as an event, history shows the latest text and an edited mark', async () => {
  const orig = await send(B, group, { type: 'text', body: 'meet at 8' })
  assert.equal(orig.type, 'ack')
  const reply = await send(C, group, { type: 'reply', reply_to: orig.seq, body: 'ok' })
  assert.equal(reply.type, 'ack')
  const m = await A.waitEvent('the reply', (e) => e.type === 'msg' && e.seq === reply.seq)
  assert.equal(m.kind, 'reply')
  assert.equal(m.ref, orig.seq)
  assert.equal((await send(C, group, { type: 'reply', reply_to: 9999, body: 'to nothing' })).code, 'unknown_message')

  const edit = await send(B, group, { type: 'edit', ref: orig.seq, body: 'meet at 9' })
  assert.equal(edit.type, 'ack')
  const ev = await A.waitEvent('the edit event', (e) => e.type === 'msg' && e.seq === edit.seq)
  assert.deepEqual([ev.kind, ev.ref, ev.body], ['edit', orig.seq, 'meet at 9'])
  const h = await history(admin.token, group)
  const shown = h.find((x) => x.seq === orig.seq) as Record<string, any>
  assert.equal(shown.body, 'meet at 9')
  assert.equal(typeof shown.edited_at, 'number')

  assert.equal((await send(C, group, { type: 'edit', ref: orig.seq, body: 'hijack' })).code, 'not_sender')
  assert.equal((await send(B, group, { type: 'edit', ref: reply.seq, body: 'x' })).code, 'not_sender')
  await age(group, orig.seq as number, 16 * 60_000)
  const late = await send(B, group, { type: 'edit', ref: orig.seq, body: 'too late' })
  assert.equal(late.code, 'edit_window_expired')
  assert.equal((await history(admin.token, group)).find((x) => x.seq === orig.seq)?.body, 'meet at 9')
})

test('delete for everyone: the sender within 48 h, admins any time, nobody else; history keeps a tombstone', async () => {
  const mine = await send(B, group, { body: 'oops' })
  assert.equal((await send(C, group, { type: 'delete', ref: mine.seq })).code, 'not_allowed')
  const del = await send(B, group, { type: 'delete', ref: mine.seq })
  assert.equal(del.type, 'ack')
  await A.waitEvent('the delete event', (e) => e.type === 'msg' && e.seq === del.seq && e.kind === 'delete' && e.ref === mine.seq)
  const tomb = (await history(c.token, group)).find((x) => x.seq === mine.seq) as Record<string, any>
  assert.equal(tomb.deleted, true)
  assert.equal(tomb.body, null)
  assert.equal((await send(B, group, { type: 'edit', ref: mine.seq, body: 'back' })).code, 'message_deleted')

  const old = await send(C, group, { body: 'old news' })
  await age(group, old.seq as number, 49 * 3_600_000)
  assert.equal((await send(C, group, { type: 'delete', ref: old.seq })).code, 'delete_window_expired')
  assert.equal((await send(A, group, { type: 'delete', ref: old.seq })).type, 'ack', 'a group admin may delete any time')
})

test('reactions: one per user per message, replaceable, removable', async () => {
  const target = await send(A, group, { body: 'vote' })
  await send(B, group, { type: 'reaction', ref: target.seq, body: '👍' })
  await send(B, group, { type: 'reaction', ref: target.seq, body: '🎉' })
  await send(C, group, { type: 'reaction', ref: target.seq, body: '👍' })
  let r = (await history(admin.token, group)).find((x) => x.seq === target.seq)?.reactions
  assert.deepEqual(r, { [b.userId]: '🎉', [c.userId]: '👍' })
  await send(C, group, { type: 'reaction', ref: target.seq, body: null })
  r = (await history(admin.token, group)).find((x) => x.seq === target.seq)?.reactions
  assert.deepEqual(r, { [b.userId]: '🎉' })
  await A.waitEvent('a reaction event', (e) => e.type === 'msg' && e.kind === 'reaction' && e.ref === target.seq && e.from === b.userId)
  assert.equal((await send(C, group, { type: 'reaction', ref: target.seq, body: 'a'.repeat(40) })).code, 'bad_request')
})

test('forwarding: to 5 chats at once is fine, a sixth target is refused with forward_limit', async () => {
  const targets: string[] = []
  for (let i = 0; i < 6; i++) {
    targets.push((await server.api('POST', '/v1/chats', admin.token, { kind: 'group', name: `fw${i}`, members: [b.userId] })).body.chat_id)
  }
  const src = await send(A, group, { body: 'pass it on' })
  const ok = await server.api('POST', `/v1/chats/${group}/messages/${src.seq}/forward`, admin.token, { to: targets.slice(0, 5), id: 'fw-1' })
  assert.equal(ok.status, 201)
  assert.equal(ok.body.forwarded.length, 5)
  const copy = (await history(b.token, targets[0]))[0]
  assert.deepEqual([copy.body, copy.forwarded], ['pass it on', true])
  const six = await server.api('POST', `/v1/chats/${group}/messages/${src.seq}/forward`, admin.token, { to: targets, id: 'fw-2' })
  assert.equal(six.status, 400)
  assert.equal(six.body.error.code, 'forward_limit')
  assert.equal((await history(b.token, targets[5])).length, 0, 'nothing was forwarded')
})

test('blocking: the blocked user\'s direct messages are refused with blocked, and they lose the presence', async () => {
  const dm = (await server.api('POST', '/v1/chats', c.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  assert.equal((await send(B, dm, { body: 'hello C' })).type, 'ack')
  assert.equal((await server.api('POST', '/v1/blocks', c.token, { user: b.phone })).status, 204)
  assert.deepEqual((await server.api('GET', '/v1/blocks', c.token)).body.blocked, [b.userId])

  const refused = await send(B, dm, { body: 'are you there?' })
  assert.equal(refused.code, 'blocked')
  assert.equal((await send(C, dm, { body: 'no' })).code, 'blocked', 'the blocker cannot write either until unblocking')
  const viaHttp = await server.api('POST', `/v1/chats/${dm}/messages`, b.token, { id: 'http-blocked', body: 'x' })
  assert.equal(viaHttp.body.error.code, 'blocked')
  const granted = await new Promise<number[]>((resolve) => B.client.subscribe(`presence/${c.userId}`, { qos: 0 }, (err, g) => {
    resolve((err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? (g ?? []).map((x) => x.qos))
  }))
  assert.deepEqual(granted, [128])
  // Groups they share are not affected.
  assert.equal((await send(B, group, { body: 'still in the group' })).type, 'ack')

  assert.equal((await server.api('DELETE', `/v1/blocks/${b.userId}`, c.token)).status, 204)
  assert.equal((await send(B, dm, { body: 'hello again' })).type, 'ack')
  await waitFor('C gets it', () => C.events.find((e) => e.type === 'msg' && e.chat === dm && e.body === 'hello again'))

  // A forward with a blocked direct chat among its targets happens not at all.
  const other = (await server.api('POST', '/v1/chats', b.token, { kind: 'group', name: 'fw-target', members: [c.userId] })).body.chat_id as string
  const src = await send(B, group, { body: 'forward me' })
  await server.api('POST', '/v1/blocks', c.token, { user: b.userId })
  const partial = await server.api('POST', `/v1/chats/${group}/messages/${src.seq}/forward`, b.token, { to: [other, dm], id: 'fw-blocked' })
  assert.equal(partial.body.error.code, 'blocked')
  assert.equal((await history(b.token, other)).length, 0, 'no copy reached the first target')
  await server.api('DELETE', `/v1/blocks/${b.userId}`, c.token)
})

test('a resend gets its original seq even when the rules would refuse it now (an edit whose window has since passed)', async () => {
  const target = await send(B, group, { body: 'typo' })
  await B.publish(group, { id: 'edit-resent', type: 'edit', ref: target.seq, body: 'fixed' })
  const first = await B.waitEvent('the edit\'s ack', (e) => e.type === 'ack' && e.id === 'edit-resent')
  await age(group, target.seq as number, 16 * 60_000)
  await B.publish(group, { id: 'edit-resent', type: 'edit', ref: target.seq, body: 'fixed' })
  const again = await waitFor('the resend\'s ack', () => B.events.filter((e) => e.id === 'edit-resent')[1])
  assert.deepEqual([again.type, again.seq, again.duplicate], ['ack', first.seq, true])
  assert.equal((await send(B, group, { type: 'edit', ref: target.seq, body: 'too late' })).code, 'edit_window_expired', 'a new edit is refused')
})

test('the CLI speaks the operations: reply, edit, react, delete, forward, block', async () => {
  const { cli, tempDir } = await import('../helpers/server.js')
  const { writeFileSync, rmSync } = await import('node:fs')
  const home = tempDir('mqchat-cli-')
  try {
    writeFileSync(`${home}/b.json`, JSON.stringify({ server: server.url, user_id: b.userId, device_id: b.deviceId, token: b.token }))
    const run = async (...args: string[]) => {
      const r = await cli(home, [...args, '--profile', 'b', '--json'])
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      return JSON.parse(r.stdout.trim().split('\n')[0])
    }
    const first = await run('send', group, 'from', 'the', 'CLI')
    const reply = await run('send', group, 'replying', '--reply', String(first.seq))
    await run('edit', group, String(first.seq), 'edited', 'by', 'CLI')
    await run('react', group, String(reply.seq), '👍')
    const h = await history(b.token, group)
    assert.equal(h.find((x) => x.seq === first.seq)?.body, 'edited by CLI')
    assert.deepEqual(h.find((x) => x.seq === reply.seq)?.reactions, { [b.userId]: '👍' })
    await run('delete', group, String(reply.seq))
    assert.equal((await history(b.token, group)).find((x) => x.seq === reply.seq)?.deleted, true)
    const dm = (await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: admin.userId })).body.chat_id
    const fw = await run('forward', group, String(first.seq), dm)
    assert.equal(fw.forwarded[0].chat, dm)
    await run('block', admin.userId)
    assert.deepEqual((await run('blocks')).blocked, [admin.userId])
    const refused = await cli(home, ['send', dm, 'hi', '--profile', 'b'])
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /blocked/)
    await run('unblock', admin.userId)
    const bad = await cli(home, ['edit', group, 'zero', 'x', '--profile', 'b'])
    assert.equal(bad.code, 2)
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})
