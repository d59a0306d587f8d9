// The XMPP gateway with a client nobody here wrote (@xmpp/client from npm)
// against the real server process: STARTTLS with a certificate from
// configuration, SASL PLAIN with the device token, the device id as the
// resource; a 1:1 chat with an MQTT device in both directions, in order; the
// offline queue on login; refusals as stream errors, the server still serving.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { client, xml, type Client, type Element } from '@xmpp/client'
import { Device, TestServer, waitFor, type DeviceCreds } from '../helpers/server.js'

// @xmpp/client's STARTTLS takes no CA option; the test certificate is self-signed,
// so this test process (only) skips verification. The TLS itself is real.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'

const certDir = mkdtempSync(join(tmpdir(), 'mqchat-xmpp-cert-'))
const cert = join(certDir, 'cert.pem')
const key = join(certDir, 'key.pem')
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })

const server = new TestServer({ MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_PORT: '0', MQCHAT_XMPP_DOMAIN: 'localhost', MQCHAT_XMPP_TLS_CERT: cert, MQCHAT_XMPP_TLS_KEY: key })
const clients: Client[] = []
before(async () => { await server.start() })
after(async () => {
  for (const c of clients) await c.stop().catch(() => {})
  await server.dispose()
  rmSync(certDir, { recursive: true, force: true })
})

let n = 0
const phone = (): string => `+1555300${String(++n).padStart(4, '0')}`

/** An XMPP client signed in as a device; collects the message stanzas it receives. */
async function xmppDevice (creds: DeviceCreds): Promise<{ xmpp: Client, jid: string, messages: Element[] }> {
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.ports.xmpp}`, domain: 'localhost', username: creds.userId, password: creds.token })
  xmpp.on('error', () => {})
  const messages: Element[] = []
  xmpp.on('stanza', (s: Element) => { if (s.is('message')) messages.push(s) })
  clients.push(xmpp)
  const address = await xmpp.start()
  return { xmpp, jid: address.toString(), messages }
}

test('an @xmpp/client device and an MQTT device chat 1:1: the same messages, in the same order, with the chat seq', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const x = await xmppDevice(a)
  assert.equal(x.jid, `${a.userId}@localhost/${a.deviceId}`, 'the resource is the device id')
  const mq = await new Device(server, b).connect()
  try {
    // XMPP -> MQTT: a message to the bare JID of the other user is their direct chat.
    for (let i = 0; i < 10; i++) await x.xmpp.send(xml('message', { type: 'chat', to: `${b.userId}@localhost`, id: `x${i}` }, xml('body', {}, `from xmpp ${i}`)))
    const chat = (await mq.waitEvent('a message from the XMPP device', (e) => e.type === 'msg')).chat as string
    const got = await mq.waitCount('msg', chat, 10)
    assert.deepEqual(got.map((e) => e.body), Array.from({ length: 10 }, (_, i) => `from xmpp ${i}`))
    assert.deepEqual(got.map((e) => e.id), Array.from({ length: 10 }, (_, i) => `x${i}`))
    assert.deepEqual(got.map((e) => e.device), Array(10).fill(a.deviceId))

    // MQTT -> XMPP: as stanzas from the sender's full JID, each with its seq as the stanza id.
    for (let i = 0; i < 10; i++) await mq.publish(chat, { id: `m${i}`, body: `from mqtt ${i}` })
    await waitFor('10 messages at the XMPP device', () => x.messages.length >= 10)
    assert.deepEqual(x.messages.map((m) => m.getChildText('body')), Array.from({ length: 10 }, (_, i) => `from mqtt ${i}`))
    assert.deepEqual(x.messages.map((m) => m.attrs.from), Array(10).fill(`${b.userId}@localhost/${b.deviceId}`))
    assert.deepEqual(x.messages.map((m) => m.attrs.type), Array(10).fill('chat'))
    const seqs = x.messages.map((m) => Number(m.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id?.split(':')[1]))
    assert.deepEqual(seqs, Array.from({ length: 10 }, (_, i) => 11 + i), 'seqs continue after the XMPP device\'s 10')
  } finally {
    await mq.close()
  }
})

test('messages sent while the XMPP device was offline arrive when it signs in again, in order', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const first = await xmppDevice(a)
  await first.xmpp.stop()
  const mq = await new Device(server, b).connect()
  try {
    const created = await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })
    const chat = created.body.chat_id as string
    for (let i = 0; i < 20; i++) await mq.publish(chat, { id: `q${i}`, body: `queued ${i}` })
    await mq.waitCount('ack', chat, 20)
    const again = await xmppDevice(a)
    await waitFor('20 queued messages', () => again.messages.length >= 20)
    assert.deepEqual(again.messages.map((m) => m.getChildText('body')), Array.from({ length: 20 }, (_, i) => `queued ${i}`))
  } finally {
    await mq.close()
  }
})

/** Raw bytes to the XMPP port; resolves with everything the server wrote until it closed the connection. */
function raw (input: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(server.ports.xmpp, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`the server did not close the stream: ${out}`)) }, timeoutMs)
    s.on('data', (d) => { out += d.toString() })
    s.on('close', () => { clearTimeout(timer); resolve(out) })
    s.on('error', () => {})
    s.on('connect', () => { for (const chunk of input) s.write(chunk) })
  })
}
const OPEN = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"

test('refusals end the stream with the RFC 6120 error, and the server keeps serving', async () => {
  const cases: Array<[string, string[], string]> = [
    ['entity declarations (billion laughs)', ["<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]>", OPEN], 'restricted-xml'],
    ['a comment', [OPEN, '<!-- hi -->'], 'restricted-xml'],
    ['malformed XML', [OPEN, '<message><body>x</bodyy></message>'], 'not-well-formed'],
    ['a stanza before STARTTLS', [OPEN, "<message to='x@localhost'><body>hi</body></message>"], 'policy-violation'],
    ['an unknown host', ["<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.example' version='1.0'>"], 'host-unknown'],
    ['a wrong stream namespace', ["<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"], 'invalid-namespace'],
    ['a stanza over the size limit', [OPEN, `<message><body>${'a'.repeat(300_000)}</body></message>`], 'policy-violation']
  ]
  for (const [what, input, condition] of cases) {
    const out = await raw(input)
    assert.match(out, new RegExp(`<stream:error><${condition} xmlns=.urn:ietf:params:xml:ns:xmpp-streams.`), `${what}: ${out.slice(0, 300)}`)
  }
  // Still serving: a new XMPP login works.
  const a = await server.register(phone())
  const x = await xmppDevice(a)
  assert.equal(x.jid, `${a.userId}@localhost/${a.deviceId}`)
})

test('a wrong token gets SASL not-authorized; the resource cannot be bound without a login', async () => {
  const a = await server.register(phone())
  const xmpp = client({ service: `xmpp://127.0.0.1:${server.ports.xmpp}`, domain: 'localhost', username: a.userId, password: `${a.deviceId}.wrong` })
  xmpp.on('error', () => {})
  clients.push(xmpp)
  await assert.rejects(xmpp.start(), (err: Error & { condition?: string }) => err.condition === 'not-authorized')
})
