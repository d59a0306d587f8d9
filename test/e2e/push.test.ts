// Push notifications (docs/protocol.md, "Push") against local servers that
// play FCM, APNs and a Web Push / UnifiedPush service strictly
// (test/helpers/push-providers.ts): they verify the OAuth and APNs JWTs and
// VAPID, and decrypt Web Push payloads with the subscription's private key.
// User B has four devices, one per provider; they are away unless a test
// connects one. A writes to B.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import webpush from 'web-push'
import { writeFileSync } from 'node:fs'
import { Device, TestServer, cli, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { startProviders, type Subscription } from '../helpers/push-providers.js'

const COALESCE_SECONDS = 4
const dir = mkdtempSync(join(tmpdir(), 'mqchat-push-'))
const vapid = webpush.generateVAPIDKeys()
let providers: Awaited<ReturnType<typeof startProviders>>
let server: TestServer
let a: DeviceCreds
let bPhone: DeviceCreds, bApple: DeviceCreds, bWeb: DeviceCreds, bUp: DeviceCreds
let A: Device
const fcmToken = 'fcm-token-' + 'x'.repeat(40)
const apnsToken = 'ab'.repeat(32)
let webSub: Subscription, upSub: Subscription

before(async () => {
  providers = await startProviders(dir, vapid.publicKey)
  server = new TestServer({
    NODE_EXTRA_CA_CERTS: providers.caFile,
    MQCHAT_PUSH_COALESCE_SECONDS: String(COALESCE_SECONDS),
    MQCHAT_PUSH_ALLOW_INSECURE_ENDPOINTS: 'true',
    MQCHAT_PUSH_FCM_SERVICE_ACCOUNT: providers.fcm.keyFile,
    MQCHAT_PUSH_FCM_URL: providers.fcm.url,
    MQCHAT_PUSH_APNS_KEY: providers.apns.keyFile,
    MQCHAT_PUSH_APNS_KEY_ID: providers.apns.keyId,
    MQCHAT_PUSH_APNS_TEAM_ID: providers.apns.teamId,
    MQCHAT_PUSH_APNS_URL: providers.apns.url,
    MQCHAT_PUSH_VAPID_PUBLIC_KEY: vapid.publicKey,
    MQCHAT_PUSH_VAPID_PRIVATE_KEY: vapid.privateKey,
    MQCHAT_PUSH_VAPID_SUBJECT: 'mailto:ops@mqchat.test',
    MQCHAT_PUBLISH_BURST: '200'
  })
  await server.start()
  a = await server.register('+15552100001')
  bPhone = await server.register('+15552100002')
  bApple = await server.link(bPhone, 'iphone')
  bWeb = await server.link(bPhone, 'browser')
  bUp = await server.link(bPhone, 'unifiedpush')
  webSub = providers.push.subscribe(true)
  upSub = providers.push.subscribe(false)
  const add = async (d: DeviceCreds, body: object): Promise<void> => {
    const r = await server.api('POST', '/v1/push/targets', d.token, body)
    assert.equal(r.status, 201, JSON.stringify(r.body))
  }
  await add(bPhone, { type: 'fcm', token: fcmToken })
  await add(bApple, { type: 'apns', token: apnsToken, topic: providers.apns.topic, environment: 'sandbox' })
  await add(bWeb, { type: 'webpush', endpoint: webSub.endpoint, keys: webSub.keys })
  await add(bUp, { type: 'unifiedpush', endpoint: upSub.endpoint })
  A = await new Device(server, a).connect()
})

after(async () => {
  await A?.close()
  await server?.dispose()
  await providers?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function directChat (): Promise<string> {
  const r = await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: bPhone.userId })
  return r.body.chat_id as string
}
let groups = 0
async function newGroup (): Promise<string> {
  const r = await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: `group ${++groups}`, members: [bPhone.userId] })
  assert.equal(r.status, 201)
  return r.body.chat_id as string
}

/** Sends n messages from A at once (pipelined QoS 1 publishes) and waits for their acks. */
async function burst (chat: string, n: number, tag: string): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => A.publish(chat, { id: `${tag}-${i}`, body: `secret text ${tag} ${i}` })))
  await waitFor(`acks of ${tag}`, () => A.of('ack', chat).filter((e) => String(e.id).startsWith(`${tag}-`)).length >= n)
}

/** The message pushes (not chat changes) in `list` for `chat`. */
const forChat = (list: Array<{ payload: Record<string, unknown> }>, chat: string): Array<Record<string, unknown>> =>
  list.map((r) => r.payload).filter((p) => p.chat === chat && p.type === 'message')

const metric = async (name: string, labels: string): Promise<number> => await server.metric(name, labels)

test('GET /v1/info names the providers and the VAPID public key; a device lists its targets, never their keys', async () => {
  const info = await server.api('GET', '/v1/info')
  assert.deepEqual(info.body.push, { providers: ['fcm', 'apns', 'webpush', 'unifiedpush'], vapid_public_key: vapid.publicKey })
  const mine = await server.api('GET', '/v1/push/targets', bWeb.token)
  assert.equal(mine.status, 200)
  assert.equal(mine.body.targets.length, 1)
  assert.deepEqual(Object.keys(mine.body.targets[0]).sort(), ['created_at', 'encrypted', 'endpoint', 'target_id', 'type'])
  assert.equal(mine.body.targets[0].encrypted, true)
  // Registering the same address again is the same target.
  const again = await server.api('POST', '/v1/push/targets', bWeb.token, { type: 'webpush', endpoint: webSub.endpoint, keys: webSub.keys })
  assert.equal(again.body.target_id, mine.body.targets[0].target_id)
  assert.equal((await server.api('GET', '/v1/push/targets', bWeb.token)).body.targets.length, 1)
})

test('a burst of 20 messages to away devices: one push per device and provider, a wake-up without the text; after the window, one more', async () => {
  const chat = await directChat()
  await burst(chat, 20, 'burst')
  await waitFor('a push on each provider', () =>
    forChat(providers.fcm.for(fcmToken), chat).length >= 1 && forChat(providers.apns.for(apnsToken), chat).length >= 1 &&
    forChat(providers.push.for(webSub.id), chat).length >= 1 && forChat(providers.push.for(upSub.id), chat).length >= 1, 15_000)
  // All 20 were stored within the window (the premise of "one push"): the last ack's server time is close to the first's.
  const ts = A.of('ack', chat).map((e) => Number(e.ts))
  assert.ok(Math.max(...ts) - Math.min(...ts) < COALESCE_SECONDS * 1000, `the burst took ${Math.max(...ts) - Math.min(...ts)} ms`)
  const fcm = forChat(providers.fcm.for(fcmToken), chat)
  const apns = forChat(providers.apns.for(apnsToken), chat)
  const web = forChat(providers.push.for(webSub.id), chat)
  const up = forChat(providers.push.for(upSub.id), chat)
  // FCM: data only, strings; APNs: a background push; both a wake-up: chat, seq, count.
  assert.equal(fcm[0]!.type, 'message')
  assert.equal(fcm[0]!.count, String(Number(fcm[0]!.seq)))
  assert.deepEqual(Object.keys(fcm[0]!).sort(), ['chat', 'count', 'seq', 'type'])
  assert.deepEqual(Object.keys(apns[0]!).sort(), ['aps', 'chat', 'count', 'seq', 'type'])
  // Web Push, decrypted by the test service with the subscription's key: the sender too, never the body.
  assert.equal(web[0]!.sender, a.userId)
  assert.ok(!JSON.stringify(web[0]).includes('secret text'), 'no message text in a push')
  // UnifiedPush without keys: the distributor sees the wake-up alone.
  assert.deepEqual(Object.keys(up[0]!).sort(), ['chat', 'count', 'seq', 'type'])
  for (const all of [providers.fcm.received, providers.apns.received, providers.push.received]) assert.ok(!JSON.stringify(all).includes('secret text'))
  // The collapse key is the same for the chat on every provider that has one.
  const isMessage = (r: { payload: Record<string, unknown> }): boolean => r.payload.chat === chat && r.payload.type === 'message'
  const fcmFirst = providers.fcm.for(fcmToken).find(isMessage)!
  const apnsFirst = providers.apns.for(apnsToken).find(isMessage)!
  assert.equal(apnsFirst.headers['apns-collapse-id'], providers.push.for(webSub.id).find(isMessage)!.headers.topic)
  // Still one each once the window has passed for all of them; then a new message pushes again, counting all 21.
  const lastFirst = Math.max(...[fcmFirst, apnsFirst].map((r) => r.at), ...providers.push.received.filter(isMessage).map((r) => r.at))
  await waitFor('the coalescing window to pass', () => Date.now() > lastFirst + COALESCE_SECONDS * 1000 + 100, (COALESCE_SECONDS + 5) * 1000)
  for (const list of [forChat(providers.fcm.for(fcmToken), chat), forChat(providers.apns.for(apnsToken), chat), forChat(providers.push.for(webSub.id), chat), forChat(providers.push.for(upSub.id), chat)]) {
    assert.equal(list.length, 1, 'one push for the burst')
  }
  await burst(chat, 1, 'after')
  await waitFor('a second push on each provider', () =>
    forChat(providers.fcm.for(fcmToken), chat).length >= 2 && forChat(providers.apns.for(apnsToken), chat).length >= 2 &&
    forChat(providers.push.for(webSub.id), chat).length >= 2 && forChat(providers.push.for(upSub.id), chat).length >= 2, 15_000)
  const second = forChat(providers.push.for(webSub.id), chat)[1]!
  assert.equal(second.seq, 21)
  assert.equal(second.count, 21, 'none of the 21 received yet')
})

test('a device that is connected gets no push; its user\'s away devices do', async () => {
  const chat = await newGroup()
  const online = await new Device(server, bPhone).connect()
  try {
    const before = providers.fcm.for(fcmToken).length
    const connectedSkips = await metric('mqchat_push_dropped_total', 'reason="connected"')
    await burst(chat, 1, 'online')
    await online.waitEvent('the message over MQTT', (e) => e.type === 'msg' && e.chat === chat)
    await waitFor('the away devices\' pushes', () => forChat(providers.apns.for(apnsToken), chat).length >= 1 && forChat(providers.push.for(webSub.id), chat).length >= 1)
    await waitFor('the connected device to be passed over', async () => (await metric('mqchat_push_dropped_total', 'reason="connected"')) > connectedSkips || undefined)
    assert.equal(providers.fcm.for(fcmToken).length, before, 'no push to the connected device')
  } finally { await online.close() }
})

test('a muted chat is not pushed; unmuted, it is again', async () => {
  const chat = await newGroup()
  const until = Date.now() + 3600_000
  const r = await server.api('PATCH', `/v1/chats/${chat}/settings`, bPhone.token, { muted_until: until })
  assert.deepEqual(r.body, { muted_until: until, archived: false, pinned: false })
  assert.deepEqual((await server.api('GET', `/v1/chats/${chat}/settings`, bApple.token)).body, { muted_until: until, archived: false, pinned: false }, 'the same on every device of the user')
  const muted = await metric('mqchat_push_dropped_total', 'reason="muted"')
  await burst(chat, 1, 'muted')
  await waitFor('the four pushes to be passed over as muted', async () => (await metric('mqchat_push_dropped_total', 'reason="muted"')) >= muted + 4 || undefined)
  for (const list of [providers.fcm.for(fcmToken), providers.apns.for(apnsToken), providers.push.for(webSub.id), providers.push.for(upSub.id)]) {
    assert.deepEqual(forChat(list, chat), [])
  }
  assert.equal((await server.api('PATCH', `/v1/chats/${chat}/settings`, bPhone.token, { muted_until: null })).status, 200)
  await burst(chat, 1, 'unmuted')
  await waitFor('a push once unmuted', () => forChat(providers.fcm.for(fcmToken), chat).length >= 1)
  // Only members have settings for a chat; a bad time is refused.
  assert.equal((await server.api('PATCH', '/v1/chats/g_0123456789abcdef/settings', bPhone.token, { muted_until: null })).status, 404)
  assert.equal((await server.api('PATCH', `/v1/chats/${chat}/settings`, bPhone.token, { muted_until: -5 })).status, 400)
})

test('being added to a group pushes once, a chat push apart from the messages\' ones', async () => {
  const chat = await newGroup()
  await waitFor('the chat push', () => providers.push.for(webSub.id).some((r) => r.payload.chat === chat && r.payload.type === 'chat'))
  const p = providers.push.for(webSub.id).find((r) => r.payload.chat === chat)!.payload
  assert.equal(providers.push.for(webSub.id).filter((r) => r.payload.chat === chat).length, 1)
  assert.equal(p.chat_name, `group ${groups}`)
  assert.equal(p.sender, a.userId)
})

test('a 503 with Retry-After is retried and then succeeds', async () => {
  const chat = await newGroup()
  providers.push.failing(webSub.id, 503, 2, '1')
  const requests = providers.push.requests
  await burst(chat, 1, 'retry')
  await waitFor('the push after two 503s', () => forChat(providers.push.for(webSub.id), chat).some((p) => p.type === 'message'), 20_000)
  assert.ok(providers.push.requests - requests >= 3, 'two refused tries, then the one that went through')
  assert.ok(await metric('mqchat_push_failed_total', 'provider="webpush",reason="http 503"') >= 2)
})

test('a target its provider calls gone (FCM UNREGISTERED, APNs 410 Unregistered, a push service\'s 410) is removed', async () => {
  const phone = await server.link(a, 'a-phone')
  const token = 'fcm-gone-' + 'y'.repeat(40)
  assert.equal((await server.api('POST', '/v1/push/targets', phone.token, { type: 'fcm', token })).status, 201)
  providers.fcm.gone(token)
  providers.apns.gone(apnsToken)
  providers.push.gone(upSub.id)
  // A writes nothing to itself: B writes to A's away device from an MQTT connection of its own.
  const chat = await newGroup()
  const B = await new Device(server, bPhone).connect()
  try {
    await B.publish(chat, { id: 'to-a', body: 'hello' })
    await B.waitEvent('its ack', (e) => e.type === 'ack' && e.id === 'to-a')
  } finally { await B.close() }
  await waitFor('the FCM target to be removed', async () => (await server.api('GET', '/v1/push/targets', phone.token)).body.targets.length === 0 || undefined, 15_000)
  await burst(chat, 1, 'gone')
  await waitFor('the APNs target to be removed', async () => (await server.api('GET', '/v1/push/targets', bApple.token)).body.targets.length === 0 || undefined, 15_000)
  await waitFor('the UnifiedPush target to be removed', async () => (await server.api('GET', '/v1/push/targets', bUp.token)).body.targets.length === 0 || undefined, 15_000)
  assert.ok(providers.fcm.rejected.includes('Requested entity was not found.'))
  assert.ok(providers.apns.rejected.includes('Unregistered'))
  // Registered again (a new token from the app): it works.
  assert.equal((await server.api('POST', '/v1/push/targets', bApple.token, { type: 'apns', token: 'cd'.repeat(32), topic: providers.apns.topic })).status, 201)
})

test('registrations are checked: a bad token, an endpoint without keys, more than the limit per device; a removed target is gone', async () => {
  const d = await server.link(a, 'checks')
  const bad = async (body: object, code = 'bad_request'): Promise<void> => {
    const r = await server.api('POST', '/v1/push/targets', d.token, body)
    assert.equal(r.status, code === 'limit_reached' ? 409 : 400, JSON.stringify(r.body))
    assert.equal(r.body.error.code, code)
  }
  await bad({ type: 'fcm', token: 'short' })
  await bad({ type: 'apns', token: 'zz'.repeat(32), topic: 'org.x' })
  await bad({ type: 'apns', token: apnsToken })
  await bad({ type: 'webpush', endpoint: webSub.endpoint })
  await bad({ type: 'webpush', endpoint: webSub.endpoint, keys: { p256dh: 'AAAA', auth: webSub.keys.auth } })
  await bad({ type: 'unifiedpush', endpoint: 'ftp://example.org/x' })
  await bad({ type: 'fcm', token: fcmToken, endpoint: 'https://example.org/' })
  await bad({ type: 'sms', token: fcmToken })
  for (let i = 0; i < 5; i++) assert.equal((await server.api('POST', '/v1/push/targets', d.token, { type: 'fcm', token: `limit-token-${i}-${'z'.repeat(30)}` })).status, 201)
  await bad({ type: 'fcm', token: `limit-token-5-${'z'.repeat(30)}` }, 'limit_reached')
  const list = (await server.api('GET', '/v1/push/targets', d.token)).body.targets as Array<{ target_id: string }>
  assert.equal((await server.api('DELETE', `/v1/push/targets/${list[0]!.target_id}`, d.token)).status, 204)
  assert.equal((await server.api('DELETE', `/v1/push/targets/${list[0]!.target_id}`, d.token)).status, 404)
  assert.equal((await server.api('DELETE', `/v1/push/targets/${list[1]!.target_id}`, bPhone.token)).status, 404, 'another device\'s target')
  // A revoked device's targets go with it.
  assert.equal((await server.api('DELETE', `/v1/devices/${d.deviceId}`, a.token)).status, 204)
  const db = new DatabaseSync(join(server.dataDir, 'mqchat.db'), { readOnly: true })
  try {
    await waitFor('the revoked device\'s targets to be removed', () => (db.prepare('SELECT count(*) AS n FROM push_targets WHERE device_id = ?').get(d.deviceId) as { n: number }).n === 0)
  } finally { db.close() }
})

test('mqchat push add|list|remove, and mute|unmute, as a tester would use them (a UnifiedPush endpoint)', async () => {
  const home = tempDir('mqchat-push-cli-')
  const d = await server.link(a, 'cli')
  writeFileSync(join(home, 'd.json'), JSON.stringify({ server: server.url, user_id: d.userId, device_id: d.deviceId, token: d.token }))
  const sub = providers.push.subscribe(false)
  const added = await cli(home, ['push', 'add', 'unifiedpush', sub.endpoint, '--profile', 'd', '--json'])
  assert.equal(added.code, 0, added.stderr)
  const id = (JSON.parse(added.stdout) as { target_id: string }).target_id
  const listed = await cli(home, ['push', 'list', '--profile', 'd'])
  assert.match(listed.stdout, new RegExp(`${id}  unifiedpush  ${sub.endpoint.replace(/[.?]/g, '\\$&')}`))
  const bad = await cli(home, ['push', 'add', 'apns', 'nothex', '--topic', 'org.x', '--profile', 'd'])
  assert.equal(bad.code, 3, 'refused by the server')
  assert.match(bad.stderr, /bad_request/)
  const chat = await newGroup()
  const unknownSpan = await cli(home, ['mute', chat, '--for', '3d', '--profile', 'd'])
  assert.equal(unknownSpan.code, 2, 'a usage error')
  assert.match(unknownSpan.stderr, /--for takes 8h, 1w or always/)
  const bHome = tempDir('mqchat-push-cli-b-')
  writeFileSync(join(bHome, 'b.json'), JSON.stringify({ server: server.url, user_id: bPhone.userId, device_id: bPhone.deviceId, token: bPhone.token }))
  const m = await cli(bHome, ['mute', chat, '--for', '8h', '--profile', 'b', '--json'])
  assert.equal(m.code, 0, m.stderr)
  const until = (JSON.parse(m.stdout) as { muted_until: number }).muted_until
  assert.ok(until > Date.now() + 7 * 3600_000 && until <= Date.now() + 8 * 3600_000)
  assert.equal((await cli(bHome, ['unmute', chat, '--profile', 'b'])).code, 0)
  assert.deepEqual((await server.api('GET', `/v1/chats/${chat}/settings`, bPhone.token)).body, { muted_until: null, archived: false, pinned: false })
  // A UnifiedPush endpoint with keys, as a distributor that encrypts gives them: the payload is encrypted
  // (RFC 8291, no VAPID) and the test service decrypts it with the key only the device holds.
  const enc = providers.push.subscribe(true, false)
  // base64url keys may start with '-': given as --name=value, as a shell user would have to.
  const withKeys = await cli(home, ['push', 'add', 'unifiedpush', enc.endpoint, `--p256dh=${enc.keys.p256dh}`, `--auth=${enc.keys.auth}`, '--profile', 'd', '--json'])
  assert.equal(withKeys.code, 0, withKeys.stderr)
  assert.equal((JSON.parse(withKeys.stdout) as { encrypted: boolean }).encrypted, true)
  assert.equal((await server.api('POST', `/v1/chats/${chat}/messages`, bPhone.token, { id: 'to-a-devices', body: 'secret for a' })).status, 201)
  await waitFor('the encrypted UnifiedPush push', () => providers.push.for(enc.id).some((r) => r.payload.chat === chat && r.payload.type === 'message'), 15_000)
  const got = providers.push.for(enc.id).find((r) => r.payload.type === 'message')!
  assert.equal(got.payload.sender, bPhone.userId)
  assert.equal(got.headers['content-encoding'], 'aes128gcm')
  assert.ok(!JSON.stringify(got).includes('secret for a'))
  const removed = await cli(home, ['push', 'remove', id, '--profile', 'd'])
  assert.equal(removed.code, 0, removed.stderr)
  assert.equal((await cli(home, ['push', 'remove', (JSON.parse(withKeys.stdout) as { target_id: string }).target_id, '--profile', 'd'])).code, 0)
  assert.match((await cli(home, ['push', 'list', '--profile', 'd'])).stdout, /no push targets/)
})

test('a push service that goes down mid-burst changes nothing for delivery: every message reaches the connected device', async () => {
  const chat = await newGroup()
  const online = await new Device(server, bApple).connect()
  try {
    // The push service goes away in the middle of the burst.
    const sending = burst(chat, 30, 'down')
    await online.waitEvent('the first messages', (e) => e.type === 'msg' && e.chat === chat)
    await providers.push.stop()
    await sending
    const got = await online.waitCount('msg', chat, 30, 20_000)
    assert.deepEqual(got.map((e) => e.seq), Array.from({ length: 30 }, (_, i) => i + 1))
    // The pushes to the away browser failed and are retried in the background; the server answers as before.
    assert.equal((await within('an API call', server.api('GET', '/v1/info'), 10_000)).status, 200)
  } finally { await online.close() }
})

test('without MQCHAT_PUSH_ALLOW_INSECURE_ENDPOINTS an endpoint must be https on a public address; an unconfigured provider is refused', async () => {
  const strict = new TestServer({})
  await strict.start()
  try {
    const d = await strict.register('+15552100099')
    const refused = async (body: object, code: string): Promise<void> => {
      const r = await strict.api('POST', '/v1/push/targets', d.token, body)
      assert.equal(r.status, 400, JSON.stringify(r.body))
      assert.equal(r.body.error.code, code, JSON.stringify(r.body))
    }
    for (const endpoint of ['http://push.example.org/up/1', 'https://127.0.0.1/up/1', 'https://localhost:8443/up/1', 'https://10.1.2.3/up', 'https://[::1]/up', 'https://169.254.169.254/latest/meta-data', 'https://user:pw@push.example.org/up']) {
      await refused({ type: 'unifiedpush', endpoint }, 'bad_request')
    }
    // Only UnifiedPush needs no credentials: the others are not configured here.
    await refused({ type: 'fcm', token: fcmToken }, 'push_unavailable')
    await refused({ type: 'webpush', endpoint: 'https://push.example.org/w/1', keys: webSub.keys }, 'push_unavailable')
    const ok = await strict.api('POST', '/v1/push/targets', d.token, { type: 'unifiedpush', endpoint: 'https://ntfy.example.org/upABC?up=1' })
    assert.equal(ok.status, 201, JSON.stringify(ok.body))
    assert.deepEqual((await strict.api('GET', '/v1/info')).body.push, { providers: ['unifiedpush'] })
  } finally { await strict.dispose() }
})
