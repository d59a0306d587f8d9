// Open MQTT access (MQCHAT_MQTT_ACCESS=open): a plain MQTT broker for
// development and conformance testing. Anonymous Debian mosquitto clients
// publish and subscribe on any topic; the chat ACL's refusals do not apply.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import mqtt from 'mqtt'
import { TestServer, within } from '../helpers/server.js'

const server = new TestServer({ MQCHAT_MQTT_ACCESS: 'open' })
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
    await c.publishAsync('$SYS/fake', 'x', { qos: 0 })
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(seen.includes('chat/anything/msg'), 'delivered as a plain message, not taken by the bridge')
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
