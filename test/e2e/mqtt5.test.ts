// MQTT 5 devices on the chat server (aedes 2): they sign in with their token,
// chat with MQTT 3.1.1 devices, and a malformed MQTT 5 packet gets a
// DISCONNECT with its reason code, closes only that connection, and never
// reaches the broker (packet-rules-v5.ts). The server keeps serving: after
// each case a control message must still get through.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { TestServer, Device, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { runPahoV5 } from '../helpers/paho.js'

const server = new TestServer({ MQCHAT_MAX_MESSAGE_BYTES: '4096', MQCHAT_MAX_PACKET_BYTES: '16384', MQCHAT_MAX_INFLIGHT_INBOUND: '5' })
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
async function signedIn (creds: DeviceCreds, connectProperties = Buffer.from([0])): Promise<{ sock: net.Socket, received: () => Buffer, closed: Promise<void> }> {
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  let got = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]) })
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await within('the raw connection', new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) }), 5000)
  // CONNECT v5: clean start, user name and password, keepalive 60, no properties.
  sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0xc2, 0, 60]), connectProperties, str(creds.deviceId), str(creds.deviceId), str(creds.token)])))
  await waitFor('CONNACK', () => got.length >= 4, 5000)
  assert.equal(got[0], 0x20, 'a CONNACK')
  assert.equal(got[3], 0x00, `CONNACK reason code 0 (got ${got.toString('hex')})`)
  const connack = got.length
  return { sock, received: () => got.subarray(connack), closed }
}

test('an MQTT 5 device signs in with its token and chats with an MQTT 3.1.1 device, both ways', async () => {
  assert.equal((A.client.options as { protocolVersion?: number }).protocolVersion, 5)
  // The CONNACK announces the limits: this server's packet limit and the inbound window (MQCHAT_MAX_INFLIGHT_INBOUND).
  const announced = A.connack?.properties ?? {}
  assert.equal(announced.maximumPacketSize, 16384)
  assert.equal(announced.receiveMaximum, 5)
  assert.equal(announced.sharedSubscriptionAvailable, false)
  // The chat ACL refuses both (broker/outbound.ts adds them; aedes cannot).
  assert.equal(announced.retainAvailable, false)
  assert.equal(announced.wildcardSubscriptionAvailable, false)
  await A.publish(chatId, { id: 'from-v5', body: 'hello from MQTT 5' })
  const got = await B.waitEvent('the v5 device\'s message', (e) => e.type === 'msg' && e.id === 'from-v5')
  assert.equal(got.body, 'hello from MQTT 5')
  await A.waitEvent('its ack', (e) => e.type === 'ack' && e.id === 'from-v5')
  await stillServing()
})

/** The CONNACK reason code an MQTT 5 CONNECT with these credentials gets (mqtt.js reports a refusal as an error). */
async function connackOf (clientId: string, password: string): Promise<number> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId, username: clientId, password, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000
  })
  try {
    return await within('the CONNACK', new Promise<number>((resolve) => {
      client.once('connect', (p) => resolve(p.reasonCode ?? 0))
      client.once('error', (err: Error & { code?: number }) => resolve(err.code ?? -1))
    }), 10_000)
  } finally { client.end(true) }
}

test('MQTT 5 CONNACK reason codes: a bad token 0x86 (bad user name or password), a revoked device 0x87 (not authorized)', async () => {
  assert.equal(await connackOf(a.deviceId, 'wrong'), 0x86)
  const gone = await server.link(a, 'to revoke')
  assert.equal((await server.api('DELETE', `/v1/devices/${gone.deviceId}`, a.token)).status, 204)
  assert.equal(await connackOf(gone.deviceId, gone.token), 0x87)
  await stillServing()
})

test('an MQTT 5 device that is revoked gets DISCONNECT 0x87 (not authorized) before its connection closes', async () => {
  const creds = await server.link(a, 'revoked while connected')
  const d = await new Device(server, creds).connect({ protocolVersion: 5 })
  const told = within('the DISCONNECT', new Promise<number | undefined>((resolve) => d.client.once('disconnect', (p) => resolve(p.reasonCode))), 10_000)
  assert.equal((await server.api('DELETE', `/v1/devices/${creds.deviceId}`, a.token)).status, 204)
  assert.equal(await told, 0x87)
  await d.close().catch(() => {})
  await stillServing()
})

test('an MQTT 5 session taken over by a new connection of the same device gets DISCONNECT 0x8E', async () => {
  const creds = await server.link(a, 'taken over')
  const first = await new Device(server, creds).connect({ protocolVersion: 5 })
  const told = within('the DISCONNECT', new Promise<number | undefined>((resolve) => first.client.once('disconnect', (p) => resolve(p.reasonCode))), 10_000)
  const second = await new Device(server, creds).connect({ protocolVersion: 5 })
  assert.equal(await told, 0x8e)
  await first.close().catch(() => {})
  await second.close()
  await stillServing()
})

for (const expiry of [0, 3600]) {
  test(`an MQTT 5 device away (Clean Start 0, Session Expiry ${expiry} s) gets what was sent meanwhile: a session present keeps its inbox subscription, an absent one is subscribed again`, async () => {
    // A user of its own (user a is at its device limit), in a group with b.
    const creds = await server.register(`+155505009${expiry === 0 ? '00' : '01'}`)
    const group = (await server.api('POST', '/v1/chats', creds.token, { kind: 'group', name: `away ${expiry}`, members: [b.userId] })).body.chat_id as string
    const connect = async (): Promise<mqtt.MqttClient & { got: string[], present: boolean }> => {
      const c = Object.assign(mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
        clientId: creds.deviceId, username: creds.deviceId, password: creds.token, protocolVersion: 5, clean: false,
        properties: { sessionExpiryInterval: expiry }, reconnectPeriod: 0, connectTimeout: 5000
      }), { got: [] as string[], present: false })
      c.on('message', (_t, payload) => { const e = JSON.parse(payload.toString()) as { type: string, id: string }; if (e.type === 'msg') c.got.push(e.id) })
      await within('the CONNACK', new Promise<void>((resolve, reject) => { c.once('connect', (p) => { c.present = p.sessionPresent; resolve() }); c.once('error', reject) }), 10_000)
      // What a client does: subscribe when the server has no session for it.
      if (!c.present) await c.subscribeAsync(`dev/${creds.deviceId}/inbox`, { qos: 1 })
      return c
    }
    const first = await connect()
    if (first.present) await first.subscribeAsync(`dev/${creds.deviceId}/inbox`, { qos: 1 })
    await first.endAsync()
    const id = `while-away-${expiry}`
    await B.publish(group, { id, body: 'sent while you were away' })
    const again = await connect()
    try {
      await waitFor(`the message sent while away (session present: ${again.present})`, () => again.got.includes(id), 10_000)
    } finally { await again.endAsync(true) }
  })
}

test('paho-mqtt (PyPI) with protocol=MQTTv5 (the client that got CONNACK 0x01 before): signs in, sends, receives, a refusal is its PUBACK\'s reason code; a bad token gets 0x86', async () => {
  const creds = await server.register('+15550500910')
  const group = (await server.api('POST', '/v1/chats', creds.token, { kind: 'group', name: 'paho v5', members: [b.userId] })).body.chat_id as string
  const env = { HOST: '127.0.0.1', PORT: String(server.ports.mqtt), DEVICE: creds.deviceId, CHAT: group, SECONDS: '20' }
  const sent = (async () => {
    // B writes once paho is in (its first message is its own, echoed as a msg event to its other devices only).
    await B.waitEvent('paho\'s message', (e) => e.type === 'msg' && e.id === 'from-paho-v5', 20_000)
    await B.publish(group, { id: 'to-paho-v5', body: 'hello paho' })
  })()
  const envelopes = [{ id: 'from-paho-v5', body: 'from paho over MQTT 5' }, { id: 'bad-paho-v5', type: 'no-such-type', body: 'x' }]
  const r = await runPahoV5({ ...env, TOKEN: creds.token, COUNT: '1', ENVELOPES: JSON.stringify(envelopes) })
  await sent
  const out = JSON.stringify(r)
  assert.equal(r.connack, 0, out)
  assert.equal(r.properties.MaximumPacketSize, 16384, out)
  assert.equal(r.published, 2, out)
  // The first accepted (PUBACK 0x00), the second refused: 0x99 Payload format invalid, the mqchat code as Reason String.
  assert.equal(r.pubacks[0]?.code, 0, out)
  assert.equal(r.pubacks[1]?.code, 0x99, out)
  assert.match(r.pubacks[1]?.reason ?? '', /^bad_request: type must be one of/, out)
  assert.ok(r.events.some((e) => e.type === 'msg' && e.id === 'to-paho-v5'), out)
  const refused = await runPahoV5({ ...env, TOKEN: 'not-the-token', ENVELOPES: '[]' })
  assert.equal(refused.connack, 0x86, JSON.stringify(refused))
  await stillServing()
})

/** The MQTT 5 PUBLISH packets in `b`, decoded (a packet cut off at the end is left out). */
function publishesIn (b: Buffer): Array<{ topic: string, properties?: object, payload: string }> {
  const out: Array<{ topic: string, properties?: object, payload: string }> = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p: mqttPacket.Packet) => { if (p.cmd === 'publish') out.push({ topic: p.topic, properties: p.properties, payload: p.payload.toString() }) })
  parser.parse(b)
  return out
}

test('an MQTT 5 device that accepts topic aliases gets its inbox topic once, then alias 1 alone; mqtt.js resolves it', async () => {
  // CONNECT properties: Topic Alias Maximum 10.
  const c = await signedIn(raw, Buffer.from([0x03, 0x22, 0x00, 0x0a]))
  const inbox = `dev/${raw.deviceId}/inbox`
  c.sock.write(packet(0x82, Buffer.concat([Buffer.from([0x00, 0x07, 0x00]), str(inbox), Buffer.from([0x01])])))
  await waitFor('SUBACK', () => c.received().includes(0x90), 5000)
  for (const id of ['alias-1', 'alias-2']) await B.publish(chatId, { id, body: id })
  await waitFor('two inbox messages', () => publishesIn(c.received()).filter((p) => p.payload.includes('alias-')).length >= 2, 10_000)
  // The first inbox PUBLISH on the connection (earlier messages of the chat may come first) names the topic and
  // sets alias 1; every later one has an empty topic and alias 1.
  const [first, ...rest] = publishesIn(c.received())
  assert.equal(first!.topic, inbox)
  assert.deepEqual(first!.properties, { topicAlias: 1 })
  assert.ok(rest.length >= 1)
  for (const p of rest) {
    assert.equal(p.topic, '', 'the topic is not sent again')
    assert.deepEqual(p.properties, { topicAlias: 1 })
  }
  c.sock.destroy()

  const viaLib = await new Device(server, await server.register('+15550500920')).connect({ protocolVersion: 5 })
  viaLib.client.end(true)
  const creds = viaLib.creds
  const group = (await server.api('POST', '/v1/chats', creds.token, { kind: 'group', name: 'aliases', members: [b.userId] })).body.chat_id as string
  const lib = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: creds.deviceId, username: creds.deviceId, password: creds.token, protocolVersion: 5, properties: { topicAliasMaximum: 10 }, reconnectPeriod: 0
  })
  const topics: string[] = []
  lib.on('message', (t, payload) => { if (payload.toString().includes('lib-alias')) topics.push(t) })
  await within('mqtt.js to connect', new Promise((resolve) => lib.once('connect', resolve)), 10_000)
  await lib.subscribeAsync(`dev/${creds.deviceId}/inbox`, { qos: 1 })
  for (const id of ['lib-alias-1', 'lib-alias-2', 'lib-alias-3']) await B.publish(group, { id, body: id })
  await waitFor('three messages through mqtt.js', () => topics.length >= 3, 10_000)
  assert.deepEqual(topics, Array(3).fill(`dev/${creds.deviceId}/inbox`))
  await lib.endAsync(true)
  await stillServing()
})

test('one QoS 2 publish over the announced Receive Maximum, none released: DISCONNECT 0x93, and the one over is not stored', async () => {
  const c = await signedIn(raw)
  for (let i = 1; i <= 6; i++) {
    c.sock.write(packet(0x34, Buffer.concat([str(`chat/${chatId}/msg`), Buffer.from([0x00, i, 0x00]), Buffer.from(JSON.stringify({ id: `q2-${i}`, body: 'qos 2' }))])))
  }
  await within('the connection to close', c.closed, 10_000)
  const got = c.received()
  assert.ok(got.subarray(-3).equals(Buffer.from([0xe0, 0x01, 0x93])), `ends with DISCONNECT 0x93: ${got.toString('hex')}`)
  await stillServing()
  const history = await server.api('GET', `/v1/chats/${chatId}/messages?after=0&limit=500`, a.token)
  assert.ok(!(history.body.messages as Array<{ id: string }>).some((m) => m.id === 'q2-6'), 'the one over the window is not stored')
})

test('an MQTT 5 device silent past 1.5 × its keepalive gets DISCONNECT 0x8D before its connection closes', async () => {
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  let got = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]) })
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await within('the raw connection', new Promise((resolve) => sock.once('connect', resolve)), 5000)
  // Keepalive 1 s, then nothing.
  sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0xc2, 0, 1, 0]), str(raw.deviceId), str(raw.deviceId), str(raw.token)])))
  await within('the connection to close', closed, 10_000)
  assert.equal(got[0], 0x20, got.toString('hex'))
  assert.ok(got.subarray(-3).equals(Buffer.from([0xe0, 0x01, 0x8d])), `ends with DISCONNECT 0x8D: ${got.toString('hex')}`)
  await stillServing()
})

test('a message bigger than a device\'s Maximum Packet Size comes as a sync too_large notice in its place; the next one comes whole', async () => {
  const creds = await server.register('+15550500930')
  const group = (await server.api('POST', '/v1/chats', creds.token, { kind: 'group', name: 'small device', members: [b.userId] })).body.chat_id as string
  const small = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: creds.deviceId, username: creds.deviceId, password: creds.token, protocolVersion: 5, properties: { maximumPacketSize: 512 }, reconnectPeriod: 0
  })
  const events: Array<{ type: string, reason?: string, chat?: string, seq?: number, id?: string }> = []
  small.on('message', (_t, payload) => { events.push(JSON.parse(payload.toString()) as typeof events[number]) })
  try {
    await within('the CONNECT', new Promise((resolve) => small.once('connect', resolve)), 10_000)
    await small.subscribeAsync(`dev/${creds.deviceId}/inbox`, { qos: 1 })
    await B.publish(group, { id: 'too-big', body: 'x'.repeat(1000) })
    await B.publish(group, { id: 'fits', body: 'small' })
    await waitFor('the notice and the next message', () => events.some((e) => e.id === 'fits'), 10_000)
    const notice = events.find((e) => e.type === 'sync')
    assert.equal(notice?.reason, 'too_large', JSON.stringify(events))
    assert.equal(notice?.chat, group)
    assert.ok(!events.some((e) => e.id === 'too-big'), 'the big one is not sent')
    assert.ok(small.connected, 'the connection stays')
    const read = await server.api('GET', `/v1/chats/${group}/messages?after=${notice!.seq! - 1}&limit=1`, creds.token)
    assert.equal(read.body.messages[0].id, 'too-big')
  } finally { await small.endAsync(true) }
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

/** The PUBACK reason code an MQTT 5 publish from A got (mqtt.js rejects on a code ≥ 0x80). */
async function pubackOf (topic: string, payload: string): Promise<{ code: number }> {
  try {
    const ack = await A.client.publishAsync(topic, payload, { qos: 1 }) as { reasonCode?: number } | undefined
    return { code: ack?.reasonCode ?? 0 }
  } catch (err) {
    return { code: (err as Error & { code?: number }).code ?? -1 }
  }
}

test('an MQTT 5 PUBLISH over the packet limit is refused: PUBACK 0x97 (quota exceeded) naming too_large, the error event, and the connection stays', async () => {
  const ack = await pubackOf(`chat/${chatId}/msg`, JSON.stringify({ id: 'v5-big', body: 'x'.repeat(40_000) }))
  assert.equal(ack.code, 0x97)
  const err = await A.waitEvent('too_large error', (e) => e.type === 'error' && e.id === 'v5-big')
  assert.equal(err.code, 'too_large')
  assert.ok(A.client.connected)
  await stillServing()
})

test('MQTT 5 PUBACK reason codes: not a member 0x87, an unreadable envelope 0x99, another topic 0x87', async () => {
  const other = (await server.api('POST', '/v1/chats', b.token, { kind: 'group', name: 'not for a', members: [] })).body.chat_id as string
  const notMember = await pubackOf(`chat/${other}/msg`, JSON.stringify({ id: 'v5-nm', body: 'x' }))
  assert.equal(notMember.code, 0x87)
  const bad = await pubackOf(`chat/${chatId}/msg`, 'not json')
  assert.equal(bad.code, 0x99)
  const topic = await pubackOf('somewhere/else', 'x')
  assert.equal(topic.code, 0x87)
  // The 3.1.1 device's refusal is as before: a PUBACK, and the error event.
  await B.publish(other, { id: 'v4-fine', body: 'b is a member' })
  assert.ok(A.client.connected)
  await stillServing()
})

test('a refused MQTT 5 publish gets exactly one acknowledgement (ours, not aedes\' as well), with the mqchat code as its Reason String', async () => {
  const c = await signedIn(raw)
  const other = (await server.api('POST', '/v1/chats', b.token, { kind: 'group', name: 'not for raw', members: [] })).body.chat_id as string
  const until = async (what: string, ok: (b: Buffer) => boolean): Promise<void> => {
    await waitFor(what, () => ok(c.received()), 5000)
  }
  // QoS 1 PUBLISH id 0x0102 to a chat the device is not in, no properties.
  c.sock.write(packet(0x32, Buffer.concat([str(`chat/${other}/msg`), Buffer.from([0x01, 0x02, 0x00]), Buffer.from('{"id":"x","body":"y"}')])))
  await until('the PUBACK', (b) => b.length >= 2 && b.length >= 2 + b[1]!)
  // Then a PINGREQ: its PINGRESP must be all that follows (a second PUBACK would come first).
  c.sock.write(Buffer.from([0xc0, 0x00]))
  await until('PINGRESP', (b) => b.includes(Buffer.from([0xd0, 0x00])))
  const got = c.received()
  // PUBACK: 40, remaining length, id 0102, reason 0x87, property length, Reason String (0x1f, length, text).
  assert.equal(got[0], 0x40, got.toString('hex'))
  assert.equal(got.readUInt16BE(2), 0x0102)
  assert.equal(got[4], 0x87)
  assert.equal(got[6], 0x1f)
  assert.match(got.subarray(9, 9 + got.readUInt16BE(7)).toString(), /^not_member: /)
  const after = got.subarray(2 + got[1]!)
  assert.equal(after.toString('hex'), 'd000', 'nothing but the PINGRESP after it')
  c.sock.destroy()
})
