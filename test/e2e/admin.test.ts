// The operator's channel against a real server, with `mqchat admin`
// (docs/protocol.md § Admin): every command, the token it needs, the audit
// log, and a ban that disconnects and refuses a user's devices until lifted.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Device, TestServer, cli, tempDir, waitFor, type DeviceCreds } from '../helpers/server.js'

const TOKEN = randomBytes(32).toString('hex')
const server = new TestServer({ MQCHAT_ADMIN_TOKEN: TOKEN, MQCHAT_ADMIN_PORT: '0' })
const home = tempDir('mqchat-admin-')
let ann: DeviceCreds, ben: DeviceCreds
let chat: string
let url: string

before(async () => {
  await server.start()
  url = `http://127.0.0.1:${server.ports.admin!}`
  ann = await server.register('+15553300001')
  ben = await server.register('+15553300002')
  chat = (await server.api('POST', '/v1/chats', ann.token, { kind: 'group', name: 'ops', members: [ben.userId] })).body.chat_id
  await server.api('POST', `/v1/chats/${chat}/messages`, ann.token, { id: 'm1', body: 'hello' })
})
after(async () => { await server.dispose() })

const admin = async (args: string[], token = TOKEN): Promise<{ code: number, stdout: string, stderr: string }> =>
  await cli(home, ['admin', ...args, '--admin-url', url], { MQCHAT_ADMIN_TOKEN: token }, 30_000)
const adminJson = async (args: string[]): Promise<any> => {
  const r = await admin([...args, '--json'])
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n')[0]!)
}

test('the admin listener needs its token on every route, and logs every request', async () => {
  for (const [method, path] of [['GET', '/admin/v1/stats'], ['GET', `/admin/v1/users/${ann.userId}`], ['POST', `/admin/v1/users/${ann.userId}/ban`], ['DELETE', `/admin/v1/users/${ann.userId}`], ['DELETE', `/admin/v1/devices/${ann.deviceId}`]]) {
    for (const auth of [undefined, `Bearer ${TOKEN.slice(0, -1)}x`, TOKEN]) {
      const res = await fetch(url + path, { method, headers: auth !== undefined ? { authorization: auth } : {} })
      assert.equal(res.status, 401, `${method} ${path} with ${auth === undefined ? 'no' : 'a wrong'} token`)
    }
  }
  assert.equal((await server.api('GET', '/v1/me', ann.token)).status, 200, 'nothing happened')
  const wrong = await admin(['stats'], 'x'.repeat(64))
  assert.equal(wrong.code, 4)
  await waitFor('the refusals in the audit log', () => server.log.includes('admin request without the admin token') || undefined)
  const missing = await cli(home, ['admin', 'stats', '--admin-url', url], {})
  assert.equal(missing.code, 2, 'no token: a usage error')
})

test('stats, users find, user show, chat show', async () => {
  const A = await new Device(server, ann).connect()
  try {
    const stats = await adminJson(['stats'])
    assert.ok(stats.connections >= 1, JSON.stringify(stats))
    assert.ok(stats.messages_total >= 1)
    assert.equal(typeof stats.messages_per_second, 'number')
    assert.ok(stats.stores.sqlite_bytes > 0)
    assert.equal(typeof stats.queues.inbox_events, 'number')
  } finally { await A.close() }
  const human = await admin(['stats'])
  assert.match(human.stdout, /connections, .* messages\/s/)
  const found = await admin(['users', 'find', '+1555330', '--json'])
  assert.deepEqual(found.stdout.trim().split('\n').map((l) => JSON.parse(l).user_id).sort(), [ann.userId, ben.userId].sort())
  const byId = await adminJson(['users', 'find', ben.userId])
  assert.equal(byId.phone, ben.phone)
  const u = await adminJson(['user', 'show', ann.userId])
  assert.deepEqual({ phone: u.phone, banned: u.banned, devices: u.devices.map((d: { device_id: string }) => d.device_id), chats: u.chats }, { phone: ann.phone, banned: false, devices: [ann.deviceId], chats: [chat] })
  const c = await adminJson(['chat', 'show', chat])
  assert.deepEqual({ kind: c.kind, name: c.name, last_seq: c.last_seq, members: c.members.length }, { kind: 'group', name: 'ops', last_seq: 1, members: 2 })
  assert.equal((await admin(['chat', 'show', 'g_0000000000000000'])).code, 3)
  assert.equal((await admin(['user', 'show', 'u_0000000000000000'])).code, 3)
})

test('a ban disconnects the user\'s devices and refuses them (MQTT, HTTP, a new verification) until it is lifted', async () => {
  const B = await new Device(server, ben).connect()
  const closed = new Promise<void>((resolve) => B.client.once('close', () => resolve()))
  assert.match((await admin(['user', 'ban', ben.userId])).stdout, /banned/)
  await closed
  assert.equal((await server.api('GET', '/v1/me', ben.token)).status, 401)
  await assert.rejects(new Device(server, ben).connect(), 'MQTT refused')
  const code = await server.api('POST', '/v1/register/code', undefined, { phone: ben.phone })
  const verify = await server.api('POST', '/v1/register/verify', undefined, { phone: ben.phone, code: code.body.code })
  assert.deepEqual([verify.status, verify.body.error.code], [403, 'banned'])
  assert.equal((await adminJson(['user', 'show', ben.userId])).banned, true)
  await admin(['user', 'unban', ben.userId])
  assert.equal((await server.api('GET', '/v1/me', ben.token)).status, 200)
  const again = await new Device(server, ben).connect()
  await again.close()
})

test('device revoke and user delete', async () => {
  const laptop = await server.link(ann, 'laptop')
  assert.match((await admin(['device', 'revoke', laptop.deviceId])).stdout, /revoked/)
  assert.equal((await server.api('GET', '/v1/me', laptop.token)).status, 401)
  assert.equal((await server.api('GET', '/v1/me', ann.token)).status, 200)
  const r = await adminJson(['user', 'delete', ann.userId])
  assert.deepEqual({ deleted: r.deleted, chats: r.chats }, { deleted: true, chats: 1 })
  assert.equal((await server.api('GET', '/v1/me', ann.token)).status, 401)
  assert.equal((await admin(['user', 'show', ann.userId])).code, 3)
  // Every admin action is an audit line naming it.
  for (const action of ['GET /admin/v1/stats', 'POST /admin/v1/users/:id/ban', 'DELETE /admin/v1/users/:id', 'DELETE /admin/v1/devices/:id', 'GET /admin/v1/chats/:id']) {
    await waitFor(`the audit line for ${action}`, () => server.log.includes(`"action":"${action}"`) || undefined)
  }
})

test('without an admin token there is no admin listener', async () => {
  const plain = new TestServer()
  try {
    await plain.start()
    assert.equal(plain.ports.admin, 0)
  } finally { await plain.dispose() }
})
