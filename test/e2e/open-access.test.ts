// Open MQTT access (MQCHAT_MQTT_ACCESS=open): a plain MQTT broker for
// development and conformance testing. Anonymous Debian mosquitto clients
// publish and subscribe on any topic; the chat ACL's refusals do not apply.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import net from 'node:net'
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { TestServer, waitFor, within } from '../helpers/server.js'

// MQCHAT_MAX_QUEUE also bounds what waits behind an MQTT 5 client's Receive Maximum.
const server = new TestServer({ MQCHAT_MQTT_ACCESS: 'open', MQCHAT_MAX_QUEUE: '10' })
before(async () => { await server.start() })
after(async () => { await server.dispose() })

const pub = (args: string[]): void => {
  const r = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(server.ports.mqtt), '-V', 'mqttv311', ...args], { encoding: 'utf8', timeout: 10_000 })
  assert.equal(r.status, 0, r.stderr)
}

function sub (args: string[], count: number): Promise<string[]> {
  const p = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(server.ports.mqtt), '-V', 'mqttv311', '-v', '-C', String(count), '-W', '15', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  p.stdout.on('data', (d: Buffer) => { out += d.toString() })
  p.stderr.on('data', (d: Buffer) => { err += d.toString() })
  return within('mosquitto_sub', new Promise((resolve, reject) => p.on('exit', (code) => code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`mosquitto_sub exited ${code}: ${err}`)))), 20_000)
}

test('anonymous clients publish and subscribe on any topic, with wildcards and retained messages', async () => {
  pub(['-t', 'sensors/kitchen/temp', '-m', '21.5', '-r', '-q', '1'])
  // A new subscriber gets the retained message, then a live one through a wildcard.
  const got = sub(['-t', 'sensors/+/temp', '-q', '1'], 2)
  await new Promise((r) => setTimeout(r, 500))
  pub(['-t', 'sensors/hall/temp', '-m', '19.0', '-q', '1'])
  assert.deepEqual(await got, ['sensors/kitchen/temp 21.5', 'sensors/hall/temp 19.0'])
})

test('topics the chat ACL refuses are ordinary topics here; $SYS publishes are still refused', async () => {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { protocolVersion: 4, clientId: 'open-1', reconnectPeriod: 0 })
  try {
    const granted = await c.subscribeAsync(['#', 'dev/+/inbox'], { qos: 1 })
    assert.deepEqual(granted.map((g) => g.qos), [1, 1], 'no SUBACK 0x80 in open access')
    const seen: string[] = []
    c.on('message', (topic) => seen.push(topic))
    await c.publishAsync('chat/anything/msg', 'not an envelope', { qos: 1 })
    await waitFor('the chat topic\'s message, delivered as a plain message, not taken by the bridge', () => seen.includes('chat/anything/msg'))
    // aedes refuses a client's $SYS publish (and closes that connection): nothing of it is routed.
    await c.publishAsync('$SYS/fake', 'x', { qos: 0 })
    await within('aedes to close the connection', new Promise((resolve) => { if (c.connected) c.once('close', () => resolve(null)); else resolve(null) }), 10_000)
    assert.ok(!seen.includes('$SYS/fake'))
  } finally {
    await c.endAsync()
  }
})

test('an MQTT 5 client here is told only what aedes announces: retained messages and wildcards are available (not marked 0 as in chat mode)', async () => {
  const c = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, { protocolVersion: 5, clientId: 'open-v5', reconnectPeriod: 0 })
  try {
    const connack = await within('the CONNACK', new Promise<mqtt.IConnackPacket>((resolve) => c.once('connect', resolve)), 10_000)
    assert.equal(connack.reasonCode, 0)
    assert.equal(connack.properties?.retainAvailable, undefined)
    assert.equal(connack.properties?.wildcardSubscriptionAvailable, undefined)
    assert.equal(connack.properties?.sharedSubscriptionAvailable, false)
  } finally { await c.endAsync(true) }
})

/** A raw MQTT 5 connection: every packet it receives, parsed, in order. */
async function rawV5 (connect: Partial<mqttPacket.IConnectPacket>): Promise<{ sock: net.Socket, got: mqttPacket.Packet[], closed: Promise<void>, send: (p: mqttPacket.Packet) => void }> {
  const sock = net.connect(server.ports.mqtt, '127.0.0.1')
  const got: mqttPacket.Packet[] = []
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  parser.on('packet', (p) => got.push(p))
  sock.on('data', (d: Buffer) => parser.parse(d))
  sock.on('error', () => {})
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()))
  await within('the connection', new Promise((resolve) => sock.once('connect', resolve)), 5000)
  const send = (p: mqttPacket.Packet): void => { sock.write(mqttPacket.generate(p, { protocolVersion: 5 })) }
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'x', ...connect } as mqttPacket.IConnectPacket)
  await waitFor('the CONNACK', () => got.find((p) => p.cmd === 'connack'))
  return { sock, got, closed, send }
}

const publishes = (got: mqttPacket.Packet[]): mqttPacket.IPublishPacket[] => got.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish')

test('an MQTT 5 client gets no more QoS 1 messages in flight than its Receive Maximum; one that reads but never acknowledges is closed past MQCHAT_MAX_QUEUE waiting (0x97), and gets them on its next connection', async () => {
  const session = { clientId: 'open-window', properties: { receiveMaximum: 1, sessionExpiryInterval: 60 } }
  const slow = await rawV5(session)
  slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'window/t', qos: 1 }] } as mqttPacket.ISubscribePacket)
  await waitFor('the SUBACK', () => slow.got.find((p) => p.cmd === 'suback'))
  const pubc = await mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { protocolVersion: 4, clientId: 'open-window-pub', reconnectPeriod: 0 })
  try {
    // Within the bound: one in flight, the next two wait (none acknowledged).
    for (let i = 1; i <= 3; i++) await pubc.publishAsync('window/t', `m${i}`, { qos: 1 })
    await waitFor('the first message', () => publishes(slow.got).length >= 1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(publishes(slow.got).map((p) => String(p.payload)), ['m1'], 'one in flight at Receive Maximum 1')
    // One acknowledgement lets exactly one more through.
    slow.send({ cmd: 'puback', messageId: publishes(slow.got)[0]!.messageId })
    await waitFor('the second message', () => publishes(slow.got).length >= 2)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(publishes(slow.got).map((p) => String(p.payload)), ['m1', 'm2'])
    // Past MQCHAT_MAX_QUEUE (10) waiting: told why, and closed.
    for (let i = 4; i <= 14; i++) await pubc.publishAsync('window/t', `m${i}`, { qos: 1 })
    await within('the server to close the connection', slow.closed, 10_000)
    const disconnect = slow.got.find((p) => p.cmd === 'disconnect') as mqttPacket.IDisconnectPacket | undefined
    assert.equal(disconnect?.reasonCode, 0x97, 'DISCONNECT 0x97 (Quota exceeded)')
    // The session kept them, up to its queue bound (MQCHAT_MAX_QUEUE: while the device is away the oldest go):
    // on the next connection the ones not acknowledged come, the newest included, one at a time, each acknowledged.
    const back = await rawV5({ ...session, clean: false })
    try {
      const seen = new Set<string>()
      await waitFor('the newest message', () => {
        for (const p of publishes(back.got)) {
          if (!seen.has(String(p.payload))) { seen.add(String(p.payload)); back.send({ cmd: 'puback', messageId: p.messageId }) }
        }
        return seen.has('m14')
      }, 15_000).catch((err: Error) => { throw new Error(`${err.message}; got ${JSON.stringify([...seen])}, packets ${back.got.map((p) => p.cmd).join(',')}`) })
      const expected = Array.from({ length: 13 }, (_, i) => `m${i + 2}`)
      assert.ok([...seen].every((m) => expected.includes(m)), `only messages not acknowledged: ${JSON.stringify([...seen])}`)
      assert.ok(seen.size >= 10, `at least MQCHAT_MAX_QUEUE of them: ${JSON.stringify([...seen])}`)
      assert.equal(publishes(back.got).length, seen.size, 'each once')
    } finally { back.sock.destroy() }
  } finally {
    slow.sock.destroy()
    await pubc.endAsync()
  }
})
