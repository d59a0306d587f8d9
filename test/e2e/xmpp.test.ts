// The XMPP gateway with clients nobody here wrote (@xmpp/client from npm,
// slixmpp from Debian) against the real server process: STARTTLS with a
// certificate from configuration, SASL (SCRAM-SHA-256, SCRAM-SHA-1, PLAIN)
// with the device token, the
// device id as the resource; a 1:1 chat with an MQTT device in both
// directions, in order, with receipts, markers and typing crossing over; a
// group with two MQTT users; the offline queue on login; stream management
// resumption; refusals as stream errors, the server still serving.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { xml, type Client, type Element } from '@xmpp/client'
import { announce, xmppClient } from '../helpers/xmpp-client.js'
import { WebSocket } from 'ws'
import { Device, TestServer, cli, tempDir, waitFor, type DeviceCreds } from '../helpers/server.js'
import { selfSignedCert } from '../helpers/tls.js'

// @xmpp/client's STARTTLS takes no CA option; the test certificate is self-signed,
// so this test process (only) skips verification. The TLS itself is real.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
// @xmpp/client's WebSocket transport uses the global WebSocket, which Node 20 lacked: ws stands in where it is missing.
;(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket

const certDir = mkdtempSync(join(tmpdir(), 'mqchat-xmpp-cert-'))
const { cert, key } = selfSignedCert(certDir, 'localhost')

// A publish burst large enough for the 200-message group test's senders (the budget itself is tested
// elsewhere); a stanza rate (50/s, bursts of 250) small enough for the flood case. The group test's XMPP
// client sends about 80 charged elements in all (67 messages, sign-in, joins, queries), inside the burst
// however the machine paces it; its answers to the server's <r/> (about 200, more on a busy machine) are
// not charged.
// Every client here comes from 127.0.0.1, and a busy machine notices closed connections late: the per-address
// cap on connections not yet signed in (10 by default; tested in attacks.test.ts) is raised for this file.
const server = new TestServer({ MQCHAT_XMPP_MAX_UNAUTHENTICATED_PER_ADDRESS: '200', MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_PORT: '0', MQCHAT_XMPP_WS_PORT: '0', MQCHAT_XMPP_DOMAIN: 'localhost', MQCHAT_XMPP_TLS_CERT: cert, MQCHAT_XMPP_TLS_KEY: key, MQCHAT_PUBLISH_BURST: '1000', MQCHAT_XMPP_STANZA_RATE: '50', MQCHAT_DISAPPEARING_TIMERS: '2,86400', MQCHAT_EXPIRY_SWEEP_SECONDS: '1' })
const clients: Client[] = []
before(async () => { await server.start() })
after(async () => {
  for (const c of clients) await stopClient(c)
  await server.dispose()
  rmSync(certDir, { recursive: true, force: true })
})

/** Ends a client for good: its reconnecting too, which stop() leaves on (a loop of connection attempts would keep this process alive). */
async function stopClient (c: Client): Promise<void> {
  c.reconnect.stop()
  await c.stop().catch(() => {})
}

let n = 0
const phone = (): string => `+1555300${String(++n).padStart(4, '0')}`

/** `trace`: the client's status changes, errors and nonzas other than stream management acks, for failure messages. */
interface XmppDevice {
  xmpp: Client
  jid: string
  stanzas: Element[]
  messages: Element[]
  trace: string[]
  /** xmpp.send, but on a connection that is gone it fails saying why (how the stream ended) instead of with @xmpp/client's TypeError on its null socket. */
  send: (el: Element) => Promise<void>
}

/** An XMPP client signed in as a device and available (initial presence sent); collects what it receives: `messages` are those with a body. */
async function xmppDevice (creds: DeviceCreds, service = `xmpp://127.0.0.1:${server.ports.xmpp}`): Promise<XmppDevice> {
  const xmpp = xmppClient({ service, domain: 'localhost', username: creds.userId, password: creds.token })
  const trace: string[] = []
  let ended = ''
  xmpp.on('error', (err: Error & { condition?: string }) => {
    trace.push(`error ${err.message}`)
    if (err.condition !== undefined) ended = ` after the stream error ${err.condition}${err.message ? `: ${err.message}` : ''}`
  })
  const t0 = Date.now()
  xmpp.on('status', (status: string) => { trace.push(`status ${status} +${Date.now() - t0} ms`) })
  xmpp.on('nonza', (el: Element) => { if (!(el.attrs.xmlns === 'urn:xmpp:sm:3' && (el.name === 'a' || el.name === 'r'))) trace.push(`nonza ${el.toString().slice(0, 300)}`) })
  const stanzas: Element[] = []
  const messages: Element[] = []
  xmpp.on('stanza', (s: Element) => {
    stanzas.push(s)
    if (s.is('message') && s.getChild('body')) messages.push(s)
  })
  clients.push(xmpp)
  const began = Date.now()
  const address = await xmpp.start().catch((err: Error) => {
    err.message += ` (signing in as ${creds.deviceId}, ${Date.now() - began} ms: ${trace.join('; ')})`
    throw err
  })
  await announce(xmpp)
  const send = async (el: Element): Promise<void> => {
    if (xmpp.status !== 'online') throw new Error(`cannot send <${el.name}>: the XMPP connection is ${xmpp.status}${ended}`)
    await xmpp.send(el)
  }
  return { xmpp, jid: address.toString(), stanzas, messages, trace, send }
}

/** Runs `body`; a failure carries what the client saw happen to its connection and the server log's end. */
async function explained (x: XmppDevice, body: () => Promise<void>): Promise<void> {
  try {
    await body()
  } catch (err) {
    const e = err as Error
    e.message += `\n--- ${x.jid}: ${x.trace.slice(-30).join('\n')}\n--- server log (end):\n${server.log.slice(-6000)}`
    throw e
  }
}

/** The SASL mechanism of each XMPP sign-in so far, by full JID, from the server's log. */
function signIns (): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of server.log.split('\n')) {
    if (!line.includes('"xmpp sign-in"')) continue
    const entry = JSON.parse(line) as { jid: string, mechanism: string }
    out.set(entry.jid, entry.mechanism)
  }
  return out
}

/** Two new users: `a` signed in over XMPP (`x`), `b` over MQTT (`mq`). */
async function xmppAndMqtt (opts: { live?: boolean, service?: string } = {}): Promise<{ a: DeviceCreds, b: DeviceCreds, x: XmppDevice, mq: Device }> {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const x = await xmppDevice(a, opts.service)
  const mq = await new Device(server, b).connect({ live: opts.live })
  return { a, b, x, mq }
}

/** A message archive query (XEP-0313) from an XMPP device: its result stanzas, their bodies, and the <fin/>. */
async function mamQuery (x: XmppDevice, set: Element, opts: { to?: string, form?: Record<string, string> } = {}): Promise<{ results: Element[], bodies: string[], fin: Element }> {
  const queryid = `q${Math.random().toString(36).slice(2)}`
  const form = opts.form !== undefined
    ? [xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...Object.entries({ FORM_TYPE: 'urn:xmpp:mam:2', ...opts.form }).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))))]
    : []
  const reply = await x.xmpp.iqCaller.request(xml('iq', { type: 'set', ...(opts.to !== undefined ? { to: opts.to } : {}) }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid }, ...form, set)))
  const results = x.stanzas.filter((m) => m.is('message') && m.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === queryid)
  const bodies = results.map((m) => m.getChild('result')?.getChild('forwarded')?.getChild('message')?.getChildText('body') ?? '')
  return { results, bodies, fin: reply.getChild('fin', 'urn:xmpp:mam:2') as Element }
}
const rsm = (...children: Element[]): Element => xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, ...children)

const NS_RECEIPTS = 'urn:xmpp:receipts'
const NS_MARKERS = 'urn:xmpp:chat-markers:0'
const NS_STATES = 'http://jabber.org/protocol/chatstates'
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user'
const seqOf = (m: Element): number => Number(m.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id?.split(':')[1])

test('an @xmpp/client device and an MQTT device chat 1:1: the same messages, in the same order, with the chat seq', async () => {
  const { a, b, x, mq } = await xmppAndMqtt()
  assert.equal(x.jid, `${a.userId}@localhost/${a.deviceId}`, 'the resource is the device id')
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
  await stopClient(first.xmpp)
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

test('mqchat whoami shows the device\'s XMPP address, and an XMPP client signs in with it and the profile\'s token', async () => {
  const home = tempDir('mqchat-xmpp-cli-')
  const env = { MQCHAT_SERVER: server.url }
  const reg = await cli(home, ['register', '+15553999001', '--profile', 'x', '--json'], env)
  assert.equal(reg.code, 0, reg.stderr)
  const ver = await cli(home, ['verify', '+15553999001', JSON.parse(reg.stdout).code as string, '--profile', 'x', '--json'], env)
  assert.equal(ver.code, 0, ver.stderr)
  const who = await cli(home, ['whoami', '--profile', 'x', '--json'], env)
  assert.equal(who.code, 0, who.stderr)
  const j = JSON.parse(who.stdout) as { user_id: string, device_id: string, xmpp_jid: string, xmpp_port: number }
  assert.equal(j.xmpp_jid, `${j.user_id}@localhost/${j.device_id}`)
  assert.equal(j.xmpp_port, server.ports.xmpp)
  const text = await cli(home, ['whoami', '--profile', 'x'], env)
  assert.match(text.stdout, new RegExp(`XMPP: ${j.user_id}@localhost/${j.device_id} on port ${server.ports.xmpp}`))
  const { readFileSync } = await import('node:fs')
  const token = (JSON.parse(readFileSync(join(home, 'x.json'), 'utf8')) as { token: string }).token
  const x = await xmppDevice({ userId: j.user_id, deviceId: j.device_id, token, phone: '+15553999001' })
  assert.equal(x.jid, j.xmpp_jid)
})

test('a message id used again: the same text is a resend (dropped), a different text is a new message (kept)', async () => {
  const { b, x, mq } = await xmppAndMqtt()
  try {
    const send = (body: string): Promise<void> => x.xmpp.send(xml('message', { type: 'chat', to: `${b.userId}@localhost`, id: 'reused-1' }, xml('body', {}, body)))
    await send('first')
    const first = await mq.waitEvent('the first message', (e) => e.type === 'msg' && e.body === 'first')
    await send('first')
    await send('second')
    await mq.waitEvent('the second message, under a fresh id', (e) => e.type === 'msg' && e.body === 'second')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const bodies = mq.of('msg', first.chat as string).map((e) => e.body)
    assert.deepEqual(bodies, ['first', 'second'])
  } finally {
    await mq.close()
  }
})

test('XMPP over WebSocket (RFC 7395, wss): an @xmpp/client device logs in and chats 1:1 with an MQTT device', async () => {
  const { a, b, x, mq } = await xmppAndMqtt({ service: `wss://127.0.0.1:${server.ports.xmppWs}/xmpp-websocket` })
  assert.equal(x.jid, `${a.userId}@localhost/${a.deviceId}`)
  try {
    for (let i = 0; i < 5; i++) await x.xmpp.send(xml('message', { type: 'chat', to: `${b.userId}@localhost`, id: `w${i}` }, xml('body', {}, `over ws ${i}`)))
    const chat = (await mq.waitEvent('a message over WebSocket', (e) => e.type === 'msg')).chat as string
    assert.deepEqual((await mq.waitCount('msg', chat, 5)).map((e) => e.body), Array.from({ length: 5 }, (_, i) => `over ws ${i}`))
    for (let i = 0; i < 5; i++) await mq.publish(chat, { id: `wb${i}`, body: `to ws ${i}` })
    await waitFor('5 messages over WebSocket', () => x.messages.length >= 5 ? true : undefined)
    assert.deepEqual(x.messages.map(seqOf), [6, 7, 8, 9, 10])
  } finally {
    await mq.close()
  }
  // A binary frame is not XML: that stream ends (not-well-formed); others go on.
  const ws = new WebSocket(`wss://127.0.0.1:${server.ports.xmppWs}/xmpp-websocket`, ['xmpp'])
  const frames: string[] = []
  ws.on('message', (d: Buffer) => frames.push(d.toString()))
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
  await waitFor('the open and the features', () => frames.length >= 2 ? true : undefined)
  assert.match(frames[0], /^<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/)
  assert.match(frames[1], /<stream:features xmlns:stream='http:\/\/etherx.jabber.org\/streams'>.*PLAIN/, 'no STARTTLS on a WebSocket: login is offered at once')
  ws.send(Buffer.from([1, 2, 3]), { binary: true })
  await waitFor('not-well-formed', () => frames.find((f) => f.includes('not-well-formed')))
  await waitFor('the close', () => frames.find((f) => f.startsWith('<close')))
  ws.terminate()
})

test('receipts (XEP-0184), markers (XEP-0333) and typing (XEP-0085) cross between an XMPP client and an MQTT device', async () => {
  const { a, b, x, mq } = await xmppAndMqtt({ live: true })
  try {
    // XMPP -> MQTT, with a receipt request and markable: the MQTT device's watermarks come back as receipts and markers.
    await x.xmpp.send(xml('message', { type: 'chat', to: `${b.userId}@localhost`, id: 'r1' }, xml('body', {}, 'hi'), xml('request', { xmlns: NS_RECEIPTS }), xml('markable', { xmlns: NS_MARKERS })))
    const msg = await mq.waitEvent('the XMPP message', (e) => e.type === 'msg' && e.body === 'hi')
    const chat = msg.chat as string
    await mq.publish(chat, { type: 'delivered', seq: msg.seq }, 'receipt')
    await waitFor('the XEP-0184 receipt for r1', () => x.stanzas.find((m) => m.getChild('received', NS_RECEIPTS)?.attrs.id === 'r1'))
    await waitFor('the received marker for r1', () => x.stanzas.find((m) => m.getChild('received', NS_MARKERS)?.attrs.id === 'r1'))
    await mq.publish(chat, { type: 'read', seq: msg.seq }, 'receipt')
    const displayed = await waitFor('the displayed marker for r1', () => x.stanzas.find((m) => m.getChild('displayed', NS_MARKERS)?.attrs.id === 'r1'))
    assert.equal(displayed.attrs.from, `${b.userId}@localhost`)

    // MQTT -> XMPP: the stanza asks for receipts; the XMPP client's receipt and marker name it by its id (<chat>:<seq>) and become watermarks.
    await mq.publish(chat, { id: 'm1', body: 'yo' })
    const got = await waitFor('the MQTT message at the XMPP device', () => x.messages.find((m) => m.getChildText('body') === 'yo'))
    const seq = seqOf(got)
    assert.equal(got.attrs.id, `${chat}:${seq}`)
    assert.ok(got.getChild('request', NS_RECEIPTS) && got.getChild('markable', NS_MARKERS), 'receipts and markers are requested')
    assert.equal(got.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id, 'm1', 'the sender\'s own id travels as the origin id')
    await x.xmpp.send(xml('message', { to: got.attrs.from, type: 'chat' }, xml('received', { xmlns: NS_RECEIPTS, id: got.attrs.id })))
    await mq.waitEvent('delivered from the XMPP user', (e) => e.type === 'receipt' && e.user === a.userId && e.delivered === seq)
    await x.xmpp.send(xml('message', { to: got.attrs.from, type: 'chat' }, xml('displayed', { xmlns: NS_MARKERS, id: got.attrs.id })))
    await mq.waitEvent('read from the XMPP user', (e) => e.type === 'receipt' && e.user === a.userId && e.read === seq)

    // Typing both ways.
    await x.xmpp.send(xml('message', { to: `${b.userId}@localhost`, type: 'chat' }, xml('composing', { xmlns: NS_STATES })))
    await waitFor('typing at the MQTT device', () => mq.live.find((e) => e.type === 'typing' && e.user === a.userId && e.chat === chat && e.state === 'typing'))
    await mq.publish(chat, { state: 'typing' }, 'typing', 0)
    const composing = await waitFor('composing at the XMPP device', () => x.stanzas.find((m) => m.getChild('composing', NS_STATES) !== undefined))
    assert.equal(composing.attrs.from, `${b.userId}@localhost`)
  } finally {
    await mq.close()
  }
})

interface SlixEvent { event: string, [k: string]: unknown }

test('slixmpp (Debian) chats 1:1 with an MQTT device over STARTTLS: messages in order both ways, receipts, markers, typing, roster', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const mq = await new Device(server, b).connect({ live: true })
  const created = await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })
  const chat = created.body.chat_id as string
  const script = fileURLToPath(new URL('../../../test/clients/slixmpp_peer.py', import.meta.url))
  const py = spawn('/usr/bin/python3', [script], {
    env: { PATH: process.env.PATH ?? '', JID: `${a.userId}@localhost/slix`, PASSWORD: a.token, HOST: '127.0.0.1', PORT: String(server.ports.xmpp), CAFILE: cert, PEER: `${b.userId}@localhost`, SEND: '10' },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  const events: SlixEvent[] = []
  let stderr = ''
  py.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  createInterface({ input: py.stdout }).on('line', (line) => { try { events.push(JSON.parse(line) as SlixEvent) } catch { stderr += line + '\n' } })
  const ev = (what: string, pred: (e: SlixEvent) => boolean): Promise<SlixEvent> => waitFor(`slixmpp: ${what} (stderr: ${stderr.slice(-500)})`, () => events.find(pred), 20_000)
  try {
    const session = await ev('session start', (e) => e.event === 'session')
    assert.equal(session.jid, `${a.userId}@localhost/${a.deviceId}`, 'the resource is the device id')
    assert.equal(signIns().get(session.jid as string), 'SCRAM-SHA-256', 'slixmpp picks the strongest mechanism offered')
    assert.deepEqual(session.roster, [`${b.userId}@localhost`], 'the roster is who the user shares chats with')
    // slixmpp -> MQTT: typing first, then 10 messages in order.
    await waitFor('typing from slixmpp', () => mq.live.find((e) => e.type === 'typing' && e.user === a.userId && e.state === 'typing'), 20_000)
    const got = await mq.waitCount('msg', chat, 10, 20_000)
    assert.deepEqual(got.map((e) => e.body), Array.from({ length: 10 }, (_, i) => `from slixmpp ${i}`))
    assert.deepEqual(got.map((e) => e.id), Array.from({ length: 10 }, (_, i) => `s${i}`))
    // The MQTT device reads them: slixmpp gets a receipt for each (auto-requested) and the displayed marker.
    await mq.publish(chat, { type: 'read', seq: got[9].seq }, 'receipt')
    for (let i = 0; i < 10; i++) await ev(`receipt s${i}`, (e) => e.event === 'receipt' && e.id === `s${i}`)
    // MQTT -> slixmpp: 10 messages, in order, each with its seq; slixmpp's automatic receipts and its displayed markers come back as watermarks.
    await mq.publish(chat, { state: 'typing' }, 'typing', 0)
    await ev('composing', (e) => e.event === 'composing' && e.frm === `${b.userId}@localhost`)
    for (let i = 0; i < 10; i++) await mq.publish(chat, { id: `b${i}`, body: `from mqtt ${i}` })
    await waitFor('10 messages at slixmpp', () => events.filter((e) => e.event === 'msg').length >= 10 ? true : undefined, 20_000)
    const msgs = events.filter((e) => e.event === 'msg')
    assert.deepEqual(msgs.map((e) => e.body), Array.from({ length: 10 }, (_, i) => `from mqtt ${i}`))
    assert.deepEqual(msgs.map((e) => Number(String(e.stanza_id).split(':')[1])), Array.from({ length: 10 }, (_, i) => 11 + i))
    await mq.waitEvent('delivered up to the last (slixmpp receipts)', (e) => e.type === 'receipt' && e.user === a.userId && e.delivered === 20, 20_000)
    await mq.waitEvent('read up to the last (slixmpp markers)', (e) => e.type === 'receipt' && e.user === a.userId && e.read === 20, 20_000)
  } finally {
    py.stdin.end()
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { py.kill('SIGKILL'); resolve() }, 5000)
      py.once('exit', () => { clearTimeout(t); resolve() })
    })
    await mq.close()
  }
})

test('a group with one XMPP user and two MQTT users: join, member list, 200 interleaved messages in one seq order at all three; a removed member is refused', async () => {
  const [a, b, c] = [await server.register(phone()), await server.register(phone()), await server.register(phone())]
  const group = await server.api('POST', '/v1/chats', b.token, { kind: 'group', name: 'three', members: [a.userId, c.userId] })
  const g = group.body.chat_id as string
  const room = `${g}@groups.localhost`
  const x = await xmppDevice(a)
  const mb = await new Device(server, b).connect()
  const mc = await new Device(server, c).connect()
  try {
    await explained(x, async () => {
      // Joining: the other members' presences, then the user's own (110: this is you), then the subject.
      await x.send(xml('presence', { to: `${room}/whatever` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })))
      const self = await waitFor('the self-presence', () => x.stanzas.find((p) => p.is('presence') && p.getChild('x', NS_MUC_USER)?.getChildren('status').some((st) => st.attrs.code === '110')))
      assert.equal(self.attrs.from, `${room}/${a.userId}`, 'the nickname is the user id')
      const occupants = x.stanzas.filter((p) => p.is('presence') && p.attrs.from?.startsWith(`${room}/`)).map((p) => p.attrs.from?.split('/')[1]).sort()
      assert.deepEqual(occupants, [a.userId, b.userId, c.userId].sort())
      await waitFor('the subject', () => x.stanzas.find((m) => m.is('message') && m.getChildText('subject') === 'three'))
      const list = await x.xmpp.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation: 'member' })), room)
      assert.deepEqual(list.getChildren('item').map((i: Element) => i.attrs.jid).sort(), [`${a.userId}@localhost`, `${c.userId}@localhost`].sort(), 'members (b created the group: admin)')

      // 200 messages, round robin from the three, none waiting for the previous one.
      const sends: Array<Promise<unknown>> = []
      for (let i = 0; i < 200; i++) {
        const body = `m${i}`
        if (i % 3 === 0) sends.push(x.send(xml('message', { type: 'groupchat', to: room, id: `x${i}` }, xml('body', {}, body))))
        else sends.push((i % 3 === 1 ? mb : mc).publish(g, { id: `q${i}`, body }))
      }
      await Promise.all(sends)
      // XMPP: everything, its own messages reflected, in seq order 1..200.
      await waitFor('200 group messages at the XMPP user', () => x.messages.filter((m) => m.attrs.type === 'groupchat').length >= 200 ? true : undefined, 60_000)
      const xm = x.messages.filter((m) => m.attrs.type === 'groupchat')
      assert.deepEqual(xm.map(seqOf), Array.from({ length: 200 }, (_, i) => i + 1), 'the XMPP user sees seqs 1..200 in order, its own included')
      const order = new Map(xm.map((m) => [seqOf(m), m.getChildText('body')]))
      // MQTT: the others' messages as msg events in increasing seq, their own as acks; the same seq for the same message everywhere.
      for (const d of [mb, mc]) {
        const others = await d.waitCount('msg', g, 200 - d.of('ack', g).length, 60_000)
        const acks = await d.waitCount('ack', g, d === mb ? 67 : 66, 60_000)
        const seqs = others.map((e) => e.seq as number)
        assert.deepEqual(seqs, [...seqs].sort((p, q) => p - q), 'msg events in seq order')
        for (const e of others) assert.equal(order.get(e.seq as number), e.body, `seq ${String(e.seq)} is the same message at ${d.creds.userId}`)
        assert.equal(new Set([...seqs, ...acks.map((e) => e.seq as number)]).size, 200)
      }

      // Membership changes reach the XMPP user as room presence and roster pushes.
      const roster = await x.xmpp.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }))
      assert.deepEqual(roster.getChildren('item').map((i: Element) => i.attrs.jid).sort(), [`${b.userId}@localhost`, `${c.userId}@localhost`].sort())
      const d = await server.register(phone())
      assert.equal((await server.api('POST', `/v1/chats/${g}/members`, b.token, { users: [d.userId] })).status, 200)
      await waitFor('the new member in the room', () => x.stanzas.find((p) => p.is('presence') && p.attrs.from === `${room}/${d.userId}` && p.attrs.type === undefined))
      const rosterPush = (jid: string, subscription: string) => () => x.stanzas.find((st) => st.is('iq') && st.attrs.type === 'set' &&
        st.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.jid === jid && st.getChild('query', 'jabber:iq:roster')?.getChild('item')?.attrs.subscription === subscription)
      await waitFor('a roster push for the new contact', rosterPush(`${d.userId}@localhost`, 'both'))

      // b removes a: a sees itself leave (110, 321) and its contacts from this group go;
      // a's next group message over XMPP is refused (forbidden), and so is joining again.
      const removed = await server.api('DELETE', `/v1/chats/${g}/members/${a.userId}`, b.token)
      assert.equal(removed.status, 204)
      const gone = await waitFor('the removal as room presence', () => x.stanzas.find((p) => p.is('presence') && p.attrs.type === 'unavailable' && p.attrs.from === `${room}/${a.userId}`))
      assert.deepEqual(gone.getChild('x', NS_MUC_USER)?.getChildren('status').map((st: Element) => st.attrs.code), ['110', '321'])
      await waitFor('a roster removal', rosterPush(`${c.userId}@localhost`, 'remove'))
      await x.send(xml('message', { type: 'groupchat', to: room, id: 'after' }, xml('body', {}, 'still here?')))
      const refused = await waitFor('the refusal', () => x.stanzas.find((m) => m.is('message') && m.attrs.type === 'error' && m.attrs.id === 'after'))
      assert.ok(refused.getChild('error')?.getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas'), refused.toString())
      await x.send(xml('presence', { to: `${room}/${a.userId}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })))
      const denied = await waitFor('the join refusal', () => x.stanzas.find((p) => p.is('presence') && p.attrs.type === 'error'))
      assert.ok(denied.getChild('error')?.getChild('registration-required', 'urn:ietf:params:xml:ns:xmpp-stanzas'))
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.ok(!mb.of('msg', g).some((e) => e.body === 'still here?'), 'nothing from a removed member reaches the group')
    })
  } finally {
    await mb.close()
    await mc.close()
  }
})

test('message archive (XEP-0313): a contact\'s and a group\'s history, paged by <chatId>:<seq>', async () => {
  const { a, b, x, mq } = await xmppAndMqtt()
  try {
    const direct = (await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    for (let i = 1; i <= 30; i++) await mq.publish(direct, { id: `h${i}`, body: `history ${i}` })
    await mq.waitCount('ack', direct, 30)
    const p1 = await mamQuery(x, rsm(xml('max', {}, '10')), { form: { with: `${b.userId}@localhost` } })
    assert.deepEqual(p1.bodies, Array.from({ length: 10 }, (_, i) => `history ${i + 1}`))
    assert.equal(p1.fin.attrs.complete, 'false')
    const last = p1.fin.getChild('set')?.getChildText('last') as string
    assert.equal(last, `${direct}:10`)
    const p2 = await mamQuery(x, rsm(xml('max', {}, '10'), xml('after', {}, last)), { form: { with: `${b.userId}@localhost` } })
    assert.deepEqual(p2.bodies, Array.from({ length: 10 }, (_, i) => `history ${i + 11}`))
    const tail = await mamQuery(x, rsm(xml('max', {}, '5'), xml('before')), { form: { with: `${b.userId}@localhost` } })
    assert.deepEqual(tail.bodies, Array.from({ length: 5 }, (_, i) => `history ${i + 26}`), 'an empty <before/> is the last page')
    const rest = await mamQuery(x, rsm(xml('max', {}, '50'), xml('after', {}, `${direct}:25`)), { form: { with: `${b.userId}@localhost` } })
    assert.equal(rest.fin.attrs.complete, 'true')
    assert.equal(rest.results.length, 5)

    // A group's archive is read from its room, by members only.
    const g = (await server.api('POST', '/v1/chats', b.token, { kind: 'group', name: 'archived', members: [a.userId] })).body.chat_id as string
    for (let i = 1; i <= 3; i++) await mq.publish(g, { id: `gh${i}`, body: `group ${i}` })
    await mq.waitCount('ack', g, 3)
    const room = await mamQuery(x, rsm(xml('max', {}, '50')), { to: `${g}@groups.localhost`, form: {} })
    assert.deepEqual(room.bodies, ['group 1', 'group 2', 'group 3'])
    assert.equal(room.results[0].getChild('result')?.getChild('forwarded')?.getChild('message')?.attrs.from, `${g}@groups.localhost/${b.userId}`)
    const outsider = await xmppDevice(await server.register(phone()))
    await assert.rejects(outsider.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${g}@groups.localhost` }, xml('query', { xmlns: 'urn:xmpp:mam:2' }))),
      (err: Error & { condition?: string }) => err.condition === 'forbidden')
  } finally {
    await mq.close()
  }
})

test('message archive: a disappearing message is in it until it expires, and never after', async () => {
  const { a, b, x, mq } = await xmppAndMqtt()
  try {
    const direct = (await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    await mq.publish(direct, { id: 'keep-1', body: 'kept' })
    assert.equal((await server.api('POST', `/v1/chats/${direct}/messages`, b.token, { id: 'timer-2s', type: 'timer', body: { seconds: 2 } })).status, 201)
    await mq.publish(direct, { id: 'gone-1', body: 'gone soon' })
    await mq.waitCount('ack', direct, 2)
    const bodies = async (): Promise<string[]> => (await mamQuery(x, rsm(xml('max', {}, '50')), { form: { with: `${b.userId}@localhost` } })).bodies
    assert.ok((await bodies()).includes('gone soon'))
    await waitFor('the archive to drop the expired message', async () => !(await bodies()).includes('gone soon') || undefined, 10_000)
    assert.ok((await bodies()).includes('kept'))
  } finally {
    await x.xmpp.stop()
    await mq.close()
  }
})

test('message archive without "with": every direct chat of the user, in time order, paged across chats', async () => {
  const { a, b, x, mq } = await xmppAndMqtt()
  const c = await server.register(phone())
  const mc = await new Device(server, c).connect()
  try {
    const chatB = (await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    const chatC = (await server.api('POST', '/v1/chats', c.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    // Interleaved in time across the two chats (a few ms apart, so server times differ).
    const sent: string[] = []
    for (let i = 0; i < 12; i++) {
      const body = `${i % 2 === 0 ? 'b' : 'c'}${i}`
      await (i % 2 === 0 ? mq : mc).publish(i % 2 === 0 ? chatB : chatC, { id: `t${i}`, body })
      sent.push(body)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await mq.waitCount('ack', chatB, 6)
    await mc.waitCount('ack', chatC, 6)
    const got: string[] = []
    let after: string | undefined
    for (let n = 0; n < 5; n++) {
      const p = await mamQuery(x, rsm(xml('max', {}, '5'), ...(after !== undefined ? [xml('after', {}, after)] : [])))
      got.push(...p.bodies)
      after = p.fin.getChild('set')?.getChildText('last') ?? undefined
      if (p.fin.attrs.complete === 'true') break
    }
    assert.deepEqual(got, sent, 'every message of both chats, once, in time order, across pages of 5')
    const newest = await mamQuery(x, rsm(xml('max', {}, '3'), xml('before')))
    assert.deepEqual(newest.bodies, sent.slice(-3))
    const older = await mamQuery(x, rsm(xml('max', {}, '3'), xml('before', {}, newest.fin.getChild('set')?.getChildText('first') ?? '')))
    assert.deepEqual(older.bodies, sent.slice(-6, -3))
  } finally {
    await mq.close()
    await mc.close()
  }
})

test('the same device signing in over MQTT takes over: the XMPP stream ends with conflict, and the MQTT session gets what follows', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const x = await xmppDevice(a)
  const errors: Array<Error & { condition?: string }> = []
  x.xmpp.on('error', (err: Error & { condition?: string }) => { errors.push(err) })
  const same = await new Device(server, a).connect()
  const other = await new Device(server, b).connect()
  try {
    await waitFor('conflict at the XMPP client', () => errors.find((e) => e.condition === 'conflict'))
    await stopClient(x.xmpp)
    const created = await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })
    await other.publish(created.body.chat_id as string, { id: 'after-takeover', body: 'to mqtt' })
    await same.waitEvent('the message on the MQTT session', (e) => e.type === 'msg' && e.id === 'after-takeover')
  } finally {
    await same.close()
    await other.close()
  }
})

test('stream management: a connection killed mid-stream and resumed loses nothing and duplicates nothing', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const x = await xmppDevice(a)
  await waitFor('stream management enabled', () => x.xmpp.streamManagement.id !== '' ? true : undefined)
  const sm = x.xmpp.streamManagement
  let resumed = 0
  sm.on('resumed', () => { resumed++ })
  const mq = await new Device(server, b).connect()
  try {
    const created = await server.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })
    const chat = created.body.chat_id as string
    let killed = false
    x.xmpp.on('stanza', () => {
      // Mid-stream: the 30th message has arrived, more are on the wire.
      if (!killed && x.messages.length >= 30) { killed = true; x.xmpp.socket?.socket?.destroy() }
    })
    const sends: Array<Promise<unknown>> = []
    for (let i = 0; i < 150; i++) sends.push(mq.publish(chat, { id: `k${i}`, body: `k${i}` }))
    await Promise.all(sends)
    await waitFor('150 messages at the XMPP device', () => x.messages.length >= 150 ? true : undefined, 30_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.ok(killed, 'the connection was killed mid-stream')
    assert.equal(resumed, 1, 'the session was resumed, not started anew')
    assert.deepEqual(x.messages.map(seqOf), Array.from({ length: 150 }, (_, i) => i + 1), 'every message once, in order')
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
  // An iq in a namespace the gateway does not know: service-unavailable, and the stream stays up.
  const curious = await xmppDevice(await server.register(phone()))
  await assert.rejects(curious.xmpp.iqCaller.get(xml('query', { xmlns: 'urn:example:unknown' }), 'localhost'),
    (err: Error & { condition?: string }) => err.condition === 'service-unavailable')
  await curious.xmpp.iqCaller.get(xml('ping', { xmlns: 'urn:xmpp:ping' }), 'localhost')
  // A flood of stanzas after login (pings: nothing the MQTT rate limit would see) ends that stream with policy-violation.
  const flooder = await xmppDevice(await server.register(phone()))
  const errors: Array<Error & { condition?: string }> = []
  flooder.xmpp.on('error', (err: Error & { condition?: string }) => { errors.push(err) })
  for (let i = 0; i < 1000; i++) flooder.xmpp.send(xml('iq', { type: 'get', id: `p${i}`, to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' }))).catch(() => {})
  await waitFor('the flood refused', () => errors.find((e) => e.condition === 'policy-violation'))
  await stopClient(flooder.xmpp)
  // Still serving: a new XMPP login works.
  const a = await server.register(phone())
  const x = await xmppDevice(a)
  assert.equal(x.jid, `${a.userId}@localhost/${a.deviceId}`)
})

/**
 * Raw SASL after a real STARTTLS: sends `open`, then each of `steps` once the
 * server's previous answer (a SASL element or the stream features) is in.
 * Resolves with everything the server wrote after the TLS handshake.
 */
function rawSasl (steps: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const plain = connect(server.ports.xmpp, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => { plain.destroy(); reject(new Error(`no answer: ${out}`)) }, timeoutMs)
    plain.on('error', () => {})
    plain.on('connect', () => plain.write(OPEN))
    plain.on('data', (d) => {
      out += d.toString()
      if (out.includes('<starttls')) { out = ''; plain.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") }
      if (!out.includes('<proceed')) return
      plain.removeAllListeners('data')
      out = ''
      const tls = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false }, () => tls.write(OPEN))
      const answered = /<\/stream:features>|<\/(failure|challenge|success)>|<(failure|challenge|success)[^>]*\/>/g
      let next = 0
      tls.on('data', (d) => {
        out += d.toString()
        const answers = out.match(answered)?.length ?? 0
        if (answers > next && next < steps.length) tls.write(steps[next++] as string)
        else if (answers > steps.length) { clearTimeout(timer); tls.destroy(); resolve(out) }
      })
      tls.on('error', () => {})
      tls.on('close', () => { clearTimeout(timer); resolve(out) })
    })
  })
}

test('SASL: @xmpp/client uses SCRAM-SHA-1 and PLAIN when asked; each of a user\'s devices signs in as itself; a revoked device, a wrong token and broken exchanges are refused', async () => {
  const a = await server.register(phone())
  const laptop = await server.link(a)
  const features = await rawSasl([])
  assert.match(features, /<mechanisms xmlns=.urn:ietf:params:xml:ns:xmpp-sasl.><mechanism>SCRAM-SHA-256<\/mechanism><mechanism>SCRAM-SHA-1<\/mechanism><mechanism>PLAIN<\/mechanism><\/mechanisms>/)
  // SCRAM names the user, not the device: the proof picks the device, whichever of the user's it is.
  for (const d of [a, laptop]) {
    const x = await xmppDevice(d)
    assert.equal(x.jid, `${a.userId}@localhost/${d.deviceId}`)
    assert.equal(signIns().get(x.jid), 'SCRAM-SHA-1')
    await stopClient(x.xmpp)
  }
  const plain = xmppClient({ service: `xmpp://127.0.0.1:${server.ports.xmpp}`, domain: 'localhost', credentials: async (auth) => await auth({ username: a.userId, password: a.token }, 'PLAIN') })
  plain.on('error', () => {})
  clients.push(plain)
  const plainJid = (await plain.start()).toString()
  assert.equal(plainJid, `${a.userId}@localhost/${a.deviceId}`)
  assert.equal(signIns().get(plainJid), 'PLAIN')
  await stopClient(plain)

  const refused = async (creds: { username: string, password: string }, mechanism?: string): Promise<void> => {
    const xmpp = xmppClient({ service: `xmpp://127.0.0.1:${server.ports.xmpp}`, domain: 'localhost', ...(mechanism !== undefined ? { credentials: async (auth) => await auth(creds, mechanism) } : creds) })
    xmpp.on('error', () => {})
    clients.push(xmpp)
    const what = `${creds.password.slice(0, 20)} ${mechanism ?? 'SCRAM-SHA-1'}`
    await xmpp.start().then(() => assert.fail(`${what}: signed in`), (err: Error & { condition?: string }) => {
      assert.equal(err.condition, 'not-authorized', `${what}: ${err.name}: ${err.message}`)
    })
    await stopClient(xmpp)
  }
  await refused({ username: a.userId, password: `${a.deviceId}.wrong` })
  await refused({ username: a.userId, password: `${a.deviceId}.wrong` }, 'PLAIN')
  await refused({ username: 'u_nobody', password: a.token })
  // A revoked device: refused by SCRAM and PLAIN alike; the user's other device still signs in.
  assert.equal((await server.api('DELETE', `/v1/devices/${laptop.deviceId}`, a.token)).status, 204)
  await refused({ username: a.userId, password: laptop.token })
  await refused({ username: a.userId, password: laptop.token }, 'PLAIN')
  const still = await xmppDevice(a)
  assert.equal(still.jid, `${a.userId}@localhost/${a.deviceId}`)

  // Exchanges that break the rules, on a raw stream after STARTTLS.
  const b64 = (s: string): string => Buffer.from(s).toString('base64')
  const auth = (mechanism: string, body: string): string => `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mechanism}'>${body}</auth>`
  const failure = (condition: string): RegExp => new RegExp(`<failure xmlns=.urn:ietf:params:xml:ns:xmpp-sasl.><${condition}/>`)
  assert.match(await rawSasl([auth('SCRAM-SHA-256', b64('p=tls-unique,,n=x,r=abc'))]), failure('malformed-request'))
  assert.match(await rawSasl([auth('SCRAM-SHA-1', b64('hello'))]), failure('malformed-request'))
  assert.match(await rawSasl(["<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</response>"]), failure('malformed-request'))
  assert.match(await rawSasl([auth('DIGEST-MD5', '')]), failure('invalid-mechanism'))
  // A challenge, then the client gives up.
  const aborted = await rawSasl([auth('SCRAM-SHA-256', b64(`n,,n=${a.userId},r=abcdef`)), "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"])
  assert.match(aborted, /<challenge xmlns=.urn:ietf:params:xml:ns:xmpp-sasl.>[A-Za-z0-9+/=]+<\/challenge>/)
  assert.match(aborted, failure('aborted'))
  // The wrong nonce in the client-final message.
  const nonce = await rawSasl([auth('SCRAM-SHA-256', b64(`n,,n=${a.userId},r=abcdef`)), `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${b64('c=biws,r=abcdefXYZ,p=' + b64('x'.repeat(32)))}</response>`])
  assert.match(nonce, failure('not-authorized'))
  // Still serving.
  const b = await server.register(phone())
  assert.equal((await xmppDevice(b)).jid, `${b.userId}@localhost/${b.deviceId}`)
})

/** A second server, XMPP without TLS on loopback, with `env` on top: for cases that need limits of their own. */
function plaintextXmppServer (env: Record<string, string>): TestServer {
  return new TestServer({ MQCHAT_XMPP_MAX_UNAUTHENTICATED_PER_ADDRESS: '200', MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_PORT: '0', MQCHAT_XMPP_WS_PORT: '0', MQCHAT_XMPP_DOMAIN: 'localhost', MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true', ...env })
}

test('a broker that bounds keepalive: the device link asks for one within the bound and pings, so an idle XMPP session stays linked', async () => {
  // MQCHAT_KEEPALIVE_LIMIT_SECONDS refuses a CONNECT without keepalive (aedes: 0 is over any limit); 2 s, so 5 s idle is past 1.5 × it.
  const limited = plaintextXmppServer({ MQCHAT_KEEPALIVE_LIMIT_SECONDS: '2' })
  await limited.start()
  try {
    const a = await limited.register(phone())
    const b = await limited.register(phone())
    const x = xmppClient({ service: `xmpp://127.0.0.1:${limited.ports.xmpp}`, domain: 'localhost', username: a.userId, password: a.token })
    const errors: Error[] = []
    x.on('error', (err: Error) => { errors.push(err) })
    const got: Element[] = []
    x.on('stanza', (st: Element) => { if (st.is('message') && st.getChild('body')) got.push(st) })
    clients.push(x)
    await x.start()
    await announce(x)
    await new Promise((resolve) => setTimeout(resolve, 5000))
    const chat = (await limited.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    assert.equal((await limited.api('POST', `/v1/chats/${chat}/messages`, b.token, { id: 'idle', body: 'still there?' })).status, 201)
    const m = await waitFor('the message after 5 s idle', () => got.find((st) => st.getChildText('body') === 'still there?'))
    assert.equal(seqOf(m), 1)
    assert.deepEqual(errors.map((e) => e.message), [], 'the stream was not ended')
    await stopClient(x)
  } finally {
    await limited.dispose()
  }
})

test('stream management: answers to the server\'s own <r/> are not charged to the stanza rate (a client receiving a long run stays connected); every other stanza, an unasked <a/> too, still is', async () => {
  // 2 stanzas/s, bursts of 10: sign-in and presence fit; 40 answered <r/> in a few seconds would not, were they charged.
  const slow = plaintextXmppServer({ MQCHAT_XMPP_STANZA_RATE: '2' })
  await slow.start()
  try {
    const a = await slow.register(phone())
    const b = await slow.register(phone())
    const x = await xmppDevice(a, `xmpp://127.0.0.1:${slow.ports.xmpp}`)
    const answers: Element[] = []
    x.xmpp.on('send', (el: Element) => { if (el.is('a', 'urn:xmpp:sm:3')) answers.push(el) })
    const errors: Array<Error & { condition?: string }> = []
    x.xmpp.on('error', (err: Error & { condition?: string }) => { errors.push(err) })
    const chat = (await slow.api('POST', '/v1/chats', b.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    // One message at a time, each acknowledged on its own: the server asks (<r/>) after each, the client answers each.
    for (let i = 1; i <= 40; i++) {
      assert.equal((await slow.api('POST', `/v1/chats/${chat}/messages`, b.token, { id: `run${i}`, body: `run ${i}` })).status, 201)
      await explained(x, async () => { await waitFor(`the client's answer after message ${i}`, () => answers.length >= i && x.messages.length >= i ? true : undefined) })
    }
    assert.deepEqual(x.messages.map((m) => m.getChildText('body')), Array.from({ length: 40 }, (_, i) => `run ${i + 1}`))
    // The one stream stayed up all along (@xmpp/client would reconnect and resume after a policy-violation).
    assert.deepEqual(errors.map((e) => e.message), [], 'no stream error')
    assert.equal(x.trace.filter((t) => t.startsWith('status online ')).length, 1, `signed in once: ${x.trace.join('; ')}`)
    // Unasked <a/>s are the client's own stanzas: a run of them spends the budget like any other.
    const h = String(x.xmpp.streamManagement.inbound)
    for (let i = 0; i < 30; i++) x.xmpp.send(xml('a', { xmlns: 'urn:xmpp:sm:3', h })).catch(() => {})
    await waitFor('the unasked acks refused', () => errors.find((e) => e.condition === 'policy-violation'))
    await stopClient(x.xmpp)
  } finally {
    await slow.dispose()
  }
})
