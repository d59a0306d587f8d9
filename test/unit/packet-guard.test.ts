import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { guardPacketSize, guardPackets } from '../../broker/packet-guard.js'

/** Writes the chunks, lets the stream be drained the way aedes drains it ('readable' + read()), then reports. */
async function feed (chunks: Buffer[], max: number): Promise<{ violation: number | undefined, destroyed: boolean, bytesRead: number }> {
  const conn = new PassThrough()
  let bytesRead = 0
  conn.on('readable', () => {
    let chunk: Buffer | null
    while ((chunk = conn.read() as Buffer | null) !== null) bytesRead += chunk.length
  })
  let violation: number | undefined
  guardPacketSize(conn, max, (size) => { violation = size })
  for (const c of chunks) {
    conn.write(c)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await new Promise((resolve) => setImmediate(resolve))
  return { violation, destroyed: conn.destroyed, bytesRead }
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
    assert.equal(r.bytesRead, stream.length, 'the guard does not take bytes from the reader')
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
async function feedRules (chunks: Buffer[]): Promise<{ violation: string | undefined, destroyed: boolean, ended: Buffer[] }> {
  const conn = new PassThrough()
  conn.on('readable', () => { while (conn.read() !== null); })
  const written: Buffer[] = []
  const end = conn.end.bind(conn)
  conn.end = ((b?: Buffer) => { if (b) written.push(b); return end() }) as typeof conn.end
  let violation: string | undefined
  guardPackets(conn, { maxBytes: 1 << 20, onOversize: () => {}, onViolation: (r) => { violation = r }, onUnknownLevel: () => {} })
  for (const c of chunks) {
    conn.write(c)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await new Promise((resolve) => setImmediate(resolve))
  return { violation, destroyed: conn.destroyed, ended: written }
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
  }
})

test('a first CONNECT naming protocol level 6 is answered with CONNACK 0x01', async () => {
  const r = await feedRules([Buffer.from('100d00044d5154540602000a000170', 'hex')])
  assert.deepEqual(r.ended.map((b) => b.toString('hex')), ['20020001'])
})
