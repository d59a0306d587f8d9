import { test } from 'node:test'
import assert from 'node:assert/strict'
import { badUtf8, connectLevel, neededBytes, packetViolation } from '../../broker/packet-rules.js'

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

test('UTF-8 strings: well-formed text passes; U+0000, surrogates, controls and noncharacters do not', () => {
  for (const ok of ['chat/abc/msg', 'ü/€/😀', '']) assert.equal(badUtf8(Buffer.from(ok)), undefined, ok)
  assert.equal(badUtf8(h('61 00 62')), 'U+0000 in a string')
  assert.equal(badUtf8(h('ed a0 80')), 'ill-formed UTF-8')
  assert.equal(badUtf8(h('c0 af')), 'ill-formed UTF-8', 'overlong encoding')
  assert.equal(badUtf8(h('01')), 'a control character in a string')
  assert.equal(badUtf8(h('c2 9f')), 'a control character in a string')
  assert.equal(badUtf8(h('ef bf bf')), 'a noncharacter in a string')
})

test('CONNECT: will QoS 3, a password without a user name, trailing bytes and bad strings are violations', () => {
  const body = (flags: string, payload: string): Buffer => h(`0004 4d515454 04 ${flags} 000a ${payload}`)
  assert.equal(packetViolation(1, 0, 0, body('02', '0001 70')), undefined)
  assert.equal(packetViolation(1, 0, 0, body('82', '0001 70 0001 75')), undefined, 'user name')
  assert.match(packetViolation(1, 0, 0, body('1e', '0001 70 0001 74 0001 6d')) ?? '', /will QoS 3/)
  assert.match(packetViolation(1, 0, 0, body('42', '0001 70 0001 70')) ?? '', /password without a user name/)
  assert.match(packetViolation(1, 0, 0, body('02', '0001 70 0001 70')) ?? '', /bytes after the fields/)
  assert.match(packetViolation(1, 0, 0, body('06', '0001 70 0002 7400 0001 6d')) ?? '', /U\+0000.*will topic/)
  assert.equal(connectLevel(body('02', '0001 70')), 4)
  assert.equal(connectLevel(h('0006 4d5149736470 03 02')), 3)
  assert.equal(connectLevel(h('0004 41424344 04')), undefined, 'not an MQTT protocol name')
})

test('PUBLISH: only the topic and packet id are needed, whatever the payload size', () => {
  assert.equal(neededBytes(3, 0, 100_000, Buffer.alloc(0)), 2)
  assert.equal(neededBytes(3, 0, 100_000, h('0004')), 6)
  assert.equal(neededBytes(3, 2, 100_000, h('0004')), 8, 'QoS 1: + packet id')
  assert.equal(neededBytes(8, 2, 40, Buffer.alloc(0)), 40, 'control packets are read whole')
  assert.equal(packetViolation(3, 2, 100_000, h('0001 74 0007')), undefined)
  assert.match(packetViolation(3, 2, 100_000, h('0001 74 0000')) ?? '', /packet identifier 0/)
})

test('SUBSCRIBE needs at least one filter; acknowledgements need length 2 and a non-zero id', () => {
  assert.equal(packetViolation(8, 2, 6, h('0001 0001 70 01')), undefined)
  assert.match(packetViolation(8, 2, 2, h('0001')) ?? '', /SUBSCRIBE without topic filters/)
  assert.match(packetViolation(8, 2, 6, h('0000 0001 70 01')) ?? '', /packet identifier 0/)
  assert.equal(packetViolation(4, 0, 2, h('0001')), undefined)
  assert.match(packetViolation(6, 2, 2, h('0000')) ?? '', /packet identifier 0/)
  assert.match(packetViolation(4, 0, 1, h('00')) ?? '', /not 2/)
})
