import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MALFORMED, PROTOCOL_ERROR, neededBytesV5, packetViolationV5, type V5State } from '../../broker/packet-rules-v5.js'

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const state = (): V5State => ({ sessionExpiry: 0 })
/** The reason code for a client packet (type and flags from its first byte), or undefined when it passes. */
const code = (first: number, body: string, s = state()): number | undefined => {
  const b = h(body)
  return packetViolationV5(first >> 4, first & 0x0f, b.length, b, s)?.reasonCode
}

test('v5 PUBLISH properties: well-formed ones pass; a value cut short, an unknown id or a bad string is malformed (0x81)', () => {
  // topic "t", packet id 1, then the properties.
  assert.equal(code(0x32, '0001 74 0001 00'), undefined, 'no properties')
  assert.equal(code(0x32, '0001 74 0001 0d 0100 08000174 26000161000162'), undefined, 'payload format, response topic, user property')
  assert.equal(code(0x32, '0001 74 0001 03 080001'), MALFORMED, 'Response Topic without its value (aedes 2 beta crashed on it)')
  assert.equal(code(0x32, '0001 74 0001 04 26000161'), MALFORMED, 'User Property without its value')
  assert.equal(code(0x32, '0001 74 0001 02 7f00'), MALFORMED, 'unknown property')
  assert.equal(code(0x32, '0001 74 0001 05 0800020000'), MALFORMED, 'U+0000 in a string property')
  assert.equal(code(0x32, '0001 74 0001 09 0800 01'), MALFORMED, 'a property length past the end')
  assert.equal(code(0x32, '0001 74 0001 ffffffff7f'), MALFORMED, 'a property length over four bytes')
})

test('v5 PUBLISH: out of place, repeated or forbidden values are a protocol error (0x82); a malformed one anywhere wins', () => {
  assert.equal(code(0x32, '0001 74 0001 02 2401'), PROTOCOL_ERROR, 'Maximum QoS: only a server sends it')
  assert.equal(code(0x32, '0001 74 0001 05 1100000001'), PROTOCOL_ERROR, 'Session Expiry Interval on a PUBLISH')
  assert.equal(code(0x32, '0001 74 0001 04 0100 0100'), PROTOCOL_ERROR, 'Payload Format Indicator twice')
  assert.equal(code(0x32, '0001 74 0001 02 0102'), PROTOCOL_ERROR, 'Payload Format Indicator 2')
  assert.equal(code(0x32, '0001 74 0001 02 0b01'), PROTOCOL_ERROR, 'a Subscription Identifier from a client [MQTT-3.3.4-6]')
  assert.equal(code(0x32, '0001 74 0001 04 08000123'), PROTOCOL_ERROR, 'a wildcard in the Response Topic')
  assert.equal(code(0x32, '0001 74 0000 00'), PROTOCOL_ERROR, 'packet id 0')
  assert.equal(code(0x32, '0001 74 0001 04 2401 7f00'), MALFORMED, 'misplaced, then unknown: malformed')
})

test('v5 PUBLISH topics: a wildcard or an empty topic without a Topic Alias is malformed', () => {
  assert.equal(code(0x30, '0001 23 00'), MALFORMED)
  assert.equal(code(0x30, '0000 00'), MALFORMED)
  assert.equal(code(0x30, '0000 03 230001'), undefined, 'an empty topic with a Topic Alias')
})

test('v5 other packets: acknowledgements, SUBSCRIBE options, shared subscriptions, server-only packets, AUTH', () => {
  assert.equal(code(0x40, '0001'), undefined)
  assert.equal(code(0x40, '0001 10'), undefined, 'PUBACK with a reason code')
  assert.equal(code(0x40, '0001 20'), PROTOCOL_ERROR, 'a reason code PUBACK does not have')
  assert.equal(code(0x60, '0001'), MALFORMED, 'PUBREL flags 0000')
  assert.equal(code(0x82, '0001 00 0001 74 01'), undefined)
  assert.equal(code(0x82, '0001 00 0001 74 c1'), MALFORMED, 'reserved option bits')
  assert.equal(code(0x82, '0001 00 0001 74 31'), MALFORMED, 'Retain Handling 3')
  assert.equal(code(0x82, '0001 00 0000 01'), MALFORMED, 'an empty filter')
  assert.equal(code(0x82, '0001 00'), MALFORMED, 'no filters')
  assert.equal(code(0x82, '0001 00 0008 247368617265 2f70 01'), PROTOCOL_ERROR, '$share/p: no topic filter')
  assert.equal(code(0x82, '0001 02 0b00 0001 74 01'), MALFORMED, 'Subscription Identifier 0')
  assert.equal(code(0x90, '0001 00'), PROTOCOL_ERROR, 'SUBACK from a client')
  assert.equal(code(0x91, '0001 00'), MALFORMED, 'SUBACK with reserved flags')
  assert.equal(code(0xf0, '00'), PROTOCOL_ERROR, 'AUTH: no enhanced authentication is offered')
  assert.equal(code(0xe1, ''), MALFORMED, 'DISCONNECT flags')
})

test('v5 CONNECT and DISCONNECT: properties and the session expiry rule', () => {
  const s = state()
  // MQTT v5, clean start, keepalive 60, Session Expiry Interval 0, client id "p".
  assert.equal(code(0x10, '0004 4d515454 05 02 003c 05 1100000000 0001 70', s), undefined)
  assert.equal(code(0xe0, '00 05 1100000001', s), PROTOCOL_ERROR, 'a session expiry on DISCONNECT after 0 on CONNECT')
  const kept = state()
  assert.equal(code(0x10, '0004 4d515454 05 02 003c 05 110000003c 0001 70', kept), undefined)
  assert.equal(kept.sessionExpiry, 60)
  assert.equal(code(0xe0, '00 05 1100000001', kept), undefined)
  assert.equal(code(0x10, '0004 4d515454 05 02 003c 03 210000 0001 70'), PROTOCOL_ERROR, 'Receive Maximum 0')
  assert.equal(code(0x10, '0004 4d515454 05 02 003c 05 2700000002 0001 70'), 0, 'a Maximum Packet Size no CONNACK fits: closed unanswered')
  assert.equal(code(0x10, '0004 4d515454 05 03 003c 00 0001 70'), MALFORMED, 'the reserved flag')
  assert.equal(code(0x10, '0004 4d515454 05 02 003c 00 0002 7001'), MALFORMED, 'a control character in the client id')
})

test('neededBytesV5: a PUBLISH is held until its properties are in, which is where its payload starts', () => {
  assert.equal(neededBytesV5(3, 2, 100, Buffer.alloc(0)), 2)
  assert.equal(neededBytesV5(3, 2, 100, h('0001')), 6, 'topic, packet id, first byte of the property length')
  assert.equal(neededBytesV5(3, 2, 100, h('0001 74 0001 03')), 9, 'and the 3 bytes it counts')
  assert.equal(neededBytesV5(3, 0, 100, h('0001 74 80')), 5, 'a longer property length: one byte more')
  assert.equal(neededBytesV5(3, 0, 4, h('0001 74')), 4, 'never past the packet')
  assert.equal(neededBytesV5(3, 2, 100, h('0001 74 0001 03 010001 7b7d')), 9, 'the payload (7b7d) starts after the properties')
})
