// Property-based tests (fast-check) of the parsers an outsider feeds: the
// chat envelope, the XMPP stream parser and the MQTT packet guard, with
// random and adversarial inputs. The property in each: a clear outcome (a
// result, or a refusal of a documented kind), never an exception of another
// kind, and the same answer however the bytes are cut into chunks. Each
// run tries about 8,000 inputs in all and takes a few seconds; a failure
// prints the seed and the smallest input that fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import mqttPacket from 'mqtt-packet'
import { xml, type Element } from '@xmpp/xml'
import { jsonDepth, leadingClientId, MAX_BODY_DEPTH, MESSAGE_TYPES, parseEnvelope } from '../../bridge/envelope.js'
import { DomainError } from '../../core/errors.js'
import { StreamParser } from '../../xmpp/stream.js'
import { guardPackets, readOversizeMarker } from '../../broker/packet-guard.js'

const MAX = 4096

/** Nesting of a parsed JSON value, counted as jsonDepth counts it. */
function depthOf (v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf))
  if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf))
  return 0
}

/** Envelopes as a client might get them wrong: plausible fields with adversarial values. */
const envelopeLike = fc.record({
  id: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/), fc.string(), fc.integer(), fc.constant(undefined)),
  type: fc.oneof(fc.constantFrom(...MESSAGE_TYPES), fc.string(), fc.constant(undefined), fc.constant(null)),
  body: fc.oneof(fc.jsonValue({ maxDepth: 40 }), fc.string(), fc.constant(undefined)),
  ref: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(undefined)),
  reply_to: fc.oneof(fc.integer(), fc.constant(undefined)),
  media: fc.oneof(fc.string(), fc.constant(null), fc.constant(undefined)),
  ts: fc.oneof(fc.double(), fc.string(), fc.constant(undefined)),
  forwarded: fc.oneof(fc.boolean(), fc.string(), fc.constant(undefined))
}, { requiredKeys: [] })

const deepText = fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) => open.repeat(n) + '0' + (open === '[' ? ']' : '}').repeat(n))

const payloads = fc.oneof(
  fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
  fc.json({ maxDepth: 40 }).map((t) => Buffer.from(t)),
  envelopeLike.map((e) => Buffer.from(JSON.stringify(e))),
  deepText.map((t) => Buffer.from(`{"id":"d","body":${t}}`)),
  fc.string({ minLength: MAX - 20, maxLength: MAX + 20 }).map((s) => Buffer.from(JSON.stringify({ id: 'big', body: s })))
)

test('envelope parser: every payload is an envelope within the rules, or a bad_request / too_large refusal', () => {
  fc.assert(fc.property(payloads, (payload) => {
    let env
    try {
      env = parseEnvelope(payload, MAX)
    } catch (err) {
      assert.ok(err instanceof DomainError, `not a refusal: ${String(err)}`)
      assert.ok(err.code === 'bad_request' || err.code === 'too_large', err.code)
      if (err.code === 'too_large') assert.ok(payload.length > MAX)
      return
    }
    assert.ok(payload.length <= MAX)
    assert.match(env.id, /^[A-Za-z0-9._:-]{1,64}$/)
    assert.ok((MESSAGE_TYPES as readonly string[]).includes(env.type))
    assert.ok(jsonDepth(env.body) <= MAX_BODY_DEPTH, 'the stored body nests within the limit')
  }), { numRuns: 3000 })
})

test('jsonDepth reads the nesting of any JSON text as a parser would, strings included', () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 50 }), (v) => {
    assert.equal(jsonDepth(JSON.stringify(v)), depthOf(v))
  }), { numRuns: 2000 })
})

test('the client id of an oversize envelope is read from its first bytes, or not at all, never wrongly', () => {
  fc.assert(fc.property(envelopeLike, fc.integer({ min: 0, max: 600 }), (e, cut) => {
    const text = Buffer.from(JSON.stringify(e))
    const found = leadingClientId(text.subarray(0, cut))
    if (found !== undefined) assert.equal(found, e.id)
  }), { numRuns: 1000 })
})

/** Random stanza trees, serialized. */
const name = fc.constantFrom('message', 'iq', 'presence', 'body', 'query', 'x', 'a:b', 'item')
const attrValue = fc.string({ maxLength: 12 })
const stanza: fc.Arbitrary<Element> = fc.letrec((tie) => ({
  el: fc.tuple(name, fc.dictionary(fc.constantFrom('id', 'to', 'type', 'xmlns', 'from'), attrValue, { maxKeys: 3 }), fc.array(fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 20 }), tie('el')), { maxLength: 4 }))
    .map(([n, attrs, children]) => xml(n, attrs, ...(children as Array<Element | string>)))
})).el as fc.Arbitrary<Element>

const OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

/** Cuts text or bytes into chunks at the given fractions of its length. */
function chunked<T extends string | Buffer> (all: T, cuts: number[]): T[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * all.length)))].sort((a, b) => a - b)
  const out: T[] = []
  let at = 0
  for (const p of points) { out.push(all.slice(at, p) as T); at = p }
  out.push(all.slice(at) as T)
  return out
}

/** Feeds chunks as xmpp/stream.ts does: an error, emitted or thrown (an unknown entity), ends the stream. */
function parse (chunks: string[]): { stanzas: string[], errors: number } {
  const p = new StreamParser()
  const stanzas: string[] = []
  let errors = 0
  p.on('element', (el: Element) => { if (errors === 0) stanzas.push(el.toString()) })
  p.on('error', () => { errors++ })
  for (const c of chunks) {
    if (errors > 0) break
    try { p.write(c) } catch { errors++ }
  }
  return { stanzas, errors }
}

test('XMPP stream parser: stanzas come out as they went in, however the text is chunked', () => {
  fc.assert(fc.property(fc.array(stanza, { minLength: 1, maxLength: 6 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }), (stanzas, cuts) => {
    const text = OPEN + stanzas.map((s) => `${s.toString()}\n `).join('')
    const r = parse(chunked(text, cuts))
    assert.equal(r.errors, 0)
    assert.deepEqual(r.stanzas, stanzas.map((s) => s.toString()))
  }), { numRuns: 500 })
})

test('XMPP stream parser: any text gives stanzas, then perhaps an error that ends the stream, the same way for any chunking', () => {
  const token = fc.constantFrom('<', '>', '/', '=', "'", '"', ' ', 'a', 'message', '<body>', '</body>', '&amp;', '&bogus;', '<?xml', '<!--', ']]>', '<![CDATA[', '\u0000', '\uffff', 'xmlns:x=', '<x:y', '\n')
  fc.assert(fc.property(fc.array(token, { maxLength: 60 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), (tokens, cuts) => {
    const text = OPEN + tokens.join('')
    const whole = parse([text])
    const pieces = parse(chunked(text, cuts))
    assert.deepEqual(pieces.stanzas, whole.stanzas)
    assert.equal(pieces.errors > 0, whole.errors > 0)
  }), { numRuns: 1500 })
})

const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 60 })
const LIMIT = 2048

/** Random packets a client may send after CONNECT; some PUBLISHes over the limit. */
const packet = fc.oneof(
  fc.record({ topic: fc.stringMatching(/^[a-z/]{1,20}$/), size: fc.integer({ min: 0, max: 5000 }), qos: fc.constantFrom(0, 1, 2), id: fc.integer({ min: 1, max: 65535 }) })
    .map(({ topic, size, qos, id }) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(size, 0x61), qos: qos as 0 | 1 | 2, messageId: qos > 0 ? id : undefined, retain: false, dup: false })),
  fc.integer({ min: 1, max: 65535 }).map((id) => mqttPacket.generate({ cmd: 'puback', messageId: id })),
  fc.constant(mqttPacket.generate({ cmd: 'pingreq' })),
  fc.array(fc.stringMatching(/^[a-z/+#]{1,10}$/), { minLength: 1, maxLength: 5 }).map((topics) => mqttPacket.generate({ cmd: 'subscribe', messageId: 7, subscriptions: topics.map((topic) => ({ topic, qos: 0 as const })) }))
)

/** Runs bytes through the guard in the given chunks: what the parser got, and whether the connection was closed. */
function guard (chunks: Buffer[]): { parsed: Buffer, closed: boolean } {
  const conn = new PassThrough()
  const got: Buffer[] = []
  const parser = { parse: (b: Buffer) => { got.push(Buffer.from(b)) } }
  guardPackets(conn, parser, { maxBytes: LIMIT, onOversize: () => {}, onOversizePublish: () => {}, onViolation: () => {}, onUnknownLevel: () => {} })
  for (const c of chunks) parser.parse(c)
  return { parsed: Buffer.concat(got), closed: conn.destroyed || conn.writableEnded }
}

test('MQTT packet guard: valid packets pass byte for byte, oversize PUBLISHes become stand-ins, for any chunking', () => {
  fc.assert(fc.property(fc.array(packet, { maxLength: 12 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }), (packets, cuts) => {
    const r = guard(chunked(Buffer.concat([connect, ...packets]), cuts))
    assert.equal(r.closed, false)
    const expected = packets.map((p) => p.length <= LIMIT ? p : undefined)
    const out: mqttPacket.Packet[] = []
    const p = mqttPacket.parser({ protocolVersion: 4 })
    p.on('packet', (x) => out.push(x))
    p.parse(r.parsed)
    assert.equal(out.length, packets.length + 1)
    expected.forEach((bytes, i) => {
      const got = out[i + 1] as mqttPacket.Packet
      if (bytes !== undefined) assert.deepEqual(mqttPacket.generate(got), bytes)
      else assert.equal(readOversizeMarker((got as mqttPacket.IPublishPacket).payload as Buffer)?.size, packets[i]!.length)
    })
  }), { numRuns: 500 })
})

test('MQTT packet guard: random bytes never throw, and close or pass the same way for any chunking', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), (bytes, cuts) => {
    const all = Buffer.concat([connect, Buffer.from(bytes)])
    const whole = guard([all])
    const pieces = guard(chunked(all, cuts))
    assert.equal(pieces.closed, whole.closed)
    assert.deepEqual(pieces.parsed, whole.parsed)
  }), { numRuns: 1500 })
})
