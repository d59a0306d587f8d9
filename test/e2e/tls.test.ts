// TLS listeners with a certificate from configuration: MQTT over TLS
// (Mosquitto's clients, verifying the server against the CA file), MQTT
// over WSS (paho-mqtt), HTTPS (curl), and a certificate reloaded on SIGHUP
// while connections stay up (on every TLS listener, XMPP's included).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { connect as netConnect } from 'node:net'
import { X509Certificate } from 'node:crypto'
import mqtt from 'mqtt'
import { Device, TestServer, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { selfSignedCert } from '../helpers/tls.js'
import { runPaho } from '../helpers/paho.js'

const dir = tempDir('mqchat-tls-')
const first = selfSignedCert(tempDir('mqchat-tls-a-'), 'localhost')
const second = selfSignedCert(tempDir('mqchat-tls-b-'), 'localhost')
// The server reads its certificate from these paths; the reload test puts the second one there.
const cert = join(dir, 'cert.pem')
const key = join(dir, 'key.pem')
copyFileSync(first.cert, cert)
copyFileSync(first.key, key)

// XMPP uses the same certificate (it has none of its own).
const server = new TestServer({ MQCHAT_TLS_CERT: cert, MQCHAT_TLS_KEY: key, MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_PORT: '0', MQCHAT_XMPP_WS_PORT: '0', MQCHAT_XMPP_DOMAIN: 'localhost' })
let a: DeviceCreds, b: DeviceCreds
let chat: string
before(async () => {
  await server.start()
  a = await server.register('+15551900001')
  b = await server.register('+15551900002')
  chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
})
after(async () => { await server.dispose() })

function run (cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
    })
  })
}

/** The SHA-256 fingerprint of the certificate a TLS listener presents now. */
function presented (port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '')
      s.destroy()
    })
    s.on('error', reject)
  })
}
const fingerprint = (pem: string): string => new X509Certificate(readFileSync(pem)).fingerprint256

/** The certificate the XMPP listener presents after STARTTLS. */
async function presentedAfterStartTls (port: number): Promise<string> {
  const plain = netConnect(port, '127.0.0.1')
  plain.on('error', () => {})
  let seen = ''
  const until = async (s: string): Promise<void> => { await waitFor(`XMPP ${s}`, () => seen.includes(s) || undefined) }
  plain.on('data', (d: Buffer) => { seen += d.toString() })
  plain.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
  await until('</stream:features>')
  plain.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
  await until('<proceed')
  plain.removeAllListeners('data')
  return await new Promise((resolve, reject) => {
    const s = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '')
      s.destroy()
    })
    s.on('error', reject)
  })
}

test('the TLS listeners are announced in /v1/info, and speak TLS 1.2 or later only', async () => {
  const info = (await server.api('GET', '/v1/info')).body
  assert.deepEqual([info.mqtt_tls_port, info.wss_port, info.https_port], [server.ports.mqttTls, server.ports.wss, server.ports.https])
  assert.ok(server.ports.mqttTls > 0 && server.ports.wss > 0 && server.ports.https > 0)
  const old = await new Promise<string>((resolve) => {
    const s = tlsConnect({ port: server.ports.mqttTls, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => { resolve('connected'); s.destroy() })
    s.on('error', (err) => resolve(err.message))
  })
  assert.notEqual(old, 'connected', 'TLS 1.1 is refused')
})

test('MQTT over TLS: mosquitto_sub and mosquitto_pub verify the server against the CA file and chat', async () => {
  const tls = ['-h', 'localhost', '-p', String(server.ports.mqttTls), '--cafile', first.cert, '-V', 'mqttv311']
  const sub = spawn('mosquitto_sub', [...tls, '-i', b.deviceId, '-u', b.deviceId, '-P', b.token, '-c', '-q', '1', '-t', `dev/${b.deviceId}/inbox`, '-W', '20'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
  sub.stderr.on('data', (d: Buffer) => { err += d.toString() })
  try {
    // The subscriber is connected once the server counts its connection.
    await waitFor('mosquitto_sub to connect', async () => (await server.connections()) >= 1 || undefined)
    const pub = await run('mosquitto_pub', [...tls, '-i', a.deviceId, '-u', a.deviceId, '-P', a.token, '-q', '1', '-t', `chat/${chat}/msg`, '-m', JSON.stringify({ id: 'over-tls', body: 'hello over TLS' })])
    assert.equal(pub.code, 0, pub.stderr)
    // Its queue had the chat's creation first; the message follows.
    const line = await waitFor('the message over TLS', () => out.split('\n').find((l) => l.includes('"over-tls"')), 20_000)
    assert.equal((JSON.parse(line) as { type: string }).type, 'msg', err)
  } finally {
    if (sub.exitCode === null) sub.kill()
  }
  // Verification is real: the same client refuses a server whose certificate the CA file does not vouch for.
  const wrong = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(server.ports.mqttTls), '--cafile', second.cert, '-V', 'mqttv311', '-i', a.deviceId, '-u', a.deviceId, '-P', a.token, '-q', '1', '-t', `chat/${chat}/msg`, '-m', '{}'])
  assert.notEqual(wrong.code, 0)
})

test('MQTT over WSS: paho-mqtt verifies the certificate, publishes and is acknowledged; the message reaches the other member', async () => {
  const B = await new Device(server, b).connect()
  try {
    const r = await runPaho({ HOST: 'localhost', PORT: String(server.ports.wss), TRANSPORT: 'websockets', WS_PATH: '/mqtt', TLS: '1', CAFILE: first.cert, DEVICE: a.deviceId, TOKEN: a.token, CHAT: chat, ENVELOPES: JSON.stringify([{ id: 'over-wss', body: 'hello over WSS' }]) })
    assert.deepEqual([r.connects, r.acked], [1, [true]], JSON.stringify(r))
    await B.waitEvent('the message sent over WSS', (e) => e.type === 'msg' && e.id === 'over-wss')
  } finally {
    await B.close()
  }
})

test('HTTPS: curl verifies the certificate and uses the API; media URLs start with https', async () => {
  const base = `https://localhost:${server.ports.https}`
  const info = await run('curl', ['-sS', '--cacert', first.cert, `${base}/v1/info`])
  assert.equal(info.code, 0, info.stderr)
  assert.equal((JSON.parse(info.stdout) as { https_port: number }).https_port, server.ports.https)
  const chats = await run('curl', ['-sS', '--cacert', first.cert, '-H', `authorization: Bearer ${a.token}`, `${base}/v1/chats`])
  assert.ok((JSON.parse(chats.stdout) as { chats: Array<{ chat_id: string }> }).chats.some((c) => c.chat_id === chat))
  const refused = await run('curl', ['-sS', '--cacert', second.cert, `${base}/v1/info`])
  assert.notEqual(refused.code, 0, 'a certificate the CA file does not vouch for is refused')
  const slot = await server.api('POST', '/v1/media', a.token, { chat, size: 3, content_type: 'image/png', sha256: 'a'.repeat(64) })
  assert.match(slot.body.upload.url as string, new RegExp(`^https://127\\.0\\.0\\.1:${server.ports.https}/`))
})

test('SIGHUP reloads the certificate: new connections get the new one, open ones go on', async () => {
  const before = fingerprint(first.cert)
  assert.equal(await presented(server.ports.mqttTls), before)
  assert.equal(await presentedAfterStartTls(server.ports.xmpp), before)
  // An MQTT over TLS connection opened with the first certificate.
  const B = mqtt.connect(`mqtts://localhost:${server.ports.mqttTls}`, { clientId: b.deviceId, username: b.deviceId, password: b.token, clean: false, protocolVersion: 4, reconnectPeriod: 0, ca: readFileSync(first.cert) })
  const got: string[] = []
  B.on('message', (_t, payload) => { got.push((JSON.parse(payload.toString()) as { id?: string }).id ?? '') })
  await within('the TLS client to connect', new Promise<void>((resolve, reject) => { B.once('connect', () => resolve()); B.once('error', reject) }), 10_000)
  await B.subscribeAsync(`dev/${b.deviceId}/inbox`, { qos: 1 })
  try {
    copyFileSync(second.cert, cert)
    copyFileSync(second.key, key)
    server.proc?.kill('SIGHUP')
    await waitFor('the reload', () => server.log.includes('TLS certificate reloaded') || undefined)
    const after = fingerprint(second.cert)
    for (const port of [server.ports.mqttTls, server.ports.wss, server.ports.https, server.ports.xmppWs]) assert.equal(await presented(port), after, `port ${port}`)
    assert.equal(await presentedAfterStartTls(server.ports.xmpp), after, 'XMPP STARTTLS')
    // The connection made before the reload is still up and still gets messages.
    assert.equal((await server.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: 'after-reload', body: 'still here' })).status, 201)
    await waitFor('the message on the old connection', () => got.includes('after-reload') || undefined)
    assert.equal(B.connected, true)
    // A broken certificate file is refused and the one in use stays.
    copyFileSync(first.cert, key)
    server.proc?.kill('SIGHUP')
    await waitFor('the failed reload', () => server.log.includes('TLS certificate reload failed') || undefined)
    assert.equal(await presented(server.ports.mqttTls), after)
  } finally {
    await B.endAsync(true)
  }
})
