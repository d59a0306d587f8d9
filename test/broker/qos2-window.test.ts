// broker/qos2-window.ts on mqtt-packet's own parser, fed the bytes mqtt-packet
// generates, at MQTT 3.1.1 and 5 (test/e2e/limits.test.ts covers the server).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { limitUnreleased } from '../../broker/qos2-window.js'

for (const version of [4, 5] as const) {
  const opts = { protocolVersion: version }
  const publish = (messageId: number, dup = false): Buffer =>
    mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId, retain: false, dup }, opts)
  const pubrel = (messageId: number): Buffer => mqttPacket.generate({ cmd: 'pubrel', messageId }, opts)

  /** A parser behind a window of 2; what got through (cmd:id), and whether the connection was closed. */
  function windowOf2 (): { feed: (...b: Buffer[]) => void, through: string[], closed: () => boolean, exceeded: number[] } {
    const parser = mqttPacket.parser(opts)
    const conn = new PassThrough()
    const through: string[] = []
    const exceeded: number[] = []
    parser.on('packet', (p: { cmd: string, messageId?: number }) => through.push(`${p.cmd}:${p.messageId ?? ''}`))
    limitUnreleased(conn, parser, 2, (held) => exceeded.push(held))
    return { feed: (...b) => { parser.parse(Buffer.concat(b)) }, through, closed: () => conn.destroyed, exceeded }
  }

  test(`MQTT ${version === 4 ? '3.1.1' : '5'}: two held QoS 2 publishes pass, a third closes the connection and is not handed on, nor anything after it`, () => {
    const w = windowOf2()
    w.feed(publish(1), publish(2))
    assert.deepEqual(w.through, ['publish:1', 'publish:2'])
    assert.equal(w.closed(), false)
    w.feed(publish(3), pubrel(1), publish(4))
    assert.deepEqual(w.through, ['publish:1', 'publish:2'])
    assert.equal(w.closed(), true)
    assert.deepEqual(w.exceeded, [2])
  })

  test(`MQTT ${version === 4 ? '3.1.1' : '5'}: a PUBREL frees its place, and a resent publish (DUP) takes no second one`, () => {
    const w = windowOf2()
    w.feed(publish(1), publish(2), publish(2, true), pubrel(1), publish(3))
    assert.deepEqual(w.through, ['publish:1', 'publish:2', 'publish:2', 'pubrel:1', 'publish:3'])
    assert.equal(w.closed(), false)
    assert.deepEqual(w.exceeded, [])
  })
}
