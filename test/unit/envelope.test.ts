import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseEnvelope, clientIdOf, jsonDepth, MAX_BODY_DEPTH } from '../../bridge/envelope.js'
import { msgEvent } from '../../bridge/events.js'
import { DomainError } from '../../core/errors.js'
import { RawJson, stringifyWithRaw } from '../../lib/raw-json.js'

const b = (v: unknown): Buffer => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))

test('a valid envelope keeps the body as the exact JSON the client sent', () => {
  const e = parseEnvelope(b({ id: 'c-1', type: 'text', body: { cipher: 'AAEC', n: [1, 2] }, ts: 1700000000000.9 }), 1024)
  assert.deepEqual(e, { id: 'c-1', type: 'text', body: '{"cipher":"AAEC","n":[1,2]}', ts: 1700000000000, e2ee: null, ref: null, forwarded: false, media: null })
  assert.equal(parseEnvelope(b({ id: 'x', body: 'hi' }), 1024).type, 'text')
})

test('each malformed envelope is refused with its code', () => {
  const cases: Array<[unknown, string]> = [
    ['{not json', 'bad_request'],
    [[1, 2], 'bad_request'],
    [{ body: 'no id' }, 'bad_request'],
    [{ id: '', body: 1 }, 'bad_request'],
    [{ id: 'a/b', body: 1 }, 'bad_request'],
    [{ id: 'x'.repeat(65), body: 1 }, 'bad_request'],
    [{ id: 'a', type: 'nope', body: 1 }, 'bad_request'],
    [{ id: 'a' }, 'bad_request'],
    [{ id: 'a', body: null }, 'bad_request'],
    [{ id: 'a', body: 1, ts: 'yesterday' }, 'bad_request'],
    [{ id: 'a', body: 'x'.repeat(2000) }, 'too_large'],
    [{ id: 'a', type: 'reply', body: 'no reply_to' }, 'bad_request'],
    [{ id: 'a', type: 'edit', ref: 0, body: 'x' }, 'bad_request'],
    [{ id: 'a', type: 'reaction', ref: 1, body: 42 }, 'bad_request'],
    [{ id: 'a', body: 1, forwarded: 'yes' }, 'bad_request']
  ]
  for (const [input, code] of cases) {
    assert.throws(() => parseEnvelope(b(input), 1024), (err: unknown) => err instanceof DomainError && err.code === code, JSON.stringify(input))
  }
})

test('operations carry their reference; delete needs no body, a reaction body may be null', () => {
  assert.deepEqual(parseEnvelope(b({ id: 'r', type: 'reply', reply_to: 3, body: 'ok' }), 1024), { id: 'r', type: 'reply', body: '"ok"', ts: null, e2ee: null, ref: 3, forwarded: false, media: null })
  assert.equal(parseEnvelope(b({ id: 'd', type: 'delete', ref: 3 }), 1024).body, 'null')
  assert.equal(parseEnvelope(b({ id: 'x', type: 'reaction', ref: 3, body: null }), 1024).body, 'null')
  assert.equal(parseEnvelope(b({ id: 'x', type: 'reaction', ref: 3, body: '👍' }), 1024).body, '"👍"')
})

test('clientIdOf reads the id of a refused payload when it can', () => {
  assert.equal(clientIdOf(b({ id: 'ok-1' })), 'ok-1')
  assert.equal(clientIdOf(b('garbage')), undefined)
  assert.equal(clientIdOf(b({ id: 'has space' })), undefined)
})

test('msg events splice the stored body in as JSON', () => {
  const ev = JSON.parse(msgEvent({ chatId: 'g_1', seq: 3, senderUser: 'u_1', senderDevice: 'dv_1', clientId: 'c', type: 'text', body: '{"a":[1,"x"]}', clientTs: null, serverTs: 9 }))
  assert.deepEqual(ev, { type: 'msg', chat: 'g_1', seq: 3, id: 'c', from: 'u_1', device: 'dv_1', kind: 'text', ts: 9, cts: null, body: { a: [1, 'x'] } })
})

test('body nesting: counted without recursion, brackets in strings ignored, at most MAX_BODY_DEPTH', () => {
  assert.equal(jsonDepth('"x"'), 0)
  assert.equal(jsonDepth('[1,{"a":[2]}]'), 3)
  assert.equal(jsonDepth('["[[[", "\\"[[", {"k]": "{"}]'), 2)
  assert.equal(jsonDepth('['.repeat(200_000) + ']'.repeat(200_000)), 200_000)
  const nest = (n: number): string => `{"id":"n","body":${'['.repeat(n)}${']'.repeat(n)}}`
  assert.equal(parseEnvelope(b(nest(MAX_BODY_DEPTH)), 1 << 20).body.length, 2 * MAX_BODY_DEPTH)
  assert.throws(() => parseEnvelope(b(nest(MAX_BODY_DEPTH + 1)), 1 << 20), (e: unknown) => e instanceof DomainError && e.code === 'bad_request')
  assert.throws(() => parseEnvelope(b(nest(50_000)), 1 << 20), (e: unknown) => e instanceof DomainError && e.code === 'bad_request')
})

test('stored JSON is spliced into answers as it is; a string that looks like a marker stays a string', () => {
  const deep = '['.repeat(50_000) + ']'.repeat(50_000)
  const out = stringifyWithRaw({ a: [new RawJson('{"x":1}'), new RawJson(deep)], s: 'raw-000000000000000000000000-0' })
  assert.ok(out.startsWith('{"a":[{"x":1},[[['))
  assert.ok(out.endsWith(']]],"s":"raw-000000000000000000000000-0"}'))
  assert.equal(stringifyWithRaw({ n: 1 }), '{"n":1}')
})
