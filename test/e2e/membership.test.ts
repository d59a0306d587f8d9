// Membership is enforced at the broker: once the API has answered a removal
// (or a leave), that user's devices can no longer publish to the chat nor
// receive its new messages. A revoked device is disconnected at once and can
// reconnect with neither MQTT nor HTTP.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { TestServer, Device, waitFor, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer()
let admin: DeviceCreds, bob: DeviceCreds, carol: DeviceCreds
const open: Device[] = []

before(async () => {
  await server.start()
  admin = await server.register('+15550400001')
  bob = await server.register('+15550400002')
  carol = await server.register('+15550400003')
})
after(async () => {
  for (const d of open) await d.close().catch(() => {})
  await server.dispose()
})

async function online (c: DeviceCreds): Promise<Device> {
  const d = await new Device(server, c).connect()
  open.push(d)
  return d
}

test('a removed member can neither publish to nor receive from the chat', async () => {
  const g = await server.api('POST', '/v1/chats', admin.token, { kind: 'group', name: 'team', members: [bob.userId, carol.userId] })
  const chatId = g.body.chat_id as string
  const [A, B, C] = await Promise.all([admin, bob, carol].map(online))
  await B.publish(chatId, { id: 'b-before', body: 'hello' })
  await A.waitEvent('bob before removal', (e) => e.id === 'b-before' && e.type === 'msg')

  const del = await server.api('DELETE', `/v1/chats/${chatId}/members/${bob.userId}`, admin.token)
  assert.equal(del.status, 204)
  // Right after the API answered: bob's publish is refused…
  await B.publish(chatId, { id: 'b-after', body: 'am I still here?' })
  assert.equal((await B.waitEvent('not_member after removal', (e) => e.type === 'error' && e.id === 'b-after')).code, 'not_member')
  // …and bob was told he was removed, and gets nothing new.
  await B.waitEvent('member_removed event', (e) => e.type === 'chat' && e.change === 'member_removed' && (e.users as string[]).includes(bob.userId))
  await A.publish(chatId, { id: 'a-after', body: 'bob is gone' })
  await C.waitEvent('carol gets the new message', (e) => e.id === 'a-after')
  assert.equal(B.events.some((e) => e.id === 'a-after'), false)
  const hist = await server.api('GET', `/v1/chats/${chatId}/messages`, bob.token)
  assert.equal(hist.status, 404, 'no history for a non-member')

  // Leaving works the same way; the last admin leaving hands the group to the next member.
  const leave = await server.api('DELETE', `/v1/chats/${chatId}/members/${admin.userId}`, admin.token)
  assert.equal(leave.status, 204)
  await A.publish(chatId, { id: 'a-left', body: 'bye' })
  assert.equal((await A.waitEvent('not_member after leaving', (e) => e.type === 'error' && e.id === 'a-left')).code, 'not_member')
  const view = await server.api('GET', `/v1/chats/${chatId}`, carol.token)
  assert.deepEqual(view.body.members.map((m: { user_id: string, role: string }) => [m.user_id, m.role]), [[carol.userId, 'admin']])
})

test('group administration: only admins add, remove, rename, promote; a group never loses its last admin', async () => {
  const g = await server.api('POST', '/v1/chats', admin.token, { kind: 'group', name: 'admins', members: [bob.userId] })
  const chatId = g.body.chat_id as string
  const byBob = await server.api('POST', `/v1/chats/${chatId}/members`, bob.token, { users: [carol.userId] })
  assert.equal(byBob.status, 403)
  assert.equal(byBob.body.error.code, 'forbidden')
  assert.equal((await server.api('PATCH', `/v1/chats/${chatId}`, bob.token, { name: 'mine' })).status, 403)
  assert.equal((await server.api('PUT', `/v1/chats/${chatId}/members/${admin.userId}/role`, admin.token, { role: 'member' })).body.error.code, 'last_admin')
  const promoted = await server.api('PUT', `/v1/chats/${chatId}/members/${bob.userId}/role`, admin.token, { role: 'admin' })
  assert.equal(promoted.status, 200)
  const added = await server.api('POST', `/v1/chats/${chatId}/members`, bob.token, { users: [carol.phone] })
  assert.equal(added.status, 200)
  assert.equal(added.body.members.length, 3)
  const renamed = await server.api('PATCH', `/v1/chats/${chatId}`, bob.token, { name: 'renamed' })
  assert.equal(renamed.body.name, 'renamed')
  assert.equal(renamed.body.last_seq, 0, 'every chat answer carries last_seq')
  // A non-member sees the chat as missing, not as forbidden.
  const stranger = await server.register('+15550400009')
  assert.equal((await server.api('GET', `/v1/chats/${chatId}`, stranger.token)).status, 404)
  // Direct chats have fixed members.
  const dm = await server.api('POST', '/v1/chats', admin.token, { kind: 'direct', user: bob.userId })
  assert.equal((await server.api('POST', `/v1/chats/${dm.body.chat_id}/members`, admin.token, { users: [carol.userId] })).body.error.code, 'not_a_group')
})

test('the group size limit is enforced', async () => {
  const small = new TestServer({ MQCHAT_MAX_GROUP_MEMBERS: '3' })
  try {
    await small.start()
    const users = await Promise.all(['+15550400101', '+15550400102', '+15550400103', '+15550400104'].map((p) => small.register(p)))
    const over = await small.api('POST', '/v1/chats', users[0].token, { kind: 'group', name: 'big', members: users.slice(1).map((u) => u.userId) })
    assert.equal(over.status, 409)
    assert.equal(over.body.error.code, 'group_full')
    const ok = await small.api('POST', '/v1/chats', users[0].token, { kind: 'group', name: 'ok', members: users.slice(1, 3).map((u) => u.userId) })
    assert.equal(ok.status, 201)
    const add = await small.api('POST', `/v1/chats/${ok.body.chat_id}/members`, users[0].token, { users: [users[3].userId] })
    assert.equal(add.body.error.code, 'group_full')
  } finally {
    await small.dispose()
  }
})

test('a revoked device is disconnected at once and cannot reconnect over MQTT or HTTP', async () => {
  const laptop = await server.link(carol, 'laptop')
  const L = await new Device(server, laptop).connect()
  const closed = new Promise<void>((resolve) => L.client.once('close', () => resolve()))
  const list = await server.api('GET', '/v1/devices', carol.token)
  assert.deepEqual(list.body.devices.map((d: { device_id: string }) => d.device_id).sort(), [carol.deviceId, laptop.deviceId].sort())

  const rev = await server.api('DELETE', `/v1/devices/${laptop.deviceId}`, carol.token)
  assert.equal(rev.status, 204)
  await Promise.race([closed, new Promise((_r, rej) => setTimeout(() => rej(new Error('revoked connection was not closed')), 5000))])

  const again = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, { clientId: laptop.deviceId, username: laptop.deviceId, password: laptop.token, clean: false, reconnectPeriod: 0, connectTimeout: 5000 })
  const code = await new Promise<number | undefined>((resolve) => {
    again.once('connect', () => resolve(0))
    again.once('error', (err: Error & { code?: number }) => resolve(err.code))
  })
  again.end(true)
  assert.equal(code, 5)
  assert.equal((await server.api('GET', '/v1/me', laptop.token)).status, 401)
  // The user's other device is untouched, and a device cannot revoke another user's device.
  assert.equal((await server.api('GET', '/v1/me', carol.token)).status, 200)
  assert.equal((await server.api('DELETE', `/v1/devices/${carol.deviceId}`, bob.token)).status, 404)
  await L.close().catch(() => {})
})

test('linking is limited to 4 active devices per user by default; revoking frees a slot', async () => {
  const u = await server.register('+15550400020')
  const linked: DeviceCreds[] = []
  for (let i = 0; i < 3; i++) linked.push(await server.link(u, `d${i}`))
  const fifth = await server.api('POST', '/v1/devices', u.token, { name: 'one too many' })
  assert.equal(fifth.status, 409)
  assert.equal(fifth.body.error.code, 'device_limit')
  assert.equal((await server.api('DELETE', `/v1/devices/${linked[0].deviceId}`, u.token)).status, 204)
  assert.equal((await server.api('POST', '/v1/devices', u.token, { name: 'now fits' })).status, 201)
  // A new device receives messages sent before it ever connected.
  const other = await server.register('+15550400021')
  const dm = await server.api('POST', '/v1/chats', other.token, { kind: 'direct', user: u.userId })
  assert.equal((await server.api('DELETE', `/v1/devices/${linked[1].deviceId}`, u.token)).status, 204)
  const fresh = await server.link(u, 'fresh')
  const sent = await server.api('POST', `/v1/chats/${dm.body.chat_id}/messages`, other.token, { id: 'early', body: 'before first connect' })
  assert.equal(sent.status, 201)
  const F = await new Device(server, fresh).connect({ subscribe: false })
  open.push(F)
  await waitFor('the early message on first connect', () => F.events.find((e) => e.id === 'early'))
})
