// The limits docs/security.md lists that no other test goes past: each case
// goes one over it against a real server (set low here, so the tests are
// quick), checks the documented outcome, and then that two other users still
// exchange a message.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { Bystanders, Device, TestServer, waitFor, within, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer({
  MQCHAT_CONNECT_TIMEOUT_MS: '1500',
  MQCHAT_MAX_TOPIC_LEVELS: '5',
  MQCHAT_MAX_INFLIGHT_INBOUND: '3',
  MQCHAT_MQTT_MAX_SUBSCRIPTIONS: '4',
  MQCHAT_HTTP_BODY_TIMEOUT_SECONDS: '30',
  MQCHAT_HTTP_REQUEST_TIMEOUT_SECONDS: '2',
  MQCHAT_HTTP_IDLE_TIMEOUT_SECONDS: '2'
})

const bystanders = new Bystanders(server, ['+15551700001', '+15551700002'])
let a: DeviceCreds
let chat: string
before(async () => {
  await server.start()
  await bystanders.start()
  a = bystanders.a.creds
  chat = bystanders.chat
})
after(async () => {
  await bystanders.close()
  await server.dispose()
})
const stillServing = async (): Promise<void> => { await bystanders.stillServing() }

/** Resolves with the time until `s` closes (bounded: rejects after `ms`). */
function closedWithin (s: Socket, ms: number): Promise<number> {
  const t0 = Date.now()
  return within('the server to close the connection', new Promise<number>((resolve) => s.once('close', () => resolve(Date.now() - t0))), ms)
}

async function rawSocket (port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1')
  s.on('error', () => {})
  await new Promise((resolve) => s.once('connect', resolve))
  return s
}

test('MQTT: a socket that sends no CONNECT is closed after MQCHAT_CONNECT_TIMEOUT_MS', async () => {
  const s = await rawSocket(server.ports.mqtt)
  const took = await closedWithin(s, 10_000)
  assert.ok(took >= 1000, `closed after ${took} ms, before the timeout`)
  await stillServing()
})

test('MQTT: a topic deeper than MQCHAT_MAX_TOPIC_LEVELS closes the connection; one at the limit does not', async () => {
  const d = await server.link(a, 'deep')
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { clientId: d.deviceId, username: d.deviceId, password: d.token, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  try {
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
    // 5 levels: refused by the chat layer (not a chat topic), the connection stays.
    await client.publishAsync('chat/x/msg/4/5', '{}', { qos: 1 })
    assert.equal(client.connected, true)
    client.publish('chat/x/msg/4/5/6', '{}', { qos: 0 })
    await within('the close', closed, 10_000)
  } finally {
    await client.endAsync(true)
  }
  await stillServing()
})

test('MQTT: more unreleased inbound QoS 2 publishes than MQCHAT_MAX_INFLIGHT_INBOUND close the connection', async () => {
  const d = await server.link(a, 'qos2')
  const s = await rawSocket(server.ports.mqtt)
  let got = Buffer.alloc(0)
  s.on('data', (c: Buffer) => { got = Buffer.concat([got, c]) })
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: d.deviceId, username: d.deviceId, password: Buffer.from(d.token), clean: true, keepalive: 60 }))
  let closedYet = false
  const closed = closedWithin(s, 15_000).finally(() => { closedYet = true })
  const packets = (): string[] => {
    const out: string[] = []
    const p = mqttPacket.parser({ protocolVersion: 4 })
    p.on('packet', (x) => out.push(x.cmd))
    p.parse(got)
    return out
  }
  const publish = (id: number): boolean => s.write(mqttPacket.generate({ cmd: 'publish', topic: `chat/${chat}/msg`, payload: Buffer.from(JSON.stringify({ id: `q2-${id}`, body: id })), qos: 2, messageId: id, retain: false, dup: false }))
  // Three held (PUBREC, never PUBREL): allowed, and answered.
  for (let id = 1; id <= 3; id++) publish(id)
  await waitFor('three PUBRECs', () => packets().filter((c) => c === 'pubrec').length === 3 || undefined)
  assert.equal(closedYet, false)
  // The fourth is one over.
  publish(4)
  await closed
  assert.deepEqual(packets(), ['connack', 'pubrec', 'pubrec', 'pubrec'])
  await stillServing()
})

test('MQTT: a client holds at most MQCHAT_MQTT_MAX_SUBSCRIPTIONS filters; one over gets 0x80, and an unsubscribe frees a place', async () => {
  // Three contacts of a's: each wrote to a, so a may watch their presence.
  const contacts: DeviceCreds[] = []
  for (let i = 0; i < 3; i++) {
    const c = await server.register(`+1555170010${i}`)
    const dm = (await server.api('POST', '/v1/chats', c.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    assert.equal((await server.api('POST', `/v1/chats/${dm}/messages`, c.token, { id: 'hi', body: 'hi' })).status, 201)
    contacts.push(c)
  }
  const d = await server.link(a, 'subs')
  const watcher = await new Device(server, d).connect()
  try {
    const granted = (topic: string): Promise<number[]> => new Promise((resolve) => watcher.client.subscribe(topic, { qos: 0 }, (err, g) => {
      resolve((err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? (g ?? []).map((x) => x.qos))
    }))
    // The inbox is one; three more fit (the live topic and two presences), the fifth does not.
    assert.deepEqual(await granted(`dev/${d.deviceId}/live`), [0])
    assert.deepEqual(await granted(`presence/${contacts[0].userId}`), [0])
    assert.deepEqual(await granted(`presence/${contacts[1].userId}`), [0])
    assert.deepEqual(await granted(`presence/${contacts[2].userId}`), [128])
    assert.deepEqual(await granted(`presence/${contacts[1].userId}`), [0], 'subscribing again to a held filter takes no new place')
    await watcher.client.unsubscribeAsync(`presence/${contacts[0].userId}`)
    assert.deepEqual(await granted(`presence/${contacts[2].userId}`), [0])
  } finally {
    await watcher.close()
  }
  await stillServing()
})

test('HTTP: a request still arriving after MQCHAT_HTTP_REQUEST_TIMEOUT_SECONDS is cut off', async () => {
  const s = await rawSocket(server.ports.http)
  const body = JSON.stringify({ id: 'slow', body: 'x'.repeat(100) })
  s.write(`POST /v1/chats/${chat}/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${a.token}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`)
  // One byte every 300 ms: never idle, never done in 2 s.
  let i = 0
  const drip = setInterval(() => { if (i < body.length && !s.destroyed) s.write(body[i++]) }, 300)
  try {
    const took = await closedWithin(s, 15_000)
    assert.ok(took >= 1500, `closed after ${took} ms`)
    assert.ok(i < body.length, 'the body never completed')
  } finally {
    clearInterval(drip)
  }
  assert.equal(bystanders.a.events.some((e) => e.id === 'slow'), false)
  await stillServing()
})

test('HTTP: a keep-alive connection left idle is closed after MQCHAT_HTTP_IDLE_TIMEOUT_SECONDS', async () => {
  const s = await rawSocket(server.ports.http)
  let answer = ''
  s.on('data', (c: Buffer) => { answer += c.toString() })
  s.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\r\n')
  const took = await closedWithin(s, 15_000)
  assert.match(answer, /^HTTP\/1\.1 200/)
  assert.ok(took >= 1500, `closed after ${took} ms`)
  await stillServing()
})

test('behind a load balancer (MQCHAT_TRUST_PROXY) only the overall cap on connections not yet signed in applies: they all come from its address', async () => {
  const lb = new TestServer({ MQCHAT_TRUST_PROXY: '127.0.0.1', MQCHAT_MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: '3', MQCHAT_MQTT_MAX_UNAUTHENTICATED: '6' })
  const sockets: Socket[] = []
  try {
    await lb.start()
    // Six from one address: over the per-address cap of 3, within the overall cap of 6.
    for (let i = 0; i < 6; i++) sockets.push(await rawSocket(lb.ports.mqtt))
    // The seventh is over the overall cap: closed at once, which shows the six were counted, and kept.
    const seventh = await rawSocket(lb.ports.mqtt)
    await closedWithin(seventh, 10_000)
    assert.deepEqual(sockets.map((s) => s.destroyed), Array(6).fill(false))
    // The refusal's log line reaches the test through a pipe: wait for it, then check it came once.
    await waitFor('the refusal to be logged', () => /too many not yet signed in/.test(lb.log) || undefined)
    assert.equal((lb.log.match(/too many not yet signed in/g) ?? []).length, 1)
  } finally {
    for (const s of sockets) s.destroy()
    await lb.dispose()
  }
  await stillServing()
})
