// MQTT 5 devices on the chat server (aedes 2): they sign in with their token,
// chat with MQTT 3.1.1 devices, and a malformed MQTT 5 packet gets a
// DISCONNECT with its reason code, closes only that connection, and never
// reaches the broker (packet-rules-v5.ts). The server keeps serving: after
// each case a control message must still get through.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqtt from 'mqtt'
import { TestServer, Device, within, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer({ MQCHAT_MAX_MESSAGE_BYTES: '4096', MQCHAT_MAX_PACKET_BYTES: '16384' })
let a: DeviceCreds, b: DeviceCreds, raw: DeviceCreds
let chatId: string
let A: Device, B: Device
let controls = 0

before(async () => {
  await server.start()
  a = await server.register('+15550500001')
  b = await server.register('+15550500002')
  chatId = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'v5', members: [b.userId] })).body.chat_id
  // The raw connections' own device of user a (signing in as A's would take its session over).
  raw = await server.link(a, 'raw')
  A = await new Device(server, a).connect({ protocolVersion: 5 })
  B = await new Device(server, b).connect()
})

after(async () => {
  for (const d of [A, B]) await d.close().catch(() => {})
  await server.dispose()
})

async function stillServing (): Promise<void> {
  const id = `control-${++controls}`
  await B.publish(chatId, { id, body: 'still here' })
  await A.waitEvent(`control message ${id}`, (e) => e.type === 'msg' && e.id === id)
}

const str = (s: string): Buffer => Buffer.concat([Buffer.from([s.length >> 8, s.length & 0xff]), Buffer.from(s)])
function packet (first: number, body: Buffer): Buffer {
  const len: number[] = []
  let n = body.length
  do { let byte = n % 128; n = Math.floor(n / 128); if (n > 0) byte |= 0x80; len.push(byte) } while (n > 0)
  return Buffer.concat([Buffer.from([first, ...len]), body])
}

/** A raw MQTT 5 connection signed in as `creds`' device; resolves once its CONNACK (success) arrived. */
async function signedIn (creds: DeviceCreds): Promise<{ sock: net.Socket, received: () => Buffer, closed: Promise<void> }> {
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  let got = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]) })
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await within('the raw connection', new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) }), 5000)
  // CONNECT v5: clean start, user name and password, keepalive 60, no properties.
  sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0xc2, 0, 60, 0]), str(creds.deviceId), str(creds.deviceId), str(creds.token)])))
  await within('CONNACK', (async () => { while (got.length < 4) await new Promise((r) => setTimeout(r, 10)) })(), 5000)
  assert.equal(got[0], 0x20, 'a CONNACK')
  assert.equal(got[3], 0x00, `CONNACK reason code 0 (got ${got.toString('hex')})`)
  const connack = got.length
  return { sock, received: () => got.subarray(connack), closed }
}

test('an MQTT 5 device signs in with its token and chats with an MQTT 3.1.1 device, both ways', async () => {
  assert.equal((A.client.options as { protocolVersion?: number }).protocolVersion, 5)
  await A.publish(chatId, { id: 'from-v5', body: 'hello from MQTT 5' })
  const got = await B.waitEvent('the v5 device\'s message', (e) => e.type === 'msg' && e.id === 'from-v5')
  assert.equal(got.body, 'hello from MQTT 5')
  await A.waitEvent('its ack', (e) => e.type === 'ack' && e.id === 'from-v5')
  await stillServing()
})

test('an MQTT 5 CONNECT with a bad token is refused with a CONNACK reason code, not accepted', async () => {
  const client = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: a.deviceId, username: a.deviceId, password: 'wrong', protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000
  })
  const err = await within('the refusal', new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve)), 10_000)
  client.end(true)
  assert.ok(err.code !== undefined && err.code >= 0x80, `a failure reason code (got ${String(err.code)}: ${err.message})`)
  await stillServing()
})

// The property without its value made mqtt-packet yield null, and aedes 2.0.0-beta.1 then threw
// in its publish handler (responseTopic.indexOf): the whole server process ended.
for (const [name, props] of [
  ['a Response Topic without its value', Buffer.from([0x03, 0x08, 0x00, 0x01])],
  ['a User Property without its value', Buffer.from([0x04, 0x26, 0x00, 0x01, 0x6b])],
  ['an unknown property', Buffer.from([0x02, 0x7f, 0x00])]
] as const) {
  test(`a PUBLISH with ${name}: DISCONNECT 0x81 (malformed), only that connection closes, nothing is stored`, async () => {
    const c = await signedIn(raw)
    const topic = `chat/${chatId}/msg`
    const payload = Buffer.from(JSON.stringify({ id: `bad-${props.toString('hex')}`, body: 'never stored' }))
    c.sock.write(packet(0x32, Buffer.concat([str(topic), Buffer.from([0x12, 0x34]), props, payload])))
    await within('the connection to close', c.closed, 5000)
    assert.equal(c.received().toString('hex'), 'e00181', 'DISCONNECT, Malformed Packet')
    await stillServing()
    const history = await server.api('GET', `/v1/chats/${chatId}/messages?after=0&limit=500`, a.token)
    assert.ok(!(history.body.messages as Array<{ id: string }>).some((m) => m.id.startsWith('bad-')), 'nothing of it stored')
  })
}

test('a property only a server sends (Maximum QoS on a PUBLISH): DISCONNECT 0x82 (protocol error)', async () => {
  const c = await signedIn(raw)
  c.sock.write(packet(0x32, Buffer.concat([str(`chat/${chatId}/msg`), Buffer.from([0x12, 0x35, 0x02, 0x24, 0x01]), Buffer.from('{}')])))
  await within('the connection to close', c.closed, 5000)
  assert.equal(c.received().toString('hex'), 'e00182')
  await stillServing()
})

test('an MQTT 5 PUBLISH over the packet limit is refused with too_large and acknowledged; the connection stays', async () => {
  await A.publish(chatId, { id: 'v5-big', body: 'x'.repeat(40_000) })
  const err = await A.waitEvent('too_large error', (e) => e.type === 'error' && e.id === 'v5-big')
  assert.equal(err.code, 'too_large')
  assert.ok(A.client.connected)
  await stillServing()
})
