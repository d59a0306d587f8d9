// Presence: online while any device is connected, offline with last seen on
// the last disconnect or a keepalive timeout; retained on presence/<userId>,
// visible only to contacts; flapping coalesced; never from wills.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import { rmSync, writeFileSync } from 'node:fs'
import { TestServer, Device, cli, tempDir, waitFor, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer({ MQCHAT_PRESENCE_COALESCE_MS: '1000' })
let w: DeviceCreds, b: DeviceCreds, b2: DeviceCreds, stranger: DeviceCreds

before(async () => {
  await server.start()
  w = await server.register('+15551000001')
  b = await server.register('+15551000002')
  b2 = await server.link(b)
  stranger = await server.register('+15551000003')
  const chat = (await server.api('POST', '/v1/chats', w.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  // B answers, which makes W a contact of B's (W opened the chat: B is one of W's already).
  assert.equal((await server.api('POST', `/v1/chats/${chat}/messages`, b.token, { id: 'hello', body: 'hello' })).status, 201)
})
after(async () => { await server.dispose() })

const states = (d: Device, user: string) => d.presence.filter((p) => p.user === user)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('online on connect, offline with last seen after the last device leaves', async (t) => {
  const W = await new Device(server, w).connect()
  await W.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })

  const t0 = Date.now()
  const B1 = await new Device(server, b).connect()
  const online = await waitFor('B online', () => states(W, b.userId).find((p) => p.state === 'online'), 5000)
  t.diagnostic(`online seen ${online.at - t0} ms after connecting`)
  assert.equal(online.last_seen, undefined)

  // A second device and its departure change nothing: B is still online.
  const B2 = await new Device(server, b2).connect()
  await sleep(1200)
  await B2.close()
  await sleep(1200)
  assert.deepEqual(states(W, b.userId).map((p) => p.state), ['online'])

  const t1 = Date.now()
  await B1.close()
  const offline = await waitFor('B offline', () => states(W, b.userId).find((p) => p.state === 'offline'), 5000)
  t.diagnostic(`offline seen ${offline.at - t1} ms after the last disconnect`)
  assert.ok(typeof offline.last_seen === 'number' && (offline.last_seen as number) >= t1 - 50 && (offline.last_seen as number) <= offline.at)

  // The retained state is what a newly opened chat screen sees first.
  const W2 = await new Device(server, w).connect({ subscribe: false })
  await W2.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  const retained = await waitFor('retained presence', () => states(W2, b.userId)[0])
  assert.equal(retained.state, 'offline')
  assert.equal(retained.retained, true)
  const http = await server.api('GET', `/v1/users/${b.userId}/presence`, w.token)
  assert.equal(http.body.state, 'offline')
  assert.equal(http.body.last_seen, offline.last_seen)
  const home = tempDir('mqchat-cli-')
  writeFileSync(`${home}/w.json`, JSON.stringify({ server: server.url, user_id: w.userId, device_id: w.deviceId, token: w.token }))
  const shown = await cli(home, ['presence', b.userId, '--profile', 'w'])
  rmSync(home, { recursive: true, force: true })
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stdout, new RegExp(`^${b.userId}: offline, last seen ${new Date(offline.last_seen as number).toISOString()}`))
  await W.close()
  await W2.close()
})

test('a keepalive timeout makes the user offline too', async (t) => {
  const W = await new Device(server, w).connect()
  await W.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  await sleep(1100) // outside the coalescing window of the previous test's publication
  const before = states(W, b.userId).length
  // A raw client that connects with keepalive 1 s and then goes silent.
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  sock.resume() // read (and discard) what the broker sends, so its close is seen
  sock.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: b.deviceId, clean: false, keepalive: 1, username: b.deviceId, password: Buffer.from(b.token) }))
  await waitFor('B online', () => states(W, b.userId).slice(before).find((p) => p.state === 'online'), 5000)
  const silentFrom = Date.now()
  const closed = new Promise((r) => sock.once('close', r))
  const offline = await waitFor('B offline after the keepalive timeout', () => states(W, b.userId).slice(before).find((p) => p.state === 'offline'), 8000)
  await Promise.race([closed, sleep(5000).then(() => { throw new Error('the broker did not close the silent connection') })])
  t.diagnostic(`offline seen ${offline.at - silentFrom} ms after the client went silent (keepalive 1 s: the broker waits 1.5 s)`)
  sock.destroy()
  await W.close()
})

test('flapping within the coalescing window is published once', async () => {
  const W = await new Device(server, w).connect()
  await W.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  await sleep(1100)
  const before = states(W, b.userId).length
  for (let i = 0; i < 4; i++) {
    const B = await new Device(server, b).connect({ subscribe: false })
    await sleep(100)
    await B.close()
    await sleep(100)
  }
  // Ends offline, as it started: at most the online and the final offline, not 8 transitions.
  await sleep(2500)
  const flaps = states(W, b.userId).slice(before)
  assert.ok(flaps.length <= 2, `published ${flaps.length} times: ${flaps.map((p) => p.state).join(', ')}`)
  if (flaps.length > 0) assert.equal(flaps[flaps.length - 1].state, 'offline')
  await W.close()
})

test('a user who is not a contact is refused the subscription and the lookup; last seen can be hidden', async () => {
  const S = await new Device(server, stranger).connect()
  const granted = await new Promise<number[]>((resolve) => S.client.subscribe(`presence/${b.userId}`, { qos: 0 }, (err, g) => {
    resolve((err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? (g ?? []).map((x) => x.qos))
  }))
  assert.deepEqual(granted, [128])
  assert.equal((await server.api('GET', `/v1/users/${b.userId}/presence`, stranger.token)).status, 404, 'contacts only by default')
  await server.api('PATCH', '/v1/me/settings', b.token, { last_seen: 'everyone' })
  assert.equal((await server.api('GET', `/v1/users/${b.userId}/presence`, stranger.token)).status, 200, 'everyone may look it up')
  await server.api('PATCH', '/v1/me/settings', b.token, { last_seen: 'chats' })
  assert.equal((await server.api('GET', `/v1/users/${b.userId}/presence`, stranger.token)).status, 404)
  await server.api('PATCH', '/v1/me/settings', b.token, { last_seen: 'nobody' })
  const hidden = await server.api('GET', `/v1/users/${b.userId}/presence`, w.token)
  assert.equal(hidden.body.state, 'offline')
  assert.equal(hidden.body.last_seen, null)

  const W = await new Device(server, w).connect()
  await W.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  await sleep(1100)
  const before = states(W, b.userId).length
  const B = await new Device(server, b).connect({ subscribe: false })
  await waitFor('online', () => states(W, b.userId).slice(before).find((p) => p.state === 'online'), 5000)
  await B.close()
  const off = await waitFor('offline', () => states(W, b.userId).slice(before).find((p) => p.state === 'offline'), 5000)
  assert.equal(off.last_seen, undefined, 'last seen hidden')
  await server.api('PATCH', '/v1/me/settings', b.token, { last_seen: 'chats' })
  await W.close()
  await S.close()
})

test('after a crash, a user left online is published offline at the next start', async () => {
  const B = await new Device(server, b).connect({ subscribe: false })
  const W = await new Device(server, w).connect()
  await W.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  await waitFor('online', () => states(W, b.userId).find((p) => p.state === 'online'), 5000)
  await server.kill()
  await server.start()
  const W2 = await new Device(server, w).connect({ subscribe: false })
  await W2.client.subscribeAsync(`presence/${b.userId}`, { qos: 0 })
  const r = await waitFor('retained presence after restart', () => states(W2, b.userId)[0])
  assert.equal(r.state, 'offline')
  await W2.close()
  // B and W were connected to the server that was killed; drop their clients.
  B.client.end(true)
  W.client.end(true)
})
