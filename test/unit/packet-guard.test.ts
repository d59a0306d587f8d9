import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { guardPacketSize } from '../../broker/packet-guard.js'

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
