// broker/parser-memory.ts reaches into mqtt-packet's parser: these pin it to the installed version.
// The parsers here are mqtt-packet's own, fed the bytes mqtt-packet itself generates.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket from 'mqtt-packet'
import { forgetConnectPacket, lightenParser } from '../../broker/parser-memory.js'

type Parser = ReturnType<typeof mqttPacket.parser> & { _list: unknown, settings: Record<string, unknown> }

function packetsOf (version: 4 | 5): Buffer[] {
  const opts = { protocolVersion: version }
  const props = version === 5 ? { properties: { userProperties: { a: 'b' } } } : {}
  return [
    mqttPacket.generate({ cmd: 'connect', protocolId: version === 5 ? 'MQTT' : 'MQTT', protocolVersion: version, clientId: 'dv_1', clean: false, keepalive: 30, username: 'dv_1', password: Buffer.from('secret-token') }, opts),
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dev/dv_1/inbox', qos: 1 }], ...props }, opts),
    mqttPacket.generate({ cmd: 'publish', topic: 'chat/c1/msg', payload: Buffer.from('{"id":"x"}'), qos: 1, messageId: 2, retain: false, dup: false, ...props }, opts),
    mqttPacket.generate({ cmd: 'puback', messageId: 9 }, opts)
  ]
}

const isStream = (x: unknown): boolean => typeof (x as { pipe?: unknown }).pipe === 'function'

/** Feeds the bytes one at a time (every packet split across reads), calling `after` once the CONNECT is out. */
function parseAll (parser: Parser, bytes: Buffer[], after: () => void): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  parser.on('packet', (p) => { out.push({ ...p }); if (p.cmd === 'connect') after() })
  parser.on('error', (err: Error) => { throw err })
  const all = Buffer.concat(bytes)
  for (let i = 0; i < all.length; i++) parser.parse(all.subarray(i, i + 1))
  return out
}

for (const version of [4, 5] as const) {
  test(`MQTT ${version === 4 ? '3.1.1' : '5'}: a parser with the plain buffer list and the CONNECT forgotten parses what an untouched one does`, () => {
    const plain = mqttPacket.parser() as Parser
    const expected = parseAll(plain, packetsOf(version), () => {})
    const parser = mqttPacket.parser() as Parser
    const client = { _parser: parser }
    assert.equal(isStream(parser._list), true, 'mqtt-packet starts with a BufferListStream')
    lightenParser(client)
    assert.equal(isStream(parser._list), false, 'replaced by a plain list')
    const got = parseAll(parser, packetsOf(version), () => forgetConnectPacket(client))
    assert.deepEqual(got, expected)
    assert.equal(got.length, 4)
    assert.deepEqual(parser.settings, { protocolVersion: version }, 'only the level is kept')
    assert.equal(JSON.stringify(parser.settings).includes('secret-token'), false)
  })
}

test('a bridge connection keeps its bridge mode', () => {
  const parser = mqttPacket.parser() as Parser
  parser.settings = { protocolVersion: 4, bridgeMode: true, password: Buffer.from('x') }
  forgetConnectPacket({ _parser: parser })
  assert.deepEqual(parser.settings, { protocolVersion: 4, bridgeMode: true })
})
