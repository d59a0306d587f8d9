import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { guardPackets, readOversizeMarker, type GuardOptions } from '../../broker/packet-guard.js'

/** Feeds the chunks through the guard as aedes does (parser.parse per chunk); reports what reached the parser. */
function run (chunks: Buffer[], o: Partial<GuardOptions> & { maxBytes: number }): { oversize: number | undefined, destroyed: boolean, parsed: Buffer, calls: number, conn: PassThrough } {
  const conn = new PassThrough()
  const got: Buffer[] = []
  const parser = { parse: (b: Buffer) => { got.push(Buffer.from(b)) } }
  let oversize: number | undefined
  guardPackets(conn, parser, { onOversize: (size) => { oversize = size }, ...o })
  for (const c of chunks) parser.parse(c)
  return { oversize, destroyed: conn.destroyed, parsed: Buffer.concat(got), calls: got.length, conn }
}

async function feed (chunks: Buffer[], max: number): Promise<{ violation: number | undefined, destroyed: boolean, bytesRead: number }> {
  const r = run(chunks, { maxBytes: max })
  return { violation: r.oversize, destroyed: r.destroyed, bytesRead: r.parsed.length }
}

const publish = (bytes: number): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(bytes), qos: 0, retain: false, dup: false })

test('packets up to the limit pass, across any chunking', async () => {
  // 200,000-byte payload + its header: just under the limit used below.
  const stream = Buffer.concat([publish(10), publish(1000), publish(200_000), publish(0)])
  for (const size of [1, 3, 7, 4096, stream.length]) {
    const chunks = []
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size))
    const r = await feed(chunks, 200_010)
    assert.equal(r.violation, undefined, `chunk size ${size}`)
    assert.equal(r.destroyed, false)
    assert.equal(r.bytesRead, stream.length, 'every byte reaches the parser')
  }
})

test('a header announcing a packet over the limit destroys the connection at once', async () => {
  const big = publish(5000)
  const r = await feed([publish(10), big.subarray(0, 4)], 4096)
  assert.equal(r.violation, big.length)
  assert.equal(r.destroyed, true)
})

test('the 4-byte maximum remaining length is decoded', async () => {
  const r = await feed([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])], 1 << 20)
  assert.equal(r.violation, 268_435_455 + 5)
})

/** Like feed(), with the protocol rules on. */
async function feedRules (chunks: Buffer[]): Promise<{ violation: string | undefined, destroyed: boolean, ended: Buffer[], parsed: Buffer }> {
  const conn = new PassThrough()
  const written: Buffer[] = []
  const end = conn.end.bind(conn)
  conn.end = ((b?: Buffer) => { if (b) written.push(b); return end() }) as typeof conn.end
  const got: Buffer[] = []
  const parser = { parse: (b: Buffer) => { got.push(Buffer.from(b)) } }
  let violation: string | undefined
  guardPackets(conn, parser, { maxBytes: 1 << 20, onOversize: () => {}, onViolation: (r) => { violation = r }, onUnknownLevel: () => {} })
  for (const c of chunks) parser.parse(c)
  return { violation, destroyed: conn.destroyed, ended: written, parsed: Buffer.concat(got) }
}

const bytes = (chunkSize: number, ...packets: Buffer[]): Buffer[] => {
  const all = Buffer.concat(packets)
  const out: Buffer[] = []
  for (let i = 0; i < all.length; i += chunkSize) out.push(all.subarray(i, i + chunkSize))
  return out
}
const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 60 })

test('with the rules on, a valid session passes across any chunking', async () => {
  const session = [
    connect,
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+/ü', qos: 1 }] }),
    mqttPacket.generate({ cmd: 'publish', topic: 'a/b/ü', payload: Buffer.alloc(3000, 0), qos: 1, messageId: 2, retain: false, dup: false }),
    mqttPacket.generate({ cmd: 'puback', messageId: 9 }),
    mqttPacket.generate({ cmd: 'pingreq' }),
    mqttPacket.generate({ cmd: 'disconnect' })
  ]
  for (const size of [1, 2, 5, 64, 100_000]) {
    const r = await feedRules(bytes(size, ...session))
    assert.equal(r.violation, undefined, `chunk size ${size}`)
    assert.equal(r.destroyed, false)
    assert.deepEqual(r.parsed, Buffer.concat(session), `chunk size ${size}: the parser gets the session as it was sent`)
  }
})

test('a rule broken in a later packet closes the connection, even when the packet arrives byte by byte', async () => {
  const badTopic = Buffer.from('30080004' + '61006263' + '7878', 'hex') // PUBLISH QoS 0, topic "a\0bc"
  const cases: Array<[Buffer, RegExp]> = [
    [badTopic, /U\+0000/],
    [Buffer.from('3809000474657374' + '78', 'hex'), /DUP set on a QoS 0/],
    [Buffer.from('320800047465737400007878', 'hex').subarray(0, 10), /packet identifier 0/],
    [Buffer.from('40030001ff', 'hex'), /remaining length is not 2/],
    [Buffer.from('a2020001', 'hex'), /UNSUBSCRIBE without topic filters/],
    [Buffer.from('c00100', 'hex'), /non-zero remaining length/]
  ]
  for (const [packet, reason] of cases) {
    const r = await feedRules(bytes(1, connect, packet))
    assert.match(r.violation ?? '', reason, packet.toString('hex'))
    assert.equal(r.destroyed, true)
    assert.deepEqual(r.parsed, connect, 'nothing of the offending packet reaches the parser')
  }
})

test('a first CONNECT naming protocol level 6 is answered with CONNACK 0x01', async () => {
  const r = await feedRules([Buffer.from('100d00044d5154540602000a000170', 'hex')])
  assert.deepEqual(r.ended.map((b) => b.toString('hex')), ['20020001'])
})

test('an oversize PUBLISH reaches the parser as a stand-in: same topic, id and flags, its size, the start of its payload; the packets around it are intact', async () => {
  const envelope = Buffer.from(JSON.stringify({ id: 'big-1', body: 'x'.repeat(300_000) }))
  const big = mqttPacket.generate({ cmd: 'publish', topic: 'chat/g_1/msg', payload: envelope, qos: 1, messageId: 77, retain: false, dup: true })
  const before = mqttPacket.generate({ cmd: 'publish', topic: 'chat/g_1/msg', payload: Buffer.from('{"id":"a"}'), qos: 1, messageId: 76, retain: false, dup: false })
  const after = mqttPacket.generate({ cmd: 'puback', messageId: 5 })
  for (const size of [1, 3, 1000, 65_536, 1 << 20]) {
    const seen: number[] = []
    const r = run(bytes(size, connect, before, big, after), { maxBytes: 4096, onOversizePublish: (n) => seen.push(n), onViolation: () => {}, onUnknownLevel: () => {} })
    assert.equal(r.destroyed, false, `chunk size ${size}`)
    assert.deepEqual(seen, [big.length])
    const packets: mqttPacket.Packet[] = []
    const p = mqttPacket.parser({ protocolVersion: 4 })
    p.on('packet', (x) => packets.push(x))
    p.parse(r.parsed)
    assert.deepEqual(packets.map((x) => x.cmd), ['connect', 'publish', 'publish', 'puback'], `chunk size ${size}`)
    const stand = packets[2] as mqttPacket.IPublishPacket
    assert.deepEqual([stand.topic, stand.messageId, stand.qos, stand.dup], ['chat/g_1/msg', 77, 1, true])
    const marker = readOversizeMarker(stand.payload as Buffer)
    assert.equal(marker?.size, big.length)
    assert.ok(marker !== undefined && marker.payloadStart.length === 512 && envelope.subarray(0, 512).equals(marker.payloadStart))
    assert.ok(r.parsed.length < 4096, 'the payload was never passed on')
  }
})

test('an oversize packet other than PUBLISH, or a first packet over the limit, still closes the connection', async () => {
  const sub = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: Array.from({ length: 400 }, (_, i) => ({ topic: `t/${i}/xxxxxxxx`, qos: 0 as const })) })
  const r = run([connect, sub], { maxBytes: 4096, onOversizePublish: () => {} })
  assert.deepEqual([r.oversize, r.destroyed], [sub.length, true])
  const first = run([publish(5000)], { maxBytes: 4096, onOversizePublish: () => {} })
  assert.equal(first.destroyed, true)
})

test('a run of packets reaches the parser in as many calls as it came in chunks', async () => {
  const stream = Buffer.concat(Array.from({ length: 50 }, (_, i) => publish(i)))
  const r = run([connect, stream], { maxBytes: 4096, onOversizePublish: () => {}, onViolation: () => {}, onUnknownLevel: () => {} })
  assert.equal(r.calls, 2)
})
