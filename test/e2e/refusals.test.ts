// Every refusal has its documented outcome, and the server keeps serving the
// other clients: after each case a control message must still get through.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import mqtt from 'mqtt'
import { TestServer, Device, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { runPaho } from '../helpers/paho.js'

const server = new TestServer({ MQCHAT_PUBLISH_RATE: '5', MQCHAT_PUBLISH_BURST: '10', MQCHAT_MAX_MESSAGE_BYTES: '4096', MQCHAT_MAX_PACKET_BYTES: '16384' })
let a: DeviceCreds, b: DeviceCreds, outsider: DeviceCreds
let chatId: string
let A: Device, B: Device, O: Device
let controls = 0

before(async () => {
  await server.start()
  a = await server.register('+15550300001')
  b = await server.register('+15550300002')
  outsider = await server.register('+15550300003')
  chatId = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'r', members: [b.userId] })).body.chat_id
  A = await new Device(server, a).connect()
  B = await new Device(server, b).connect()
  O = await new Device(server, outsider).connect()
})

after(async () => {
  for (const d of [A, B, O]) await d.close().catch(() => {})
  await server.dispose()
})

/** The QoS granted per filter; mqtt.js rejects a SUBACK with 0x80 in it, so read it from either outcome. */
function granted (client: mqtt.MqttClient, subs: Record<string, { qos: 0 | 1 }>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(subs, (err, g) => {
      const fromError = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted
      // On a refusal mqtt.js reports the requested QoS in `g`; the raw SUBACK codes are on the error.
      if (fromError) resolve(fromError)
      else if (g) resolve(g.map((x) => x.qos))
      else reject(err ?? new Error('no SUBACK'))
    })
  })
}

/** The server still serves others: a message from B reaches A. */
async function stillServing (): Promise<void> {
  const id = `control-${++controls}`
  await B.publish(chatId, { id, body: 'still here' })
  await A.waitEvent(`control message ${id}`, (e) => e.type === 'msg' && e.id === id)
}

function connectRaw (creds: { id: string, user?: string, pass?: string }): Promise<{ code: number | undefined, client: mqtt.MqttClient }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: creds.id, username: creds.user, password: creds.pass, clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000
  })
  return new Promise((resolve) => {
    client.once('connect', () => resolve({ code: 0, client }))
    client.once('error', (err: Error & { code?: number }) => resolve({ code: err.code, client }))
  })
}

test('a bad or missing token gets CONNACK "not authorized" (5)', async () => {
  for (const attempt of [
    { id: a.deviceId, user: a.deviceId, pass: 'nope' },
    { id: a.deviceId, user: a.deviceId, pass: b.token }, // another device's token
    { id: a.deviceId, user: b.deviceId, pass: a.token }, // username must equal client id
    { id: a.deviceId }
  ]) {
    const { code, client } = await connectRaw(attempt)
    assert.equal(code, 5, JSON.stringify(attempt))
    client.end(true)
  }
  await stillServing()
})

test('publishing to a chat one is not a member of: error not_member, nothing stored or delivered', async () => {
  await O.publish(chatId, { id: 'sneak', body: 'let me in' })
  const err = await O.waitEvent('not_member error', (e) => e.type === 'error' && e.id === 'sneak')
  assert.equal(err.code, 'not_member')
  assert.equal(err.chat, chatId)
  assert.ok(O.client.connected, 'the connection stays up')
  await stillServing()
  assert.equal(A.events.some((e) => e.id === 'sneak'), false)
  const hist = await server.api('GET', `/v1/chats/${chatId}/messages`, a.token)
  assert.equal(hist.body.messages.some((m: { id: string }) => m.id === 'sneak'), false)
})

test('publishing to any dev/... topic: error forbidden_topic, the target never sees it', async () => {
  await O.client.publishAsync(`dev/${a.deviceId}/inbox`, JSON.stringify({ type: 'msg', chat: chatId, seq: 999, body: 'forged' }), { qos: 1 })
  const err = await O.waitEvent('forbidden_topic error', (e) => e.type === 'error' && e.code === 'forbidden_topic')
  assert.equal(err.topic, `dev/${a.deviceId}/inbox`)
  await O.client.publishAsync('anything/else', 'x', { qos: 0 })
  await waitFor('second forbidden_topic', () => O.of('error').filter((e) => e.code === 'forbidden_topic').length === 2)
  await stillServing()
  assert.equal(A.events.some((e) => e.seq === 999), false)
})

test('subscribing to #, chat/#, another device inbox or $SYS is refused with SUBACK 0x80', async () => {
  for (const topic of ['#', 'chat/#', `chat/${chatId}/msg`, `dev/${a.deviceId}/inbox`, 'dev/+/inbox', '$SYS/#', `presence/${a.userId}`]) {
    assert.deepEqual(await granted(O.client, { [topic]: { qos: 1 } }), [128], topic)
  }
  // Refused filters must not be stored in the session either: a mixed SUBSCRIBE.
  const mixed = await granted(O.client, { [`dev/${outsider.deviceId}/inbox`]: { qos: 1 }, '#': { qos: 1 } })
  assert.deepEqual(mixed, [1, 128])
  await O.close()
  await stillServing()
  // O is away; if '#' had been stored, A and B's chat traffic would be queued for it.
  O = await new Device(server, outsider).connect({ subscribe: false })
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(O.events.some((e) => e.chat === chatId), false)
  // The session store holds exactly the granted filters, at the granted QoS (the inbox at QoS 1 even when asked
  // for 2). aedes echoes the requested QoS in the SUBACK of a downgraded filter (docs/protocol.md), so only
  // "not refused" is asserted on the wire; the store and the delivery QoS are what count.
  const asked2 = await granted(O.client, { [`dev/${outsider.deviceId}/inbox`]: { qos: 2 as 1 } })
  assert.notEqual(asked2[0], 128)
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const db = new SqliteDatabase(`${server.dataDir}/broker.db`, { readOnly: true })
  try {
    const rows = db.prepare('SELECT topic, record FROM subscriptions WHERE client_id = ?').all(outsider.deviceId) as Array<{ topic: string, record: string }>
    assert.deepEqual(rows.map((r) => [r.topic, JSON.parse(r.record).qos]), [[`dev/${outsider.deviceId}/inbox`, 1]])
  } finally {
    db.close()
  }
})

test('an oversize message gets error too_large; a packet over the packet limit closes only that connection', async () => {
  const big = { id: 'big-1', body: 'x'.repeat(5000) }
  await A.publish(chatId, big)
  const err = await A.waitEvent('too_large error', (e) => e.type === 'error' && e.id === 'big-1')
  assert.equal(err.code, 'too_large')
  assert.ok(A.client.connected)

  // A raw socket announcing a 1 MB packet other than PUBLISH is cut off at the header.
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  const closed = new Promise((r) => sock.once('close', r))
  sock.write(Buffer.from([0x10, 0x80, 0x80, 0x40])) // CONNECT, remaining length 1 MiB
  await Promise.race([closed, new Promise((_r, rej) => setTimeout(() => rej(new Error('not closed')), 5000))])
  await stillServing()
})

test('a PUBLISH over the packet limit is refused with too_large and acknowledged: paho-mqtt, which resends an unacknowledged PUBLISH on every reconnect, goes on', async () => {
  const p = await server.link(a, 'paho')
  // 40 KB: over this server's 16 KiB packet limit; then a message that fits.
  const r = await runPaho({
    HOST: '127.0.0.1', PORT: String(server.ports.mqtt), DEVICE: p.deviceId, TOKEN: p.token, CHAT: chatId,
    ENVELOPES: JSON.stringify([{ id: 'paho-big', body: 'x'.repeat(40_000) }, { id: 'paho-after', body: 'after the big one' }])
  })
  const out = JSON.stringify(r)
  assert.deepEqual(r.acked, [true, true], out)
  assert.equal(r.connects, 1, 'never disconnected')
  assert.equal(r.events.find((e) => e.id === 'paho-big')?.code, 'too_large', out)
  assert.equal(r.events.find((e) => e.id === 'paho-after')?.type, 'ack', out)
  await B.waitEvent('the message after the big one', (e) => e.type === 'msg' && e.id === 'paho-after')
  assert.ok(!B.events.some((e) => e.id === 'paho-big'), 'the big one was never delivered')
  await stillServing()
})

test('a malformed envelope gets error bad_request with the client id when readable', async () => {
  await A.publish(chatId, 'not json at all')
  const e1 = await A.waitEvent('bad_request for non-JSON', (e) => e.type === 'error' && e.code === 'bad_request' && e.id === undefined)
  assert.match(String(e1.message), /JSON/)
  await A.publish(chatId, { id: 'no-body' })
  const e2 = await A.waitEvent('bad_request for missing body', (e) => e.type === 'error' && e.id === 'no-body')
  assert.equal(e2.code, 'bad_request')
  await A.publish(chatId, { id: 'weird-type', type: 'launch-missiles', body: 1 })
  assert.equal((await A.waitEvent('bad_request for type', (e) => e.type === 'error' && e.id === 'weird-type')).code, 'bad_request')
  await A.publish(chatId, { id: 'bad id with spaces', body: 1 })
  await waitFor('bad_request for id', () => A.of('error').filter((e) => e.code === 'bad_request').length >= 4)
  await stillServing()
})

test('a flood over the rate limit: the excess gets error rate_limited, accepted messages are kept', async () => {
  // Let the bucket refill to its burst of 10 (5/s), then send far more than it holds.
  await new Promise((r) => setTimeout(r, 2500))
  const flood: Array<Promise<unknown>> = []
  for (let i = 0; i < 60; i++) flood.push(A.publish(chatId, { id: `flood-${i}`, body: i }))
  await within('PUBACKs of the flood', Promise.all(flood)) // every publish is PUBACKed: consumed, accepted or refused
  // HTTP sends count against the same per-device limit: a burst of them is refused too.
  const http = await Promise.all(Array.from({ length: 20 }, (_, i) => server.api('POST', `/v1/chats/${chatId}/messages`, a.token, { id: `http-${i}`, body: i })))
  const limitedHttp = http.filter((r) => r.status === 429)
  assert.ok(limitedHttp.length >= 1, 'some HTTP sends are refused')
  assert.ok(limitedHttp.every((r) => r.body.error.code === 'rate_limited'))
  const outcome = await waitFor('an outcome for each of the 60', () => {
    const acked = A.of('ack').filter((e) => String(e.id).startsWith('flood-'))
    const limited = A.of('error').filter((e) => e.code === 'rate_limited' && String(e.id).startsWith('flood-'))
    return acked.length + limited.length === 60 ? { acked, limited } : undefined
  })
  assert.ok(outcome.limited.length >= 1, `refused ${outcome.limited.length}`)
  assert.ok(outcome.acked.length >= 10, `accepted ${outcome.acked.length}: a full burst must pass`)
  // What was accepted reached B in seq order, and is in history.
  const seen = await waitFor('B has the accepted flood messages', () => {
    const m = B.of('msg', chatId).filter((x) => String(x.id).startsWith('flood-'))
    return m.length === outcome.acked.length ? m : undefined
  })
  const seqs = seen.map((m) => Number(m.seq))
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y))
  assert.deepEqual(new Set(seen.map((m) => m.id)), new Set(outcome.acked.map((x) => x.id)))
  assert.ok(A.client.connected, 'a burst over the limit does not cost the connection')
  await stillServing()
})
