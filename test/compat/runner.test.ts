// The conformance runner itself, against a scripted fake broker on a real
// socket: it must fail cases a broker gets wrong (or the suite proves
// nothing), and apply the documented loosenings (broker-chosen packet ids).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { parseDeviations, matches } from '../../mosquitto-compat-tests/src/deviations.js'
import { replay } from '../../mosquitto-compat-tests/src/replay.js'
import type { VectorCase } from '../../mosquitto-compat-tests/src/vectors.js'

/** A fake broker: `script` gets each chunk the runner sends, and the socket to answer on. */
async function fake (script: (chunk: Buffer, s: Socket) => void): Promise<{ port: number, got: Buffer[], close: () => Promise<void> }> {
  const got: Buffer[] = []
  const sockets = new Set<Socket>()
  const server = createServer((s) => { sockets.add(s); s.on('data', (d) => { got.push(d); script(d, s) }); s.on('error', () => {}) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as { port: number }).port,
    got,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise((r) => server.close(r)) }
  }
}

const vcase = (msgs: VectorCase['msgs'], o: Partial<VectorCase> = {}): VectorCase =>
  ({ id: 'T / g / n', file: 'T.json', group: 'g', name: 'n', ver: 4, protocol: '3.1.1', connect: false, expectDisconnect: false, msgs, ...o })
const timing = { recvMs: 300, closeMs: 300 }
const CONNECT = '10 0D 0004 4D515454 04 02 000A 0001 70'

test('a broker that answers as scripted passes; a wrong CONNACK fails with both byte strings', async () => {
  for (const [answer, pass] of [['20020000', true], ['20020005', false]] as const) {
    const f = await fake((d, s) => {
      if (d[0] === 0x10) s.write(Buffer.from(answer, 'hex'))
      if (d.subarray(-2).toString('hex') === 'c000') s.write(Buffer.from('d000', 'hex'))
    })
    try {
      const r = await replay(vcase([{ type: 'send', payload: CONNECT }, { type: 'recv', payload: '20 02 00 00' }]), { name: 'fake', host: '127.0.0.1', port: f.port }, timing)
      assert.equal(r.pass, pass, JSON.stringify(r))
      if (!pass) assert.match(r.detail ?? '', /expected 20020000, got 20020005/)
    } finally { await f.close() }
  }
})

test('a case that expects a close fails when the broker keeps the connection open', async () => {
  const f = await fake(() => {})
  try {
    const r = await replay(vcase([{ type: 'send', payload: 'F0 00' }], { expectDisconnect: true }), { name: 'fake', host: '127.0.0.1', port: f.port }, timing)
    assert.equal(r.pass, false)
    assert.match(r.detail ?? '', /kept the connection open/)
  } finally { await f.close() }
})

test('a case that expects the connection to stay open fails when it closes', async () => {
  const f = await fake((_d, s) => s.destroy())
  try {
    const r = await replay(vcase([{ type: 'send', payload: 'C0 00' }]), { name: 'fake', host: '127.0.0.1', port: f.port }, timing)
    assert.equal(r.pass, false)
  } finally { await f.close() }
})

test('the packet id the broker picks for its PUBLISH is used in the case\'s later replies', async () => {
  const f = await fake((d, s) => {
    if (d[0] === 0x10) s.write(Buffer.concat([Buffer.from('20020000', 'hex'), Buffer.from('320C00017001026d657373616765', 'hex')]))
    if (d.subarray(-2).toString('hex') === 'c000') s.write(Buffer.from('d000', 'hex'))
  })
  try {
    const r = await replay(vcase([
      { type: 'send', payload: CONNECT },
      { type: 'recv', payload: '20 02 00 00' },
      { type: 'recv', payload: '32 0C 0001 70 0001 6d657373616765' },
      { type: 'send', payload: '40 02 0001' }
    ]), { name: 'fake', host: '127.0.0.1', port: f.port }, timing)
    assert.equal(r.pass, true, r.detail)
    assert.ok(Buffer.concat(f.got).includes(Buffer.from('40020102', 'hex')), 'PUBACK carries the broker\'s id 0x0102')
    assert.ok(!Buffer.concat(f.got).includes(Buffer.from('40020001', 'hex')))
  } finally { await f.close() }
})

test('deviations.txt lines: kinds are checked, protocol and prefix selectors match', () => {
  assert.throws(() => parseDeviations('mqchat-open | X / y | flaky | because'), /unknown kind "flaky"/)
  assert.throws(() => parseDeviations('mqchat-open | X / y | bug'), /expected "target \| case \| kind \| reason"/)
  const [p5, pre] = parseDeviations('# comment\nmqchat-* | protocol 5 | may | no v5\n\nmosquitto | FLOW / * | reference | old\n')
  assert.ok(p5 && pre)
  assert.ok(matches(p5, 'mqchat-open', 'anything', '5'))
  assert.ok(!matches(p5, 'mqchat-open', 'anything', '3.1.1'))
  assert.ok(!matches(p5, 'mosquitto', 'anything', '5'))
  assert.ok(matches(pre, 'mosquitto', 'FLOW / g / n', '3.1.1'))
  assert.ok(!matches(pre, 'mosquitto', 'PUBLISH / g / n', '3.1.1'))
})
