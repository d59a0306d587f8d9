// The outside audit's attacks (issue 17), each performed against a real
// server process (local profile, XMPP on with STARTTLS). After each one, two
// other users must still exchange a message: an attack ends the attacker's
// connection or request, never the service.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { WebSocket } from 'ws'
import { Bystanders, Device, TestServer, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { selfSignedCert } from '../helpers/tls.js'

const { cert, key } = selfSignedCert(tempDir('mqchat-attacks-cert-'), 'localhost')
const server = new TestServer({
  MQCHAT_XMPP_ENABLED: 'true',
  MQCHAT_XMPP_PORT: '0',
  MQCHAT_XMPP_WS_PORT: '0',
  MQCHAT_XMPP_DOMAIN: 'localhost',
  MQCHAT_XMPP_TLS_CERT: cert,
  MQCHAT_XMPP_TLS_KEY: key,
  // Short enough for the slow-body attack to be refused quickly; ample for any honest test request on loopback.
  MQCHAT_HTTP_BODY_TIMEOUT_SECONDS: '3',
  MQCHAT_XMPP_AUTH_TIMEOUT_SECONDS: '6',
  MQCHAT_XMPP_IDLE_TIMEOUT_SECONDS: '10',
  MQCHAT_XMPP_MAX_UNAUTHENTICATED: '15',
  // The defaults of the product, not of the test helper: 100 per address, and 60 overall so the overall cap is reachable from 127.0.0.2.
  MQCHAT_MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: '100',
  MQCHAT_MQTT_MAX_UNAUTHENTICATED: '160',
  MQCHAT_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '40',
  MQCHAT_HTTP_MAX_CONNECTIONS: '70',
  // Small enough for hole 9's test to go past them; no other test comes near.
  MQCHAT_PHONE_LOOKUPS_PER_HOUR: '20',
  MQCHAT_DIRECT_CHATS_PER_HOUR: '5'
})

let n = 0
const phone = (): string => `+1555900${String(++n).padStart(4, '0')}`

/** Two bystanders in a direct chat, connected over MQTT the whole time. */
const bystanders = new Bystanders(server, [phone(), phone()])
before(async () => {
  await server.start()
  await bystanders.start()
})
after(async () => {
  await bystanders.close()
  await server.dispose()
})

/** Alice writes to Bob and Bob gets it: the server still serves others. */
const stillServing = async (): Promise<void> => { await bystanders.stillServing() }

const OPEN = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
const b64 = (s: string): string => Buffer.from(s).toString('base64')
const plainAuth = (c: DeviceCreds): string => `<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${b64(`\0${c.userId}\0${c.token}`)}</auth>`

/** Resolves when `probe` is true of what `s` has received, or with what arrived when it closed or `ms` passed. */
function readUntil (s: Socket | TLSSocket, probe: (out: string) => boolean, ms = 10_000): Promise<{ out: string, closed: boolean }> {
  return new Promise((resolve) => {
    let out = ''
    const done = (closed: boolean): void => { clearTimeout(timer); s.removeListener('data', onData); resolve({ out, closed }) }
    const onData = (d: Buffer): void => { out += d.toString(); if (probe(out)) done(false) }
    const timer = setTimeout(() => done(false), ms)
    s.on('data', onData)
    s.once('close', () => done(true))
  })
}

/** A raw XMPP stream over STARTTLS, signed in with SASL PLAIN and bound: the TLS socket. */
async function signedIn (c: DeviceCreds, opts: { bind?: boolean } = {}): Promise<TLSSocket> {
  const plain = connect(server.ports.xmpp, '127.0.0.1')
  plain.on('error', () => {})
  plain.write(OPEN)
  await readUntil(plain, (o) => o.includes('</stream:features>'))
  plain.write(`<starttls xmlns='${NS_TLS}'/>`)
  const proceed = await readUntil(plain, (o) => o.includes('<proceed'))
  if (!proceed.out.includes('<proceed')) throw new Error(`no <proceed/>: ${proceed.out}`)
  const tls = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false })
  tls.on('error', () => {})
  const step = async (send: string, expect: string): Promise<void> => {
    tls.write(send)
    const r = await readUntil(tls, (o) => o.includes(expect))
    if (!r.out.includes(expect)) throw new Error(`expected ${expect} after ${send.slice(0, 80)}: ${r.out.slice(0, 300)}`)
  }
  await step(OPEN, '</stream:features>')
  await step(plainAuth(c), '<success')
  if (opts.bind === false) return tls
  await step(OPEN, '</stream:features>')
  await step(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${c.deviceId}</resource></bind></iq>`, '</iq>')
  return tls
}

test('hole 1, STARTTLS command injection: what follows <starttls/> in the clear ends the stream and is never acted on', async () => {
  const attacker = await server.register(phone())
  // An on-path attacker appends its own SASL login to the victim's <starttls/>.
  const plain = connect(server.ports.xmpp, '127.0.0.1')
  plain.on('error', () => {})
  plain.write(OPEN)
  const features = await readUntil(plain, (o) => o.includes('</stream:features>'))
  assert.match(features.out, /<starttls /)
  plain.write(`<starttls xmlns='${NS_TLS}'/>${plainAuth(attacker)}`)
  const answer = await readUntil(plain, (o) => o.includes('<proceed') || o.includes('</stream:stream>'))
  let afterTls = ''
  if (answer.out.includes('<proceed')) {
    // The victim goes on with TLS, as it would: before the fix the server then said <success/> for the attacker's login.
    const tls = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false })
    tls.on('error', () => {})
    tls.write(OPEN)
    afterTls = (await readUntil(tls, (o) => o.includes('<success') || o.includes('</stream:features>'), 5000)).out
    tls.destroy()
  }
  plain.destroy()
  assert.doesNotMatch(afterTls, /<success/, 'the injected login was never accepted')
  assert.doesNotMatch(answer.out, /<proceed/, 'no TLS after an injection')
  assert.match(answer.out, /<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams.\/>/)
  await stillServing()
})

test('hole 7, whitespace between stanzas: dropped as it comes, other text between stanzas refused', async () => {
  // Text that is not whitespace between stanzas ends the stream.
  const plain = connect(server.ports.xmpp, '127.0.0.1')
  plain.on('error', () => {})
  plain.write(OPEN)
  await readUntil(plain, (o) => o.includes('</stream:features>'))
  plain.write('hello <starttls/>')
  const refused = await readUntil(plain, (o) => o.includes('</stream:stream>'))
  assert.match(refused.out, /<not-well-formed xmlns=.urn:ietf:params:xml:ns:xmpp-streams.\/>/)
  plain.destroy()

  // 40 MB of whitespace between stanzas, each run under the stanza size limit, from a signed-in client: the stream keeps working.
  const x = await signedIn(await server.register(phone()))
  const gap = ' \n'.repeat(100_000)
  for (let i = 0; i < 200; i++) {
    if (!x.write(gap + "<r xmlns='urn:xmpp:sm:3'/>")) await new Promise((resolve) => x.once('drain', resolve))
  }
  x.write("<iq type='get' id='after-gaps' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
  const pong = await readUntil(x, (o) => /id=.after-gaps./.test(o) || o.includes('</stream:stream>'))
  x.destroy()
  assert.match(pong.out, /<iq [^>]*type=.result.[^>]*id=.after-gaps.|<iq [^>]*id=.after-gaps.[^>]*type=.result./, pong.out.slice(0, 300))
  await stillServing()
})

test('hole 5, a deeply nested body: refused at ingest over MQTT and HTTP; a stored one breaks no reader (history, sync, XMPP archive)', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
  const mq = await new Device(server, a).connect()
  try {
    await mq.publish(chat, `{"id":"deep-mqtt","body":${deep(4113)}}`)
    assert.equal((await mq.waitEvent('the refusal', (e) => e.type === 'error' && e.id === 'deep-mqtt')).code, 'bad_request')
    await mq.publish(chat, `{"id":"deep-33","body":${deep(33)}}`)
    assert.equal((await mq.waitEvent('the refusal at 33', (e) => e.type === 'error' && e.id === 'deep-33')).code, 'bad_request')
    await mq.publish(chat, `{"id":"deep-32","body":${deep(32)}}`)
    await mq.waitEvent('32 levels accepted', (e) => e.type === 'ack' && e.id === 'deep-32')
    // Brackets inside strings are text, not nesting.
    await mq.publish(chat, JSON.stringify({ id: 'brackets', body: deep(5000) }))
    await mq.waitEvent('brackets in a string accepted', (e) => e.type === 'ack' && e.id === 'brackets')
  } finally {
    await mq.close()
  }
  for (const depth of [33, 4113, 30_000]) {
    const http = await fetch(`${server.url}/v1/chats/${chat}/messages`, { method: 'POST', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, body: `{"id":"deep-http","body":${deep(depth)}}`, signal: AbortSignal.timeout(10_000) })
    assert.equal(http.status, 400, `depth ${depth}`)
    assert.equal(((await http.json()) as { error: { code: string } }).error.code, 'bad_request')
  }

  // A row stored before the limit existed (written into the database as it would have been), nested
  // deeper than JSON.stringify can go (about 10,000 levels) but inside the message size limit.
  const legacy = deep(100_000)
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const { join } = await import('node:path')
  const db = new SqliteDatabase(join(server.dataDir, 'mqchat.db'))
  try {
    db.transaction(() => {
      db.prepare('UPDATE chat_seq SET last_seq = last_seq + 1 WHERE chat_id = ?').run(chat)
      const seq = (db.prepare('SELECT last_seq FROM chat_seq WHERE chat_id = ?').get(chat) as { last_seq: number }).last_seq
      db.prepare(`INSERT INTO messages (chat_id, seq, sender_user, sender_device, client_id, type, body, client_ts, server_ts, fanned_out)
        VALUES (?, ?, ?, ?, 'legacy-deep', 'text', ?, NULL, ?, 1)`).run(chat, seq, a.userId, a.deviceId, legacy, Date.now())
    })()
  } finally {
    db.close()
  }
  const page = await fetch(`${server.url}/v1/chats/${chat}/messages?limit=100`, { headers: { authorization: `Bearer ${b.token}` }, signal: AbortSignal.timeout(10_000) })
  assert.equal(page.status, 200)
  const text = await page.text()
  assert.ok(text.includes(`"id":"legacy-deep"`) && text.includes(legacy), 'the stored body comes back as it was stored')
  const sync = await server.api('POST', '/v1/sync', b.token, { cursors: { [chat]: 0 } })
  assert.equal(sync.status, 200)
  const x = await signedIn(b)
  x.write("<iq type='set' id='mam-deep'><query xmlns='urn:xmpp:mam:2'/></iq>")
  const archive = await readUntil(x, (o) => /<iq [^>]*id=.mam-deep./.test(o) || o.includes('</stream:stream>'))
  x.destroy()
  assert.match(archive.out, /<iq [^>]*type=.result./, archive.out.slice(-300))
  assert.ok(archive.out.includes(legacy), 'the archive has the stored body')
  await stillServing()
})

test('hole 4, membership periods: a member reads, is sent and may refer to only what was sent while they were in the group', async () => {
  const [a, b, c] = [await server.register(phone()), await server.register(phone()), await server.register(phone())]
  const group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'past', members: [b.userId] })).body.chat_id as string
  const send = async (who: DeviceCreds, envelope: Record<string, unknown>): Promise<number> => {
    const r = await server.api('POST', `/v1/chats/${group}/messages`, who.token, envelope)
    assert.equal(r.status, 201, JSON.stringify(r.body))
    return r.body.seq as number
  }
  // Before Carol: a photo (seq 1) and three texts.
  const { createHash } = await import('node:crypto')
  const photo = Buffer.from('an early photo')
  const slot = await server.api('POST', '/v1/media', a.token, { chat: group, size: photo.length, content_type: 'image/png', sha256: createHash('sha256').update(photo).digest('hex') })
  assert.equal((await fetch(slot.body.upload.url, { method: 'PUT', body: new Uint8Array(photo), signal: AbortSignal.timeout(10_000) })).status, 201)
  const mediaId = slot.body.media_id as string
  assert.equal(await send(a, { id: 'p1', type: 'media', media: mediaId, body: { caption: 'before' } }), 1)
  for (const i of [2, 3, 4]) assert.equal(await send(a, { id: `p${i}`, body: `before ${i}` }), i)
  assert.equal((await server.api('POST', `/v1/chats/${group}/members`, a.token, { users: [c.userId] })).status, 200)
  const carol = await new Device(server, c).connect()
  try {
    // An edit of a message from before her join, then a message after it.
    assert.equal(await send(a, { id: 'p5', type: 'edit', ref: 2, body: 'before 2, edited' }), 5)
    assert.equal(await send(a, { id: 'p6', body: 'welcome' }), 6)
    await carol.waitEvent('the welcome', (e) => e.type === 'msg' && e.seq === 6)
    assert.deepEqual(carol.of('msg', group).map((e) => e.seq), [6], 'no live copy of the edit of seq 2')

    const page = await server.api('GET', `/v1/chats/${group}/messages?after=0&limit=100`, c.token)
    assert.deepEqual(page.body.messages.map((m: { seq: number }) => m.seq), [6])
    const sync = await server.api('POST', '/v1/sync', c.token, { cursors: { [group]: 0 } })
    const entry = sync.body.chats.find((x: { chat_id: string }) => x.chat_id === group)
    assert.deepEqual(entry.messages.map((m: { seq: number }) => m.seq), [6], JSON.stringify(entry))
    assert.equal(entry.missing, undefined, 'seqs from before the join are not reported as lost')
    assert.equal((await server.api('GET', `/v1/chats/${group}/messages/2/receipts`, c.token)).status, 404)
    assert.equal((await server.api('POST', `/v1/media/${mediaId}/download`, c.token)).status, 404)
    for (const [id, envelope] of [['r1', { type: 'reply', reply_to: 2, body: 'quoting' }], ['r2', { type: 'reaction', ref: 3, body: '👍' }]] as const) {
      const r = await server.api('POST', `/v1/chats/${group}/messages`, c.token, { id, ...envelope })
      assert.equal(r.status, 404, `${id}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.error.code, 'unknown_message')
    }
    const resend = await server.api('POST', `/v1/chats/${group}/messages`, c.token, { id: 'r3', type: 'media', media: mediaId, body: {} })
    assert.equal(resend.body.error?.code, 'unknown_media', JSON.stringify(resend.body))
    const own = (await server.api('POST', '/v1/chats', c.token, { kind: 'direct', user: a.userId })).body.chat_id as string
    const fwd = await server.api('POST', `/v1/chats/${group}/messages/3/forward`, c.token, { to: [own], id: 'f1' })
    assert.equal(fwd.status, 404, JSON.stringify(fwd.body))
    // The XMPP archive of the group: the same.
    const x = await signedIn(c)
    x.write(`<iq type='set' id='mam-g' to='${group}@groups.localhost'><query xmlns='urn:xmpp:mam:2'/></iq>`)
    const archive = await readUntil(x, (o) => /<iq [^>]*id=.mam-g./.test(o) || o.includes('</stream:stream>'))
    x.destroy()
    assert.match(archive.out, /<iq [^>]*type=.result./, archive.out.slice(-300))
    assert.deepEqual([...archive.out.matchAll(/<result [^>]*id=.([^'"]+)./g)].map((m) => m[1]), [`${group}:6`])
  } finally {
    await carol.close()
  }

  // Bob leaves for a while (removed), then is added back: he reads both periods and nothing from between.
  assert.equal((await server.api('DELETE', `/v1/chats/${group}/members/${b.userId}`, a.token)).status, 204)
  assert.equal(await send(a, { id: 'p7', body: 'while Bob is out' }), 7)
  assert.equal((await server.api('POST', `/v1/chats/${group}/members`, a.token, { users: [b.userId] })).status, 200)
  assert.equal(await send(a, { id: 'p8', body: 'Bob is back' }), 8)
  const bobPage = await server.api('GET', `/v1/chats/${group}/messages?after=0&limit=100`, b.token)
  assert.deepEqual(bobPage.body.messages.map((m: { seq: number }) => m.seq), [1, 2, 3, 4, 5, 6, 8])
  const bobSync = (await server.api('POST', '/v1/sync', b.token, { cursors: { [group]: 5 }, limit: 1 })).body.chats.find((x: { chat_id: string }) => x.chat_id === group)
  assert.deepEqual([bobSync.messages.map((m: { seq: number }) => m.seq), bobSync.next_after, bobSync.has_more], [[6], 7, true], 'the cursor moves past the gap')
  assert.equal((await server.api('GET', `/v1/chats/${group}/messages/7/receipts`, b.token)).status, 404)
  assert.equal((await server.api('GET', `/v1/chats/${group}/messages/6/receipts`, b.token)).status, 200)
  assert.equal((await server.api('POST', `/v1/media/${mediaId}/download`, b.token)).status, 200, 'media from his first period')
  await stillServing()
})

test('hole 8, blocking hides presence over HTTP too, whatever the last-seen setting', async () => {
  const a = await server.register(phone())
  const m = await server.register(phone())
  await server.api('POST', '/v1/chats', m.token, { kind: 'direct', user: a.userId })
  assert.equal((await server.api('PATCH', '/v1/me/settings', a.token, { last_seen: 'everyone' })).status, 200)
  assert.equal((await server.api('GET', `/v1/users/${a.userId}/presence`, m.token)).status, 200, 'before the block')
  assert.equal((await server.api('POST', '/v1/blocks', a.token, { user: m.userId })).status, 204)
  const after = await server.api('GET', `/v1/users/${a.userId}/presence`, m.token)
  assert.equal(after.status, 404)
  assert.equal(after.body.error.code, 'not_found')
  await stillServing()
})

/** One raw HTTP/1.1 request: `head` is sent, then `body` (if any); resolves with the status line and whether the server closed the connection. */
function rawHttp (head: string, body: string | undefined, ms = 20_000): Promise<{ status: number, text: string, closed: boolean, ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const s = connect(server.ports.http, '127.0.0.1')
    let text = ''
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer in ${ms} ms: ${text}`)) }, ms)
    s.on('error', () => {})
    s.on('data', (d) => { text += d.toString() })
    s.on('close', () => { clearTimeout(timer); resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text, closed: true, ms: Date.now() - t0 }) })
    s.on('connect', () => { s.write(head); if (body !== undefined) s.write(body) })
  })
}

test('hole 9, a phone number alone: no presence until the other side writes; phone lookups and new direct chats are rate-limited', async () => {
  const [target, mallory] = [await server.register(phone()), await server.register(phone())]
  const opened = await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: target.phone })
  assert.equal(opened.status, 201)
  const chat = opened.body.chat_id as string
  const T = await new Device(server, target).connect()
  const M = await new Device(server, mallory).connect()
  const subscribe = async (d: Device, user: string): Promise<number[]> => await new Promise((resolve) => d.client.subscribe(`presence/${user}`, { qos: 0 }, (err, g) => {
    resolve((err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? (g ?? []).map((x) => x.qos))
  }))
  try {
    // Opening a chat at someone is not being their contact: no presence, over MQTT or HTTP.
    assert.deepEqual(await subscribe(M, target.userId), [128])
    assert.equal((await server.api('GET', `/v1/users/${target.userId}/presence`, mallory.token)).status, 404)
    // The other way round it is: Mallory opened the chat, so the target may see her.
    assert.equal((await server.api('GET', `/v1/users/${mallory.userId}/presence`, target.token)).status, 200)
    // The target replies: from now on Mallory is a contact.
    await T.publish(chat, { id: 'who', body: 'who is this?' })
    await M.waitEvent('the reply', (e) => e.type === 'msg' && e.id === 'who')
    assert.deepEqual(await subscribe(M, target.userId), [0])
    const seen = await server.api('GET', `/v1/users/${target.userId}/presence`, mallory.token)
    assert.deepEqual([seen.status, seen.body.state], [200, 'online'])
  } finally {
    await T.close()
    await M.close()
  }

  // Phone lookups: 20 an hour (this server), registered or not; Mallory has used one.
  const codes: number[] = []
  for (let i = 0; i < 19; i++) codes.push((await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: `+1555800${String(i).padStart(4, '0')}` })).status)
  assert.deepEqual(codes, Array(19).fill(404))
  const over = await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: target.phone })
  assert.deepEqual([over.status, over.body.error.code], [429, 'rate_limited'], 'a registered number costs the same')
  assert.equal((await server.api('POST', '/v1/blocks', mallory.token, { user: target.phone })).status, 429, 'blocking by phone is a lookup too')
  assert.equal((await server.api('POST', '/v1/chats', mallory.token, { kind: 'group', name: 'g', members: [target.phone] })).status, 429)
  // By id it is free: the chat that exists opens again.
  assert.equal((await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: target.userId })).status, 200)

  // New direct chats: 5 an hour (this server); Mallory has opened one.
  const others = [await server.register(phone()), await server.register(phone()), await server.register(phone()), await server.register(phone()), await server.register(phone())]
  const direct: number[] = []
  for (const o of others) direct.push((await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: o.userId })).status)
  assert.deepEqual(direct, [201, 201, 201, 201, 429])
  assert.equal((await server.api('POST', '/v1/chats', mallory.token, { kind: 'direct', user: others[0].userId })).status, 200, 'an existing chat is free')
  await stillServing()
})

test('hole 3, HTTP: a body is not read before the token is checked, a slow body times out, and each route takes only the body it needs', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  // No token, a 15 MB body announced and only its first bytes sent: 401 at once, and the connection is closed.
  const anon = await rawHttp(`POST /v1/chats/${chat}/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15000000\r\n\r\n`, '{"id":"x","body":"')
  assert.equal(anon.status, 401, anon.text)
  assert.ok(anon.closed)
  // A token, and a body that never finishes: 408 request_timeout after MQCHAT_HTTP_BODY_TIMEOUT_SECONDS, connection closed.
  const slow = await rawHttp(`POST /v1/chats/${chat}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`, '{"id":"slow",')
  assert.equal(slow.status, 408, `${slow.ms} ms: ${slow.text}\n${server.log.slice(-3000)}`)
  assert.match(slow.text, /"code":"request_timeout"/)
  assert.ok(slow.ms >= 2500, `refused after ${slow.ms} ms`)
  // Headers that never finish: the connection is closed too.
  const headers = await rawHttp('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', undefined)
  assert.ok(headers.closed && headers.ms >= 2500, `closed after ${headers.ms} ms`)
  // A message body over the envelope limit (64 KiB) is refused from its Content-Length, 413 too_large.
  const big = await server.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: 'big', body: 'x'.repeat(70_000) })
  assert.equal(big.status, 413)
  assert.equal(big.body.error.code, 'too_large')
  // Other routes take 64 KiB.
  const bigBlock = await fetch(`${server.url}/v1/blocks`, { method: 'POST', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ user: 'x'.repeat(70_000) }), signal: AbortSignal.timeout(10_000) })
  assert.equal(bigBlock.status, 413)
  // Honest requests still work.
  assert.equal((await server.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: 'fine', body: 'hello' })).status, 201)
  await stillServing()
})

/** Raw TCP connections to the XMPP port from `localAddress` that have sent their stream header and got the features back. */
async function openStreams (n: number, localAddress = '127.0.0.1'): Promise<Socket[]> {
  const out: Socket[] = []
  for (let i = 0; i < n; i++) {
    const s = connect({ port: server.ports.xmpp, host: '127.0.0.1', localAddress })
    s.on('error', () => {})
    s.write(OPEN)
    const r = await readUntil(s, (o) => o.includes('</stream:features>'))
    if (!r.out.includes('</stream:features>')) throw new Error(`stream ${i} from ${localAddress}: ${r.closed ? 'closed' : 'no features'}`)
    out.push(s)
  }
  return out
}

/** Whether a new connection from `localAddress` is closed before it gets any answer. */
async function refusedFrom (localAddress: string): Promise<boolean> {
  const s = connect({ port: server.ports.xmpp, host: '127.0.0.1', localAddress })
  s.on('error', () => {})
  s.write(OPEN)
  const r = await readUntil(s, (o) => o.includes('</stream:features>'), 5000)
  s.destroy()
  return r.closed && r.out === ''
}

test('hole 2, XMPP: a deadline to sign in, over TCP and WebSocket; caps on connections not yet signed in, per address and overall', async () => {
  // Silent over TCP: connection-timeout after MQCHAT_XMPP_AUTH_TIMEOUT_SECONDS (6 s here).
  const t0 = Date.now()
  const [idle] = await openStreams(1)
  const ended = await readUntil(idle as Socket, (o) => o.includes('</stream:stream>'), 15_000)
  assert.match(ended.out, /<connection-timeout xmlns=.urn:ietf:params:xml:ns:xmpp-streams.\/>/)
  assert.ok(Date.now() - t0 >= 5500, `ended after ${Date.now() - t0} ms`)
  idle?.destroy()
  // Silent over WebSocket: closed too.
  const ws = new WebSocket(`wss://127.0.0.1:${server.ports.xmppWs}/xmpp-websocket`, 'xmpp', { rejectUnauthorized: false })
  ws.on('error', () => {})
  const wsClosed = await new Promise<number>((resolve) => {
    const timer = setTimeout(() => resolve(-1), 15_000)
    ws.on('close', () => { clearTimeout(timer); resolve(Date.now() - t0) })
  })
  assert.ok(wsClosed > 0, 'the silent WebSocket stream was closed')

  // Per address: 10 streams not yet signed in; the 11th is closed at once. Overall (15 here): 5 more from
  // 127.0.0.2 fill it, and 127.0.0.3 is refused. (All within the sign-in deadline, which would free them.)
  const ten = await openStreams(10)
  assert.ok(await refusedFrom('127.0.0.1'), 'the 11th from the same address is refused')
  const five = await openStreams(5, '127.0.0.2')
  assert.ok(await refusedFrom('127.0.0.3'), 'past the overall bound a new address is refused too')
  for (const s of [...ten, ...five]) s.destroy()
  // Places come back as connections go.
  const back = await waitFor('room for a new stream', async () => await openStreams(1, '127.0.0.3').catch(() => undefined))
  back[0]?.destroy()
  await stillServing()
})

test('hole 2, XMPP: a silent signed-in stream is pinged, then ended; one that answers stays; a device has at most 3 streams signed in but not bound', async () => {
  const c = await server.register(phone())
  const silent = await signedIn(c)
  const d = await server.register(phone())
  const lively = await signedIn(d)
  // The lively client answers every ping, as XEP-0199 clients do.
  let pongs = 0
  lively.on('data', (b: Buffer) => {
    for (const m of b.toString().matchAll(/<iq [^>]*id=.(ping-[0-9a-f]+)./g)) { lively.write(`<iq type='result' id='${m[1] as string}'/>`); pongs++ }
  })
  const silentEnd = await readUntil(silent, (o) => o.includes('</stream:stream>'), 30_000)
  assert.match(silentEnd.out, /<ping xmlns=.urn:xmpp:ping.\/>/, 'pinged first')
  assert.match(silentEnd.out, /<connection-timeout xmlns=.urn:ietf:params:xml:ns:xmpp-streams.\/>/)
  silent.destroy()
  assert.ok(pongs >= 1, 'the lively client was pinged and answered')
  lively.write("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
  const alive = await readUntil(lively, (o) => /id=.alive./.test(o) || o.includes('</stream:stream>'))
  assert.match(alive.out, /id=.alive./, 'the stream that answered is still up')
  lively.destroy()

  // Three streams of one device signed in (SASL success) but not bound; the fourth is refused at sign-in.
  const e = await server.register(phone())
  const held: TLSSocket[] = []
  for (let i = 0; i < 3; i++) held.push(await signedIn(e, { bind: false }))
  await assert.rejects(signedIn(e, { bind: false }), /policy-violation|closed/)
  for (const s of held) s.destroy()
  await stillServing()
})

test('hole 6, registration: requests refused for their address cost the number nothing, and nobody else\'s request cancels a pending code', async () => {
  // Client addresses come from X-Forwarded-For, as behind a load balancer; 3 requests per address per hour.
  const s = new TestServer({ MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR: '3', MQCHAT_TRUST_PROXY: '127.0.0.1' })
  try {
    await s.start()
    const ask = async (from: string, path: 'code' | 'verify', body: Record<string, string>): Promise<{ status: number, body: { sent?: boolean, code?: string, error?: { code: string } } }> => {
      const r = await fetch(`${s.url}/v1/register/${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': from }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
      return { status: r.status, body: await r.json() as { sent?: boolean, code?: string } }
    }
    const victim = '+15559990001'
    // The attacker's address spends its budget, then hammers the victim's number: every request refused for the address.
    for (let i = 0; i < 3; i++) assert.equal((await ask('203.0.113.66', 'code', { phone: `+1555999010${i}` })).status, 202)
    for (let i = 0; i < 20; i++) assert.equal((await ask('203.0.113.66', 'code', { phone: victim })).status, 429)
    // The victim still gets a code.
    const mine = await ask('198.51.100.7', 'code', { phone: victim })
    assert.equal(mine.status, 202)
    assert.equal(mine.body.sent, true)
    // Another address asks for the victim's number: nothing is sent, and the victim's code stays valid.
    const other = await ask('203.0.113.67', 'code', { phone: victim })
    assert.equal(other.status, 202)
    assert.equal(other.body.sent, false)
    assert.equal((await ask('198.51.100.7', 'verify', { phone: victim, code: mine.body.code as string })).status, 201)
  } finally {
    await s.dispose()
  }
  await stillServing()
})

test('finding, media as a page: HTML and SVG uploads are served as downloads that cannot run on the API origin', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  const { createHash } = await import('node:crypto')
  for (const [type, text] of [['text/html', '<script>alert(document.cookie)</script>'], ['image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>']] as const) {
    const bytes = Buffer.from(text)
    const slot = await server.api('POST', '/v1/media', a.token, { chat, size: bytes.length, content_type: type, sha256: createHash('sha256').update(bytes).digest('hex') })
    assert.equal(slot.status, 201, JSON.stringify(slot.body))
    const up = await fetch(slot.body.upload.url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': type }, signal: AbortSignal.timeout(10_000) })
    assert.equal(up.status, 201)
    const dl = await server.api('POST', `/v1/media/${slot.body.media_id as string}/download`, a.token)
    const res = await fetch(dl.body.url, { signal: AbortSignal.timeout(10_000) })
    assert.equal(await res.text(), text)
    assert.equal(res.headers.get('content-disposition'), 'attachment', type)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', type)
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; sandbox/, type)
  }
  await stillServing()
})

test('finding, a revoked device\'s will: never posted in the chat', async () => {
  const a = await server.register(phone())
  const c = await server.register(phone())
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: c.userId })).body.chat_id as string
  const laptop = await server.link(a)
  const watcher = await new Device(server, c).connect()
  const sender = await new Device(server, a).connect()
  // The laptop connects with a will that would be a chat message.
  const mqtt = (await import('mqtt')).default
  const doomed = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, {
    clientId: laptop.deviceId, username: laptop.deviceId, password: laptop.token, clean: false, protocolVersion: 4, reconnectPeriod: 0,
    will: { topic: `chat/${chat}/msg`, payload: Buffer.from(JSON.stringify({ id: 'will-1', body: 'from a revoked device' })), qos: 1, retain: false }
  })
  doomed.on('error', () => {})
  await within('the laptop to connect', new Promise<void>((resolve) => doomed.once('connect', () => resolve())), 10_000)
  const closed = new Promise<void>((resolve) => doomed.once('close', () => resolve()))
  assert.equal((await server.api('DELETE', `/v1/devices/${laptop.deviceId}`, a.token)).status, 204)
  await within('the revoked laptop to be disconnected', closed, 10_000)
  doomed.end(true)
  await within('a probe after the revocation', sender.publish(chat, { id: 'after-revoke', body: 'probe' }), 10_000)
  await watcher.waitEvent('the probe', (e) => e.type === 'msg' && e.id === 'after-revoke')
  assert.equal(watcher.events.find((e) => e.id === 'will-1'), undefined, 'the will never reached the chat')
  const history = await server.api('GET', `/v1/chats/${chat}/messages`, a.token)
  assert.deepEqual((history.body.messages as Array<{ id: string }>).map((m) => m.id), ['after-revoke'])
  await watcher.close()
  await sender.close()
  await stillServing()
})

test('finding, the device limit under a race: 12 links at once never make more than 4 active devices', async () => {
  const a = await server.register(phone())
  const results = await Promise.all(Array.from({ length: 12 }, async (_, i) => await server.api('POST', '/v1/devices', a.token, { name: `race-${i}` })))
  assert.equal(results.filter((r) => r.status === 201).length, 3, results.map((r) => r.status).join(','))
  assert.ok(results.filter((r) => r.status !== 201).every((r) => r.status === 409 && r.body.error.code === 'device_limit'))
  assert.equal((await server.api('GET', '/v1/devices', a.token)).body.devices.length, 4)
  await stillServing()
})

test('finding, Host header and /metrics: media URLs come from configuration, and /metrics needs its token', async () => {
  const a = await server.register(phone())
  const b = await server.register(phone())
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  const body = JSON.stringify({ chat, size: 3, content_type: 'application/octet-stream', sha256: 'a'.repeat(64) })
  const forged = await rawHttp(`POST /v1/media HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${a.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`, body)
  assert.equal(forged.status, 201, forged.text)
  const url = (JSON.parse(forged.text.slice(forged.text.indexOf('\r\n\r\n') + 4)) as { upload: { url: string } }).upload.url
  assert.ok(url.startsWith(`http://127.0.0.1:${server.ports.http}/media/`), url)

  const withToken = new TestServer({ MQCHAT_METRICS_TOKEN: 'scrape-me' })
  try {
    await withToken.start()
    const get = async (auth?: string): Promise<number> => (await fetch(`${withToken.url}/metrics`, { headers: auth ? { authorization: auth } : {}, signal: AbortSignal.timeout(10_000) })).status
    assert.equal(await get(), 403)
    assert.equal(await get('Bearer wrong'), 403)
    assert.equal(await get('Bearer scrape-me'), 200)
  } finally {
    await withToken.dispose()
  }
  // Without a token, a loopback peer (this test) may read them.
  assert.equal((await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).status, 200)
  await stillServing()
})

test('finding, groups as a way around a block, and group floods: a blocker cannot be added by the one they blocked; 10 groups an hour; member lists bounded', async () => {
  const victim = await server.register(phone())
  const mallory = await server.register(phone())
  const friend = await server.register(phone())
  assert.equal((await server.api('POST', '/v1/blocks', victim.token, { user: mallory.userId })).status, 204)
  const created = await server.api('POST', '/v1/chats', mallory.token, { kind: 'group', name: 'trap', members: [victim.userId, friend.userId] })
  assert.equal(created.status, 403)
  assert.equal(created.body.error.code, 'blocked')
  const group = await server.api('POST', '/v1/chats', mallory.token, { kind: 'group', name: 'later', members: [friend.userId] })
  assert.equal(group.status, 201)
  const added = await server.api('POST', `/v1/chats/${group.body.chat_id as string}/members`, mallory.token, { users: [victim.phone] })
  assert.equal(added.status, 403)
  assert.equal(added.body.error.code, 'blocked')
  assert.ok(!(await server.api('GET', '/v1/chats', victim.token)).body.chats.some((c: { chat_id: string }) => c.chat_id === group.body.chat_id), 'the victim is in no group of mallory\'s')
  // Group creation: 10 an hour per user (mallory has made one).
  const statuses: number[] = []
  for (let i = 0; i < 10; i++) statuses.push((await server.api('POST', '/v1/chats', mallory.token, { kind: 'group', name: `g${i}`, members: [friend.userId] })).status)
  assert.deepEqual(statuses, [...Array(9).fill(201), 429])
  // A member list longer than a group may be is refused before any lookup.
  const huge = await server.api('POST', '/v1/chats', friend.token, { kind: 'group', name: 'huge', members: Array.from({ length: 1025 }, (_, i) => `+1555${String(i).padStart(7, '0')}`) })
  assert.equal(huge.status, 400)
  assert.equal(huge.body.error.code, 'bad_request')
  await stillServing()
})

test('finding, an XMPP resource that never sends initial presence: its events wait in its queue, not in server memory, and all arrive in order once it does', async () => {
  const s = new TestServer({ MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_PORT: '0', MQCHAT_XMPP_WS_PORT: '0', MQCHAT_XMPP_DOMAIN: 'localhost', MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true', MQCHAT_XMPP_MAX_HELD_EVENTS: '20', MQCHAT_PUBLISH_RATE: '1000', MQCHAT_PUBLISH_BURST: '1000' })
  try {
    await s.start()
    const a = await s.register('+15559980001')
    const b = await s.register('+15559980002')
    const chat = (await s.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
    for (let i = 1; i <= 100; i++) assert.equal((await s.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: `q${i}`, body: `queued ${i}` })).status, 201)
    // b signs in over XMPP (plaintext on loopback here), binds, and stays silent: no initial presence.
    const x = connect(s.ports.xmpp, '127.0.0.1')
    x.on('error', () => {})
    const step = async (send: string, expect: string): Promise<string> => {
      x.write(send)
      const r = await readUntil(x, (o) => o.includes(expect))
      if (!r.out.includes(expect)) throw new Error(`expected ${expect}: ${r.out.slice(0, 300)}`)
      return r.out
    }
    await step(OPEN, '</stream:features>')
    await step(plainAuth(b), '<success')
    await step(OPEN, '</stream:features>')
    await step(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`, '</iq>')
    await waitFor('the gateway to stop holding events in memory', () => s.log.includes('xmpp resource without initial presence: its events wait in its queue, not in memory'))
    // Until initial presence, a message from the client gets a clear error (remaking the link for it would replay the queue each time).
    const early = await step(`<message type='chat' to='${a.userId}@localhost' id='early'><body>too soon</body></message>`, '</message>')
    assert.match(early, /type=.error.[^]*<resource-constraint /, early)
    // Initial presence: every message, in order, each once.
    let out = ''
    x.on('data', (d: Buffer) => { out += d.toString() })
    x.write('<presence/>')
    const bodies = (): string[] => [...out.matchAll(/<body>queued (\d+)<\/body>/g)].map((m) => m[1] as string)
    await waitFor('100 messages over XMPP', () => bodies().length >= 100 || undefined, 30_000)
    assert.deepEqual(bodies().map(Number), Array.from({ length: 100 }, (_, i) => i + 1))
    x.destroy()
  } finally {
    await s.dispose()
  }
  await stillServing()
})

test('finding, a stolen linked device: it can revoke only itself and link nothing; a phone verification takes the account back', async () => {
  const a = await server.register(phone())
  const stolen = await server.link(a)
  const tablet = await server.link(a)
  // The stolen linked device tries to throw the owner out and to link a device of its own.
  const revoke = await server.api('DELETE', `/v1/devices/${a.deviceId}`, stolen.token)
  assert.equal(revoke.status, 403)
  assert.equal(revoke.body.error.code, 'forbidden')
  assert.equal((await server.api('DELETE', `/v1/devices/${tablet.deviceId}`, stolen.token)).status, 403)
  assert.equal((await server.api('POST', '/v1/devices', stolen.token, { name: 'mine' })).status, 403)
  const kinds = (await server.api('GET', '/v1/devices', a.token)).body.devices.map((d: { device_id: string, kind: string }) => [d.device_id, d.kind])
  assert.deepEqual(new Map(kinds), new Map([[a.deviceId, 'primary'], [stolen.deviceId, 'linked'], [tablet.deviceId, 'linked']]))
  // The primary revokes it; a linked device may still sign itself out.
  assert.equal((await server.api('DELETE', `/v1/devices/${stolen.deviceId}`, a.token)).status, 204)
  assert.equal((await server.api('GET', '/v1/me', stolen.token)).status, 401)
  assert.equal((await server.api('DELETE', `/v1/devices/${tablet.deviceId}`, tablet.token)).status, 204)
  // A lost primary: verifying the number again makes a new primary and revokes every earlier device.
  const laptop = await server.link(a)
  const again = await server.register(a.phone, 'new phone')
  assert.equal(again.userId, a.userId)
  assert.equal((await server.api('GET', '/v1/me', a.token)).status, 401, 'the old primary is revoked')
  assert.equal((await server.api('GET', '/v1/me', laptop.token)).status, 401, 'and what was linked from it')
  assert.deepEqual((await server.api('GET', '/v1/devices', again.token)).body.devices.map((d: { device_id: string }) => d.device_id), [again.deviceId])
  await stillServing()
})

/** `n` TCP connections to `port` from `localAddress` (a loopback address), each open before the next. */
async function openSockets (port: number, n: number, localAddress: string): Promise<Socket[]> {
  const out: Socket[] = []
  for (let i = 0; i < n; i++) {
    const s = connect({ port, host: '127.0.0.1', localAddress })
    s.on('error', () => {})
    await new Promise<void>((resolve) => s.once('connect', () => resolve()))
    out.push(s)
  }
  return out
}

test('MQTT: connections that never send CONNECT are capped per address and overall; signed-in ones do not count', async () => {
  const open = async (n: number, localAddress: string): Promise<Socket[]> => await openSockets(server.ports.mqtt, n, localAddress)
  /** Whether the server closes a fresh connection from `localAddress` before it sends anything. */
  const closedAtOnce = async (localAddress: string): Promise<boolean> => {
    const [s] = await open(1, localAddress)
    const r = await readUntil(s as Socket, () => false, 5000)
    s?.destroy()
    return r.closed
  }
  const hundred = await open(100, '127.0.0.1')
  assert.ok(await closedAtOnce('127.0.0.1'), 'the 101st from one address is closed')
  // Signed-in devices (alice and bob, from 127.0.0.1 too) are not counted: the bystanders still talk.
  await stillServing()
  const sixty = await open(60, '127.0.0.2')
  assert.ok(await closedAtOnce('127.0.0.3'), 'past the overall bound (160) any address is refused')
  for (const s of [...hundred, ...sixty]) s.destroy()
  await waitFor('room again', async () => !(await closedAtOnce('127.0.0.3')) || undefined)
  await stillServing()
})

test('HTTP: open connections are capped per address and overall', async () => {
  const open = async (n: number, localAddress: string): Promise<Socket[]> => await openSockets(server.ports.http, n, localAddress)
  /** A request on a fresh connection from `localAddress`: the status, or 0 when the server closed it unanswered. */
  const ask = async (localAddress: string): Promise<number> => {
    const [s] = await open(1, localAddress)
    s?.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    const r = await readUntil(s as Socket, (o) => o.includes('\r\n\r\n'), 5000)
    s?.destroy()
    return Number(/^HTTP\/1\.1 (\d+)/.exec(r.out)?.[1] ?? 0)
  }
  const forty = await open(40, '127.0.0.1')
  // The test's own helper requests come from 127.0.0.1 too; wait until the server has counted all forty.
  await waitFor('the 41st from one address to be refused', async () => (await ask('127.0.0.1')) === 0 || undefined)
  assert.equal(await ask('127.0.0.2'), 200, 'another address still gets in')
  const thirty = await open(30, '127.0.0.2')
  await waitFor('past the overall bound (70) any address to be refused', async () => (await ask('127.0.0.3')) === 0 || undefined)
  for (const s of [...forty, ...thirty]) s.destroy()
  await waitFor('room again', async () => (await ask('127.0.0.1')) === 200 || undefined)
  await stillServing()
})

test('XMPP: three failed logins on one stream end it with policy-violation', async () => {
  const a = await server.register(phone())
  const plain = connect(server.ports.xmpp, '127.0.0.1')
  plain.on('error', () => {})
  plain.write(OPEN)
  await readUntil(plain, (o) => o.includes('</stream:features>'))
  plain.write(`<starttls xmlns='${NS_TLS}'/>`)
  await readUntil(plain, (o) => o.includes('<proceed'))
  const tls = tlsConnect({ socket: plain, servername: 'localhost', rejectUnauthorized: false })
  tls.on('error', () => {})
  tls.write(OPEN)
  await readUntil(tls, (o) => o.includes('</stream:features>'))
  const wrong = plainAuth({ ...a, token: `${a.deviceId}.wrong` })
  for (let i = 1; i <= 2; i++) {
    tls.write(wrong)
    const r = await readUntil(tls, (o) => o.includes('</failure>'))
    assert.match(r.out, /<not-authorized\/>/, `failure ${i}`)
    assert.doesNotMatch(r.out, /<stream:error>/, `the stream stays up after failure ${i}`)
  }
  tls.write(wrong)
  const third = await readUntil(tls, (o) => o.includes('</stream:stream>'))
  assert.match(third.out, /<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams.\/>/)
  tls.destroy()
  await stillServing()
})
