// Encrypted envelopes and e2ee-required chats against a real server
// (docs/protocol.md, "End-to-end encryption"): what the server checks and
// how it delivers. The ciphertexts here are opaque random bytes (the server
// never decrypts anything); the CLI's tests encrypt for real.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Device, TestServer, type DeviceCreds } from '../helpers/server.js'
import { Keys } from '../helpers/keys.js'

const server = new TestServer()
let a: DeviceCreds, b: DeviceCreds, b2: DeviceCreds, a2: DeviceCreds, noKeys: DeviceCreds
let A2: Device, B: Device, B2: Device
let chat: string, group: string
let senderKey: string
const ct = (): string => randomBytes(48).toString('base64')

before(async () => {
  await server.start()
  a = await server.register('+15552400001')
  b = await server.register('+15552400002')
  a2 = await server.link(a, 'a laptop')
  b2 = await server.link(b, 'b laptop')
  noKeys = await server.link(b, 'an old client without keys')
  for (const d of [a, a2, b, b2]) {
    const k = await new Keys(d.deviceId).publish(server, d.token)
    if (d === a) senderKey = k.identityKey
  }
  const r = await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId, e2ee: 'required' })
  assert.equal(r.status, 201)
  assert.equal(r.body.e2ee, 'required')
  chat = r.body.chat_id
  group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'secret group', members: [b.userId], e2ee: 'required' })).body.chat_id
  A2 = await new Device(server, a2).connect()
  B = await new Device(server, b).connect()
  B2 = await new Device(server, b2).connect()
})
after(async () => {
  for (const d of [A2, B, B2]) await d?.close()
  await server.dispose()
})

const send = (creds: DeviceCreds, chatId: string, envelope: object): Promise<{ status: number, body: any }> => server.api('POST', `/v1/chats/${chatId}/messages`, creds.token, envelope)

test('an e2ee-required chat refuses plaintext content (e2ee_required), over HTTP and MQTT, and can be turned on for an existing chat', async () => {
  const r = await send(a, chat, { id: 'plain-1', body: 'hello in the clear' })
  assert.equal(r.status, 400)
  assert.equal(r.body.error.code, 'e2ee_required')
  await B.publish(chat, { id: 'plain-mqtt', body: 'also in the clear' })
  const e = await B.waitEvent('the refusal', (x) => x.type === 'error' && x.id === 'plain-mqtt')
  assert.equal(e.code, 'e2ee_required')
  assert.equal((await send(a, chat, { id: 'plain-react', type: 'reaction', ref: 1, body: '👍' })).body.error.code, 'e2ee_required')
  // A plaintext chat turned into an e2ee one: from then on, the same.
  const open = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'open', members: [b.userId] })).body.chat_id as string
  assert.equal((await send(a, open, { id: 'before', body: 'fine' })).status, 201)
  const patched = await server.api('PATCH', `/v1/chats/${open}`, a.token, { e2ee: 'required' })
  assert.equal(patched.body.e2ee, 'required')
  await B.waitEvent('the chat change', (x) => x.type === 'chat' && x.chat === open && x.change === 'e2ee_required')
  assert.equal((await send(a, open, { id: 'after', body: 'refused now' })).body.error.code, 'e2ee_required')
  assert.equal((await server.api('PATCH', `/v1/chats/${open}`, b.token, { e2ee: 'required' })).status, 403, 'groups: admins only')
})

test('a pairwise message must name exactly the devices with keys; each device gets only its own ciphertext; a fixed resend under the same id is stored once', async () => {
  // a's laptop, b's phone and laptop have keys; b's third device has none, so it is not addressed.
  const full = { [a2.deviceId]: { type: 0, body: ct() }, [b.deviceId]: { type: 0, body: ct() }, [b2.deviceId]: { type: 0, body: ct() } }
  const partial = { [b.deviceId]: full[b.deviceId] }
  const mismatch = await send(a, chat, { id: 'e-1', e2ee: { sender_key: senderKey, olm: partial } })
  assert.equal(mismatch.status, 409)
  assert.equal(mismatch.body.error.code, 'devices_mismatch')
  assert.deepEqual(mismatch.body.error.missing.sort(), [a2.deviceId, b2.deviceId].sort())
  assert.deepEqual(mismatch.body.error.extra, [])
  // An unknown device is extra; the device without keys is not expected either.
  const extra = await send(a, chat, { id: 'e-1', e2ee: { sender_key: senderKey, olm: { ...full, dv_0123456789abcdef: { type: 0, body: ct() }, [noKeys.deviceId]: { type: 0, body: ct() } } } })
  assert.deepEqual(extra.body.error.extra.sort(), ['dv_0123456789abcdef', noKeys.deviceId].sort())
  // The sender key must be the sending device's published identity key.
  const forged = await send(a, chat, { id: 'e-1', e2ee: { sender_key: randomBytes(32).toString('base64'), olm: full } })
  assert.equal(forged.status, 400)
  assert.match(forged.body.error.message, /sender_key/)
  // Fixed, the same client id: stored once.
  const ok = await send(a, chat, { id: 'e-1', e2ee: { sender_key: senderKey, olm: full } })
  assert.equal(ok.status, 201, JSON.stringify(ok.body))
  const again = await send(a, chat, { id: 'e-1', e2ee: { sender_key: senderKey, olm: full } })
  assert.equal(again.body.seq, ok.body.seq)
  assert.equal(again.body.duplicate, true)
  // Delivery: each device its own ciphertext, and nothing else of the others'.
  for (const [dev, creds] of [[B, b], [B2, b2], [A2, a2]] as const) {
    const m = await dev.waitEvent('the encrypted message', (x) => x.type === 'msg' && x.id === 'e-1')
    assert.deepEqual(m.body, { e2ee: { olm: { [creds.deviceId]: full[creds.deviceId] }, sender_key: senderKey } })
  }
  // History and sync, the same per device.
  const h = await server.api('GET', `/v1/chats/${chat}/messages?after=0`, b2.token)
  assert.deepEqual(h.body.messages.find((m: { id: string }) => m.id === 'e-1').body.e2ee.olm, { [b2.deviceId]: full[b2.deviceId] })
  const s = await server.api('POST', '/v1/sync', noKeys.token, {})
  const seen = s.body.chats.find((c: { chat_id: string }) => c.chat_id === chat).messages.find((m: { id: string }) => m.id === 'e-1')
  assert.deepEqual(seen.body.e2ee.olm, {}, 'a device it was not encrypted for gets no ciphertext')
  // A delete carries no content: it needs no encryption.
  assert.equal((await send(a, chat, { id: 'del-1', type: 'delete', ref: ok.body.seq })).status, 201)
})

test('a revoked device still addressed is stale; a group message is one ciphertext for every device; session keys go pairwise only', async () => {
  const gone = await server.link(b, 'to revoke')
  await new Keys(gone.deviceId).publish(server, gone.token)
  assert.equal((await server.api('DELETE', `/v1/devices/${gone.deviceId}`, b.token)).status, 204)
  const olm = { [a2.deviceId]: { type: 1, body: ct() }, [b.deviceId]: { type: 1, body: ct() }, [b2.deviceId]: { type: 1, body: ct() }, [gone.deviceId]: { type: 0, body: ct() } }
  const stale = await send(a, chat, { id: 'e-2', e2ee: { sender_key: senderKey, olm } })
  assert.equal(stale.body.error.code, 'devices_mismatch')
  assert.deepEqual(stale.body.error.stale, [gone.deviceId])
  // A group message: one Megolm ciphertext, the same for everyone.
  const megolm = { session: 'session-1', body: ct() }
  assert.equal((await send(a, group, { id: 'g-1', e2ee: { sender_key: senderKey, megolm } })).status, 201)
  for (const dev of [B, B2, A2]) {
    const m = await dev.waitEvent('the group message', (x) => x.type === 'msg' && x.id === 'g-1')
    assert.deepEqual(m.body, { e2ee: { megolm, sender_key: senderKey } })
  }
  // The sender key itself travels pairwise, as a `session` message.
  const bad = await send(a, group, { id: 's-0', type: 'session', e2ee: { sender_key: senderKey, megolm } })
  assert.equal(bad.status, 400)
  const session = await send(a, group, { id: 's-1', type: 'session', e2ee: { sender_key: senderKey, olm: { [a2.deviceId]: { type: 0, body: ct() }, [b.deviceId]: { type: 0, body: ct() }, [b2.deviceId]: { type: 0, body: ct() } } } })
  assert.equal(session.status, 201, JSON.stringify(session.body))
  // A group key goes to the devices that lack it (a new device, a new member): some of the chat's devices will do, none outside it.
  assert.equal((await send(a, group, { id: 's-2', type: 'session', e2ee: { sender_key: senderKey, olm: { [b2.deviceId]: { type: 0, body: ct() } } } })).status, 201)
  const outside = await send(a, group, { id: 's-3', type: 'session', e2ee: { sender_key: senderKey, olm: { [b2.deviceId]: { type: 0, body: ct() }, [noKeys.deviceId]: { type: 0, body: ct() } } } })
  assert.equal(outside.body.error.code, 'devices_mismatch')
  assert.deepEqual(outside.body.error.extra, [noKeys.deviceId])
  // A text is never addressed to part of the chat.
  assert.equal((await send(a, group, { id: 's-4', e2ee: { sender_key: senderKey, olm: { [b2.deviceId]: { type: 0, body: ct() } } } })).body.error.code, 'devices_mismatch')
  // Malformed: both kinds, a body as well, a bad device id.
  for (const e2ee of [{ sender_key: senderKey, olm: { [b.deviceId]: { type: 0, body: ct() } }, megolm }, { sender_key: 'short', megolm }, { sender_key: senderKey, olm: { 'not-a-device': { type: 0, body: ct() } } }]) {
    assert.equal((await send(a, group, { id: 'bad', e2ee })).status, 400)
  }
  assert.equal((await send(a, group, { id: 'bad', body: 'x', e2ee: { sender_key: senderKey, megolm } })).status, 400)
  // An encrypted message is not forwarded by the server (its ciphertexts are for this chat's devices).
  const fwd = await server.api('POST', `/v1/chats/${group}/messages/${stale.body.seq ?? 1}/forward`, a.token, { to: [chat], id: 'fwd' })
  assert.equal(fwd.status, 400)
})
