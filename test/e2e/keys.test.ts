// The end-to-end encryption key directory (docs/protocol.md, "End-to-end
// encryption") against a real server: devices publish Ed25519-signed keys
// (signed here with node:crypto, as any client library would), other
// devices claim bundles; each one-time prekey goes out once, then the
// fallback; signatures, reach, the pool bound and the claim rate are
// enforced; pool and identity changes come as `keys` inbox events.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Device, TestServer, waitFor, type DeviceCreds } from '../helpers/server.js'
import { Keys } from '../helpers/keys.js'

const server = new TestServer({ MQCHAT_E2EE_MAX_PREKEYS: '8', MQCHAT_E2EE_PREKEYS_LOW: '2', MQCHAT_E2EE_CLAIMS_PER_10_MINUTES: '6' })
let a: DeviceCreds, b: DeviceCreds, stranger: DeviceCreds
let A: Device, B: Device

before(async () => {
  await server.start()
  a = await server.register('+15552300001')
  b = await server.register('+15552300002')
  stranger = await server.register('+15552300003')
  assert.equal((await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).status, 201)
  A = await new Device(server, a).connect()
  B = await new Device(server, b).connect()
})
after(async () => {
  await A?.close()
  await B?.close()
  await server.dispose()
})

test('a device publishes signed keys; a contact claims each one-time key once, then the fallback; the device is asked for more', async () => {
  const k = new Keys(a.deviceId)
  const up = await server.api('PUT', '/v1/keys', a.token, { ...k.identity(), fallback_key: k.prekey('f1'), one_time_keys: [k.prekey('o1'), k.prekey('o2'), k.prekey('o3')] })
  assert.equal(up.status, 200, JSON.stringify(up.body))
  assert.deepEqual(up.body, { one_time_keys: 3 })
  assert.deepEqual((await server.api('GET', '/v1/keys/count', a.token)).body, { one_time_keys: 3, max_one_time_keys: 8, fallback_key: true })
  const listed = await server.api('GET', `/v1/keys/users/${a.userId}`, b.token)
  assert.deepEqual(listed.body.devices, [{ device_id: a.deviceId, identity_key: k.identityKey, signing_key: k.signingKey, identity_signature: (k.identity() as { identity_signature: string }).identity_signature }])
  const got: string[] = []
  for (let i = 0; i < 3; i++) {
    const c = await server.api('POST', '/v1/keys/claim', b.token, { user: a.userId })
    assert.equal(c.status, 200, JSON.stringify(c.body))
    assert.equal(c.body.devices.length, 1)
    assert.equal(c.body.devices[0].fallback, false)
    got.push(c.body.devices[0].prekey.key_id)
  }
  assert.deepEqual(got.sort(), ['o1', 'o2', 'o3'], 'each one-time key once')
  const last = await server.api('POST', '/v1/keys/claim', b.token, { user: a.userId })
  assert.equal(last.body.devices[0].fallback, true, 'the pool is empty: the last-resort key')
  assert.equal(last.body.devices[0].prekey.key_id, 'f1')
  // Below MQCHAT_E2EE_PREKEYS_LOW (2) after a claim: asked for more.
  const low = await A.waitEvent('a keys event asking for prekeys', (e) => e.type === 'keys' && e.reason === 'prekeys_low')
  assert.equal(typeof low.count, 'number')
  // Refilled: the pool serves again.
  assert.deepEqual((await server.api('PUT', '/v1/keys', a.token, { one_time_keys: [k.prekey('o4')] })).body, { one_time_keys: 1 })
  assert.equal((await server.api('POST', '/v1/keys/claim', b.token, { user: a.userId })).body.devices[0].prekey.key_id, 'o4')
  // Five claims so far; the sixth is the last MQCHAT_E2EE_CLAIMS_PER_10_MINUTES (6) allows, the seventh is refused.
  assert.equal((await server.api('POST', '/v1/keys/claim', b.token, { user: a.userId })).status, 200)
  const over = await server.api('POST', '/v1/keys/claim', b.token, { user: a.userId })
  assert.equal(over.status, 429)
  assert.equal(over.body.error.code, 'rate_limited')
})

test('signatures are checked: another key, another device\'s text, a tampered key are refused and change nothing', async () => {
  const k = new Keys(b.deviceId)
  const other = generateKeyPairSync('ed25519')
  const refused = async (body: object, code: string): Promise<void> => {
    const r = await server.api('PUT', '/v1/keys', b.token, body)
    assert.equal(r.status, 400, JSON.stringify(r.body))
    assert.equal(r.body.error.code, code)
  }
  await refused({ identity_key: k.identityKey, signing_key: k.signingKey, identity_signature: k.sign(`mqchat-identity\n${b.deviceId}\n${k.identityKey}`, other.privateKey) }, 'bad_signature')
  await refused({ identity_key: k.identityKey, signing_key: k.signingKey, identity_signature: k.sign(`mqchat-identity\n${a.deviceId}\n${k.identityKey}`) }, 'bad_signature')
  await refused({ ...k.identity(), one_time_keys: [k.prekey('x', a.deviceId)] }, 'bad_signature')
  const tampered = { ...k.prekey('t'), key: randomBytes(32).toString('base64') }
  await refused({ ...k.identity(), fallback_key: tampered }, 'bad_signature')
  await refused({ one_time_keys: [k.prekey('n')] }, 'bad_request')
  await refused({ identity_key: 'short', signing_key: k.signingKey, identity_signature: 'x' }, 'bad_request')
  assert.deepEqual((await server.api('GET', `/v1/keys/users/${b.userId}`, a.token)).body.devices, [], 'nothing was stored')
  // A device holds at most MQCHAT_E2EE_MAX_PREKEYS (8): nine at once is refused whole.
  const nine = await server.api('PUT', '/v1/keys', b.token, { ...k.identity(), one_time_keys: Array.from({ length: 9 }, (_, i) => k.prekey(`p${i}`)) })
  assert.equal(nine.status, 400)
  assert.equal((await server.api('PUT', '/v1/keys', b.token, { ...k.identity(), one_time_keys: Array.from({ length: 8 }, (_, i) => k.prekey(`p${i}`)) })).status, 200)
  const full = await server.api('PUT', '/v1/keys', b.token, { one_time_keys: [k.prekey('p9')] })
  assert.equal(full.status, 409)
  assert.equal(full.body.error.code, 'limit_reached')
})

test('only users sharing a chat reach each other\'s keys, and only members list a chat\'s devices', async () => {
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  for (const [method, path, body] of [['GET', `/v1/keys/users/${a.userId}`, undefined], ['POST', '/v1/keys/claim', { user: a.userId }], ['GET', `/v1/keys/chats/${chat}`, undefined]] as const) {
    const r = await server.api(method, path, stranger.token, body)
    assert.equal(r.status, 404, `${method} ${path}`)
  }
})

test('a chat\'s devices are its members\' devices with keys, with the identity keys to encrypt to; a claim may name the devices it wants', async () => {
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  const b2 = await server.link(b, 'b tablet')
  const keysB = await new Keys(b.deviceId).publish(server, b.token, 2)
  const keysB2 = await new Keys(b2.deviceId).publish(server, b2.token, 2)
  const listed = (await server.api('GET', `/v1/keys/chats/${chat}`, a.token)).body
  const byDevice = Object.fromEntries(listed.devices.map((d: { device_id: string, user_id: string, identity_key: string }) => [d.device_id, d]))
  assert.deepEqual(byDevice[b.deviceId], { user_id: b.userId, device_id: b.deviceId, identity_key: keysB.identityKey })
  assert.deepEqual(byDevice[b2.deviceId], { user_id: b.userId, device_id: b2.deviceId, identity_key: keysB2.identityKey })
  assert.equal(byDevice[a.deviceId], undefined, 'the caller is left out')
  // Claiming one device's keys leaves the other's pool alone.
  const claimed = (await server.api('POST', '/v1/keys/claim', a.token, { user: b.userId, devices: [b2.deviceId] })).body.devices
  assert.deepEqual(claimed.map((d: { device_id: string }) => d.device_id), [b2.deviceId])
  assert.equal((await server.api('GET', '/v1/keys/count', b.token)).body.one_time_keys, 2)
  assert.equal((await server.api('GET', '/v1/keys/count', b2.token)).body.one_time_keys, 1)
  assert.equal((await server.api('DELETE', `/v1/devices/${b2.deviceId}`, b.token)).status, 204)
  await waitFor('the revoked device to leave the chat\'s devices', async () =>
    !(await server.api('GET', `/v1/keys/chats/${chat}`, a.token)).body.devices.some((d: { device_id: string }) => d.device_id === b2.deviceId) || undefined)
})

test('a new identity key reaches the user\'s contacts as a keys event, and drops the prekeys made with the old one', async () => {
  const before = B.of('keys').length
  const k2 = new Keys(a.deviceId)
  assert.equal((await server.api('PUT', '/v1/keys', a.token, { ...k2.identity(), fallback_key: k2.prekey('f2') })).status, 200)
  const e = await B.waitEvent('the identity change', (x) => x.type === 'keys' && x.reason === 'identity_changed' && x.device === a.deviceId && B.of('keys').indexOf(x) >= before)
  assert.equal(e.user, a.userId)
  assert.deepEqual((await server.api('GET', '/v1/keys/count', a.token)).body, { one_time_keys: 0, max_one_time_keys: 8, fallback_key: true })
  assert.equal((await server.api('GET', `/v1/keys/users/${a.userId}`, b.token)).body.devices[0].identity_key, k2.identityKey)
})

test('a new device\'s first keys reach its contacts; a revoked device\'s keys are gone', async () => {
  const laptop = await server.link(a, 'laptop')
  const k = new Keys(laptop.deviceId)
  assert.equal((await server.api('PUT', '/v1/keys', laptop.token, { ...k.identity(), one_time_keys: [k.prekey('l1')] })).status, 200)
  await B.waitEvent('the new device', (x) => x.type === 'keys' && x.reason === 'new_device' && x.device === laptop.deviceId)
  assert.equal((await server.api('GET', `/v1/keys/users/${a.userId}`, b.token)).body.devices.length, 2)
  assert.equal((await server.api('DELETE', `/v1/devices/${laptop.deviceId}`, a.token)).status, 204)
  await waitFor('the revoked device to leave the list', async () => (await server.api('GET', `/v1/keys/users/${a.userId}`, b.token)).body.devices.length === 1 || undefined)
  // And from the store: identity and prekeys.
  const db = new DatabaseSync(join(server.dataDir, 'mqchat.db'), { readOnly: true })
  try {
    await waitFor('the revoked device\'s keys to be deleted', () =>
      (db.prepare('SELECT count(*) AS n FROM device_keys WHERE device_id = ?').get(laptop.deviceId) as { n: number }).n === 0 &&
      (db.prepare('SELECT count(*) AS n FROM one_time_keys WHERE device_id = ?').get(laptop.deviceId) as { n: number }).n === 0)
  } finally { db.close() }
})
