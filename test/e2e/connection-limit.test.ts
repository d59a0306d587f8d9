// MQCHAT_MQTT_MAX_CONNECTIONS: at the limit a new CONNECT is refused with
// "server busy" (MQTT 5 CONNACK 0x89, 3.1.1 return code 3), a device taking
// over its own session is still let in, a place freed is taken again, and the
// devices already connected keep chatting.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { Bystanders, TestServer, waitFor, within, type DeviceCreds } from '../helpers/server.js'

// The bystanders hold two of the three places.
const server = new TestServer({ MQCHAT_MQTT_MAX_CONNECTIONS: '3' })
const bystanders = new Bystanders(server, ['+15551800001', '+15551800002'])
let c: DeviceCreds, d: DeviceCreds

before(async () => {
  await server.start()
  await bystanders.start()
  c = await server.register('+15551800003')
  d = await server.register('+15551800004')
})
after(async () => {
  await bystanders.close()
  await server.dispose()
})

/** Connects as `creds`; resolves with the CONNACK's code and the client (ended by the caller, or at once when refused). */
async function attempt (creds: DeviceCreds, protocolVersion: 4 | 5): Promise<{ code: number, client: mqtt.MqttClient }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: creds.deviceId, username: creds.deviceId, password: creds.token, protocolVersion, clean: true, reconnectPeriod: 0, connectTimeout: 5000
  })
  const code = await within('the CONNACK', new Promise<number>((resolve) => {
    client.once('connect', (p) => resolve(protocolVersion === 5 ? p.reasonCode ?? 0 : p.returnCode ?? 0))
    client.once('error', (err: Error & { code?: number }) => resolve(err.code ?? -1))
  }), 10_000)
  if (code !== 0) client.end(true)
  return { code, client }
}

test('at MQCHAT_MQTT_MAX_CONNECTIONS a CONNECT gets server busy (MQTT 5 0x89, 3.1.1 code 3); a takeover still gets in; a freed place is taken', async () => {
  const third = await attempt(c, 5)
  assert.equal(third.code, 0, 'the third place is free')
  try {
    assert.equal((await attempt(d, 5)).code, 0x89, 'MQTT 5: Server busy')
    assert.equal((await attempt(d, 4)).code, 3, 'MQTT 3.1.1: Server unavailable')
    // The same device again: its new connection replaces the old one and takes no new place.
    const again = await attempt(c, 4)
    assert.equal(again.code, 0, 'a takeover is let in at the limit')
    await within('the old connection to be closed', new Promise((resolve) => { if (!third.client.connected) resolve(null); else third.client.once('close', () => resolve(null)) }), 10_000)
    await again.client.endAsync()
  } finally {
    third.client.end(true)
  }
  // The place is freed once the server has seen the DISCONNECT.
  const freed = await waitFor('a place to be free again', async () => {
    const r = await attempt(d, 5)
    if (r.code === 0) return r
    assert.equal(r.code, 0x89)
    return undefined
  })
  await freed.client.endAsync()
  await bystanders.stillServing()
})
