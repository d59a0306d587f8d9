// MQTT over WebSocket, graceful shutdown, and the CLI's listen and exit codes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { rmSync, writeFileSync, mkdirSync } from 'node:fs'
import mqtt from 'mqtt'
import { TestServer, Device, CLI, cli, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer()
const home = tempDir('mqchat-cli-')
let a: DeviceCreds, b: DeviceCreds
let chatId: string

before(async () => {
  await server.start()
  a = await server.register('+15550600001')
  b = await server.register('+15550600002')
  chatId = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id
  mkdirSync(home, { recursive: true })
  writeFileSync(`${home}/b.json`, JSON.stringify({ server: server.url, user_id: b.userId, device_id: b.deviceId, token: b.token }))
})
after(async () => {
  await server.dispose()
  rmSync(home, { recursive: true, force: true })
})

test('MQTT over WebSocket at /mqtt carries the same session', async () => {
  const ws = mqtt.connect(`ws://127.0.0.1:${server.ports.ws}/mqtt`, {
    clientId: b.deviceId, username: b.deviceId, password: b.token, clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000
  })
  const got: Array<Record<string, unknown>> = []
  ws.on('message', (_t, p) => got.push(JSON.parse(p.toString())))
  await new Promise<void>((resolve, reject) => { ws.once('connect', () => resolve()); ws.once('error', reject) })
  await ws.subscribeAsync(`dev/${b.deviceId}/inbox`, { qos: 1 })
  await ws.publishAsync(`chat/${chatId}/msg`, JSON.stringify({ id: 'ws-1', body: 'over websocket' }), { qos: 1 })
  await waitFor('ack over websocket', () => got.find((e) => e.type === 'ack' && e.id === 'ws-1'))
  const A = await new Device(server, a).connect()
  await A.waitEvent('the websocket message', (e) => e.id === 'ws-1')
  await A.close()
  await ws.endAsync()
  // The HTTP side of the WebSocket port says what it is for.
  const res = await fetch(`http://127.0.0.1:${server.ports.ws}/`)
  assert.equal(res.status, 426)
})

test('mqchat listen --mqtt-version 5: the same events over MQTT 5, each once across sessions; a bad version is a usage error', async () => {
  await server.api('POST', `/v1/chats/${chatId}/messages`, a.token, { id: 'for-listen-v5', body: 'over MQTT 5' })
  const r = await cli(home, ['listen', '--profile', 'b', '--json', '--mqtt-version', '5', '--count', '1', '--timeout', '15'])
  assert.equal(r.code, 0, r.stderr)
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string, body: string })
  assert.deepEqual(events.map((e) => [e.id, e.body]), [['for-listen-v5', 'over MQTT 5']])
  await server.api('POST', `/v1/chats/${chatId}/messages`, a.token, { id: 'after-v5', body: 'next' })
  const r2 = await cli(home, ['listen', '--profile', 'b', '--json', '--mqtt-version', '5', '--count', '1', '--timeout', '15'])
  assert.equal(r2.code, 0, r2.stderr)
  assert.deepEqual(r2.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id), ['after-v5'])
  const bad = await cli(home, ['listen', '--profile', 'b', '--mqtt-version', '3'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--mqtt-version takes 4/)
})

test('mqchat listen --mqtt-version 5 shows the server\'s reason codes: a revocation is DISCONNECT 0x87, then CONNACK 0x87 ends it (exit 4)', async () => {
  // Another user's device: its listen publishes its keys, which would be news (a keys event) on b's queue.
  const z = await server.register('+15550600003')
  const c = await server.link(z, 'cli-to-revoke')
  writeFileSync(`${home}/c.json`, JSON.stringify({ server: server.url, user_id: z.userId, device_id: c.deviceId, token: c.token }))
  const p = spawn(process.execPath, [CLI, 'listen', '--profile', 'c', '--mqtt-version', '5', '--timeout', '30'], { env: { PATH: process.env.PATH ?? '', MQCHAT_CLI_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)))
  try {
    await waitFor('listen to subscribe', () => stderr.includes('listening on'), 15_000)
    assert.equal((await server.api('DELETE', `/v1/devices/${c.deviceId}`, z.token)).status, 204)
    assert.equal(await within('listen to exit', exited, 20_000), 4, stderr)
    assert.match(stderr, /the server closed the connection \(reason code 0x87 not authorized\)/)
    assert.match(stderr, /0x87 not authorized: it was revoked/)
  } finally { p.kill() }
})

test('mqchat listen --json prints inbox events, including those queued while it was away', async () => {
  const sent = await server.api('POST', `/v1/chats/${chatId}/messages`, a.token, { id: 'for-listen', body: 'queued' })
  assert.equal(sent.status, 201)
  const r = await cli(home, ['listen', '--profile', 'b', '--json', '--count', '1', '--timeout', '15'])
  assert.equal(r.code, 0, r.stderr)
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.equal(events.length, 1)
  assert.equal(events[0].id, 'for-listen')
  assert.equal(events[0].body, 'queued')
  // Acknowledged by listen: not delivered again to the next session.
  await server.api('POST', `/v1/chats/${chatId}/messages`, a.token, { id: 'next', body: 'second' })
  const r2 = await cli(home, ['listen', '--profile', 'b', '--count', '1', '--timeout', '15'])
  assert.equal(r2.code, 0, r2.stderr)
  assert.match(r2.stdout, new RegExp(`^\\[${chatId} #\\d+\\] ${a.userId}: second$`, 'm'))
  assert.doesNotMatch(r2.stdout, /queued/)
})

test('CLI exit codes: usage 2, refused 3, not registered 4, unreachable 5', async () => {
  assert.equal((await cli(home, ['frobnicate'])).code, 2)
  assert.equal((await cli(home, ['send', '--profile', 'b'])).code, 2)
  const help = await cli(home, ['send', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: mqchat send/)
  const refused = await cli(home, ['send', 'g_doesnotexist', 'hi', '--profile', 'b'])
  assert.equal(refused.code, 3)
  assert.match(refused.stderr, /not_found: chat not found/)
  const none = await cli(home, ['whoami', '--profile', 'nobody'])
  assert.equal(none.code, 4)
  assert.match(none.stderr, /mqchat register/)
  writeFileSync(`${home}/gone.json`, JSON.stringify({ server: 'http://127.0.0.1:9', user_id: 'u', device_id: 'd', token: 't' }))
  assert.equal((await cli(home, ['whoami', '--profile', 'gone'])).code, 5)
  writeFileSync(`${home}/wrong.json`, JSON.stringify({ server: server.url, user_id: b.userId, device_id: b.deviceId, token: `${b.deviceId}.forged` }))
  assert.equal((await cli(home, ['whoami', '--profile', 'wrong'])).code, 4)
  const listenWrong = await cli(home, ['listen', '--profile', 'wrong', '--timeout', '10'])
  assert.equal(listenWrong.code, 4, listenWrong.stderr)
})

test('SIGTERM shuts down gracefully: exit 0, connections closed, state kept', async () => {
  const s = new TestServer()
  try {
    await s.start()
    const u = await s.register('+15550600009')
    const d = await new Device(s, u).connect()
    const closed = new Promise<void>((resolve) => d.client.once('close', () => resolve()))
    assert.equal(await s.stop(), 0)
    await closed
    assert.match(s.log, /"msg":"stopped"/)
    await s.start()
    assert.equal((await s.api('GET', '/v1/me', u.token)).status, 200)
  } finally {
    await s.dispose()
  }
})

test('a bad configuration value stops the start with one clear line per problem', async () => {
  const p = spawn(process.execPath, [CLI, 'serve'], { env: { PATH: process.env.PATH ?? '', MQCHAT_MQTT_PORT: 'eighteen', MQCHAT_MAX_GROUP_MEMBERS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  p.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)))
  assert.equal(code, 2)
  assert.match(err, /MQCHAT_MQTT_PORT: must be a whole number, got "eighteen"/)
  assert.match(err, /MQCHAT_MAX_GROUP_MEMBERS: must be between 2 and 100000, got 1/)
})
