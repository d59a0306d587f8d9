// Random and adversarial input against a real server (fast-check): HTTP
// bodies to every route that takes one, MQTT publish payloads to every chat
// topic, and XMPP stanzas on a signed-in stream. The property: every input
// gets its documented kind of answer (an HTTP 2xx or 4xx with an error code,
// never a 5xx; a PUBACK, with an `error` event for a refusal; an XMPP answer
// or stream error), and two other users still exchange a message afterwards.
// About 1,300 inputs per run.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import { xml, type Element } from '@xmpp/xml'
import { Bystanders, Device, TestServer, waitFor, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer({
  MQCHAT_XMPP_ENABLED: 'true',
  MQCHAT_XMPP_PORT: '0',
  MQCHAT_XMPP_WS_PORT: '0',
  MQCHAT_XMPP_DOMAIN: 'localhost',
  MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true',
  MQCHAT_PUBLISH_RATE: '10000',
  MQCHAT_PUBLISH_BURST: '10000'
})
const bystanders = new Bystanders(server, ['+15551800001', '+15551800002'])
let fuzzer: DeviceCreds
let other: DeviceCreds
let chat: string
let group: string

before(async () => {
  await server.start()
  await bystanders.start()
  fuzzer = await server.register('+15551800003')
  other = await server.register('+15551800004')
  chat = (await server.api('POST', '/v1/chats', fuzzer.token, { kind: 'direct', user: other.userId })).body.chat_id as string
  group = (await server.api('POST', '/v1/chats', fuzzer.token, { kind: 'group', name: 'fuzz', members: [other.userId] })).body.chat_id as string
})
after(async () => {
  await bystanders.close()
  await server.dispose()
})

/** JSON values a client could send, adversarial ones included. */
const anyJson = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }),
  fc.record({
    kind: fc.constantFrom('direct', 'group', 'other', ''),
    user: fc.oneof(fc.constantFrom('+15551800004', 'u_0000000000000000', '+1', ''), fc.string()),
    name: fc.string({ maxLength: 120 }),
    members: fc.array(fc.oneof(fc.string(), fc.constant('+15551800004')), { maxLength: 5 }),
    id: fc.oneof(fc.stringMatching(/^[a-z0-9]{1,10}$/), fc.string()),
    body: fc.jsonValue({ maxDepth: 5 }),
    type: fc.constantFrom('text', 'reply', 'edit', 'delete', 'reaction', 'media', 'read', 'delivered', 'x'),
    seq: fc.oneof(fc.integer(), fc.double()),
    ref: fc.oneof(fc.integer(), fc.string()),
    cursors: fc.dictionary(fc.string({ maxLength: 30 }), fc.oneof(fc.integer(), fc.string())),
    limit: fc.oneof(fc.integer(), fc.string()),
    last_seen: fc.constantFrom('everyone', 'chats', 'nobody', 'some'),
    read_receipts: fc.oneof(fc.boolean(), fc.string()),
    size: fc.oneof(fc.integer(), fc.double()),
    content_type: fc.string({ maxLength: 40 }),
    sha256: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string()),
    chat: fc.constantFrom('', 'x'),
    to: fc.array(fc.string(), { maxLength: 3 }),
    users: fc.array(fc.string(), { maxLength: 3 }),
    role: fc.constantFrom('admin', 'member', 'owner')
  }, { requiredKeys: [] })
)

test('HTTP: random bodies to every route that takes one get a 2xx or a 4xx with an error code, never a 5xx', async () => {
  const routes = (): Array<[string, string]> => [
    ['POST', '/v1/chats'], ['POST', '/v1/sync'], ['PATCH', '/v1/me/settings'], ['POST', '/v1/devices'],
    ['POST', `/v1/chats/${chat}/messages`], ['POST', `/v1/chats/${group}/messages`], ['POST', `/v1/chats/${chat}/receipts`],
    ['POST', `/v1/chats/${chat}/messages/1/forward`], ['POST', '/v1/media'], ['POST', '/v1/blocks'], ['PATCH', `/v1/chats/${group}`],
    ['POST', `/v1/chats/${group}/members`], ['PUT', `/v1/chats/${group}/members/${other.userId}/role`], ['POST', '/v1/register/code'], ['POST', '/v1/register/verify']
  ]
  const raw = fc.oneof(anyJson.map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }), fc.constant('{"a":'), fc.constant(''))
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: routes().length - 1 }), raw, async (i, body) => {
    const [method, path] = routes()[i]!
    const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${fuzzer.token}`, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) })
    const text = await res.text()
    assert.ok(res.status < 500, `${method} ${path} ${body.slice(0, 200)} -> ${res.status} ${text.slice(0, 200)}`)
    if (res.status >= 400) assert.equal(typeof (JSON.parse(text) as { error?: { code?: unknown } }).error?.code, 'string', text)
  }), { numRuns: 600 })
  // Query strings too.
  await fc.assert(fc.asyncProperty(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), async (after, limit) => {
    const res = await fetch(`${server.url}/v1/chats/${chat}/messages?after=${encodeURIComponent(after)}&limit=${encodeURIComponent(limit)}`, { headers: { authorization: `Bearer ${fuzzer.token}` }, signal: AbortSignal.timeout(10_000) })
    assert.ok(res.status < 500, `${after} ${limit} -> ${res.status}`)
  }), { numRuns: 100 })
  await bystanders.stillServing()
})

test('MQTT: random payloads to every chat topic are each acknowledged; refusals come as error events with a code', async () => {
  const d = await new Device(server, fuzzer).connect()
  try {
    const payloads = fc.oneof(
      anyJson.map((v) => Buffer.from(JSON.stringify(v))),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.record({ id: fc.stringMatching(/^[a-z0-9]{1,10}$/), type: fc.constantFrom('text', 'reply', 'edit', 'delete', 'reaction'), body: fc.jsonValue({ maxDepth: 4 }), ref: fc.integer({ min: -1, max: 50 }), reply_to: fc.integer({ min: -1, max: 50 }) }, { requiredKeys: ['id'] })
        .map((v) => Buffer.from(JSON.stringify(v)))
    )
    const topic = fc.tuple(fc.constantFrom(chat, group, 'dm_nope', 'g_nope'), fc.constantFrom('msg', 'receipt', 'typing', 'other'))
    await fc.assert(fc.asyncProperty(topic, payloads, async ([c, kind], payload) => {
      await d.client.publishAsync(`chat/${c}/${kind}`, payload, { qos: 1 })
      assert.equal(d.client.connected, true)
    }), { numRuns: 400 })
    const codes = new Set(d.of('error').map((e) => e.code))
    for (const code of codes) assert.match(String(code), /^[a-z_]+$/)
  } finally {
    await d.close()
  }
  await bystanders.stillServing()
})

/** A plaintext XMPP stream (loopback, MQCHAT_XMPP_ALLOW_PLAINTEXT), signed in and bound: the socket and what it received. */
async function xmppSession (c: DeviceCreds): Promise<{ s: Socket, out: () => string }> {
  const s = connect(server.ports.xmpp, '127.0.0.1')
  s.on('error', () => {})
  let out = ''
  s.on('data', (d: Buffer) => { out += d.toString() })
  const step = async (send: string, expect: string): Promise<void> => {
    const from = out.length
    s.write(send)
    await waitFor(`${expect} after ${send.slice(0, 40)}`, () => out.slice(from).includes(expect) || undefined)
  }
  const open = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
  await step(open, '</stream:features>')
  await step(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${c.userId}\0${c.token}`).toString('base64')}</auth>`, '<success')
  await step(open, '</stream:features>')
  await step(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`, '</iq>')
  s.write('<presence/>')
  await step("<iq type='get' id='ready' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", 'ready')
  return { s, out: () => out }
}

test('XMPP: random stanzas on a signed-in stream are answered or end the stream with a stream error; the gateway keeps serving', async () => {
  const NS = ['jabber:client', 'urn:xmpp:mam:2', 'jabber:iq:roster', 'urn:xmpp:ping', 'http://jabber.org/protocol/disco#info', 'urn:xmpp:sm:3', 'urn:xmpp:carbons:2', 'http://jabber.org/protocol/muc', 'urn:xmpp:receipts', 'x:unknown']
  const jids = [`${other.userId}@localhost`, `${group}@groups.localhost`, `${group}@groups.localhost/nick`, 'localhost', 'nobody@elsewhere', '', '@@@']
  const child: fc.Arbitrary<Element> = fc.letrec((tie) => ({
    el: fc.tuple(fc.constantFrom('query', 'body', 'x', 'set', 'max', 'after', 'before', 'field', 'value', 'ping', 'enable', 'r', 'a', 'item', 'request', 'received'),
      fc.record({ xmlns: fc.constantFrom(...NS), var: fc.constantFrom('with', 'start', 'end', 'FORM_TYPE'), h: fc.constantFrom('0', '5', '-1', 'x') }, { requiredKeys: [] }),
      fc.array(fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 30 }), tie('el')), { maxLength: 3 }))
      .map(([n, attrs, kids]) => xml(n, attrs, ...(kids as Array<Element | string>)))
  })).el as fc.Arbitrary<Element>
  const stanza = fc.tuple(fc.constantFrom('message', 'iq', 'presence', 'r', 'a', 'bogus'), fc.record({
    type: fc.constantFrom('chat', 'groupchat', 'get', 'set', 'result', 'error', 'subscribe', 'unavailable', 'normal'),
    to: fc.constantFrom(...jids),
    id: fc.stringMatching(/^[a-z0-9]{1,8}$/)
  }, { requiredKeys: [] }), fc.array(child, { maxLength: 3 })).map(([n, attrs, kids]) => xml(n, attrs, ...kids).toString())
  let session = await xmppSession(fuzzer)
  let ended = 0
  try {
    await fc.assert(fc.asyncProperty(fc.array(stanza, { minLength: 1, maxLength: 4 }), async (stanzas) => {
      if (session.s.destroyed || session.out().includes('</stream:stream>')) {
        session.s.destroy()
        ended++
        session = await xmppSession(fuzzer)
      }
      session.s.write(stanzas.join(''))
      // Every stanza of a burst is taken before the next: a ping proves the stream got this far (or it ended).
      const from = session.out().length
      session.s.write("<iq type='get' id='fuzz-ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
      await waitFor('the ping answer or the end of the stream', () => {
        const o = session.out().slice(from)
        return o.includes("id='fuzz-ping'") || o.includes('id="fuzz-ping"') || o.includes('</stream:stream>') || session.s.destroyed || undefined
      })
      const tail = session.out().slice(from)
      if (tail.includes('</stream:stream>')) assert.match(tail, /<stream:error>/, tail.slice(-300))
      assert.ok(!tail.includes('internal-server-error'), `a stanza failed inside the gateway: ${stanzas.join('')}`)
    }), { numRuns: 200 })
  } finally {
    session.s.destroy()
  }
  assert.ok(ended < 200, 'most bursts left the stream up')
  await bystanders.stillServing()
})
