// Stream management bookkeeping (XEP-0198) and the gateway's message ids,
// without a network: what is "done" (PUBACKed) when, what a resumption
// sends again, and which ids name a chat message.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { xml, type Element } from '@xmpp/xml'
import { StreamManagement } from '../../xmpp/sm.js'
import { parseMessageRef } from '../../xmpp/ids.js'

const msg = (n: number): Element => xml('message', { id: `m${n}` })

test('without stream management a stanza is done once written, and never while there is no connection', async () => {
  const sm = new StreamManagement()
  const written: string[] = []
  const done: number[] = []
  await sm.send(msg(1), () => done.push(1))
  assert.equal(done.length, 0, 'no connection: not written, not done')
  sm.attach(async (el) => { written.push(el.attrs.id as string) }, () => {})
  await sm.send(msg(2), () => done.push(2))
  assert.deepEqual(written, ['m2'])
  assert.deepEqual(done, [2])
})

test('with stream management a stanza is done only when an ack covers it; a resumption sends the rest again, in order', async () => {
  const sm = new StreamManagement()
  const written: string[] = []
  let requests = 0
  sm.attach(async (el) => { written.push(el.attrs.id as string) }, () => { requests++ })
  sm.enable()
  const done: number[] = []
  for (let i = 1; i <= 5; i++) await sm.send(msg(i), () => done.push(i))
  assert.deepEqual(written, ['m1', 'm2', 'm3', 'm4', 'm5'])
  assert.equal(done.length, 0)
  assert.ok(requests > 0, 'an ack was asked for')
  assert.equal(sm.ack(2), true)
  assert.deepEqual(done, [1, 2])
  assert.equal(sm.ack(2), true, 'the same h again is harmless')
  assert.deepEqual(done, [1, 2])
  // The connection breaks; two more stanzas arrive meanwhile.
  sm.detach()
  await sm.send(msg(6), () => done.push(6))
  await sm.send(msg(7), () => done.push(7))
  assert.equal(written.length, 5, 'nothing written while detached')
  // The client says it handled 4: m5, m6, m7 are sent again.
  assert.equal(sm.ack(4), true)
  assert.deepEqual(done, [1, 2, 3, 4])
  assert.deepEqual(sm.resend().map((e) => e.attrs.id), ['m5', 'm6', 'm7'])
  assert.equal(sm.ack(8), false, 'an ack beyond what was sent is refused')
  assert.equal(sm.ack(7), true)
  assert.deepEqual(done, [1, 2, 3, 4, 5, 6, 7])
  assert.equal(sm.unacked, 0)
})

test('message ids: <chatId>:<seq> names a chat message; anything else does not', () => {
  assert.deepEqual(parseMessageRef('dm_26f95ec72d61990e9117:12'), { chat: 'dm_26f95ec72d61990e9117', seq: 12 })
  assert.deepEqual(parseMessageRef('g_5f0c2a9e1b7d3c44:1'), { chat: 'g_5f0c2a9e1b7d3c44', seq: 1 })
  for (const bad of [undefined, '', 'abc', ':3', 'g_1:0', 'g_1:-2', 'g_1:1.5', 'g/1:3', 'g+#:3', 'g_1:x']) {
    assert.equal(parseMessageRef(bad), undefined, String(bad))
  }
})
