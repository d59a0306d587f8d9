// Three users, one group, one direct chat: messages sent with the CLI and over
// MQTT reach every other member device in seq order; the sender's device gets
// its ack; the sender's second device gets the message too. Also: Debian's
// mosquitto_sub/mosquitto_pub as outside clients, and idempotent client ids.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { TestServer, Device, cli, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer()
const home = tempDir('mqchat-cli-')
let alice: DeviceCreds, aliceLaptop: DeviceCreds, bob: DeviceCreds, carol: DeviceCreds
const devices: Device[] = []
let group: string
let direct: string

before(async () => {
  await server.start()
  const env = { MQCHAT_SERVER: server.url }
  // Alice registers through the CLI, as a person would.
  const reg = await cli(home, ['register', '+15550100001', '--profile', 'alice', '--json'], env)
  assert.equal(reg.code, 0, reg.stderr)
  const code = JSON.parse(reg.stdout).code as string
  assert.match(code, /^[0-9]{6}$/)
  const ver = await cli(home, ['verify', '+15550100001', code, '--profile', 'alice', '--json'], env)
  assert.equal(ver.code, 0, ver.stderr)
  const who = JSON.parse((await cli(home, ['whoami', '--profile', 'alice', '--json'], env)).stdout)
  const { readFileSync } = await import('node:fs')
  const profile = JSON.parse(readFileSync(`${home}/alice.json`, 'utf8'))
  alice = { userId: who.user_id, deviceId: who.device_id, token: profile.token, phone: '+15550100001' }
  aliceLaptop = await server.link(alice, 'laptop')
  bob = await server.register('+15550100002')
  carol = await server.register('+15550100003')
})

after(async () => {
  await Promise.all(devices.map((d) => d.close()))
  await server.dispose()
  rmSync(home, { recursive: true, force: true })
})

async function online (c: DeviceCreds): Promise<Device> {
  const d = await new Device(server, c).connect()
  devices.push(d)
  return d
}

test('group and direct chat messages sent with the CLI reach every other member device in seq order', async () => {
  const env = { MQCHAT_SERVER: server.url }
  const [aPhone, aLaptop, b, c] = await Promise.all([alice, aliceLaptop, bob, carol].map(online))

  const g = await cli(home, ['chat', 'create', '--group', 'Hikers', bob.phone, carol.userId, '--profile', 'alice', '--json'], env)
  assert.equal(g.code, 0, g.stderr)
  const gj = JSON.parse(g.stdout)
  group = gj.chat_id
  assert.equal(gj.kind, 'group')
  assert.equal(gj.last_seq, 0)
  assert.deepEqual(gj.members.map((m: { user_id: string }) => m.user_id).sort(), [alice.userId, bob.userId, carol.userId].sort())

  const dm = await cli(home, ['chat', 'create', bob.userId, '--profile', 'alice', '--json'], env)
  assert.equal(dm.code, 0, dm.stderr)
  direct = JSON.parse(dm.stdout).chat_id
  // The same direct chat whichever side creates it.
  const again = await server.api('POST', '/v1/chats', bob.token, { kind: 'direct', user: alice.phone })
  assert.equal(again.status, 200)
  assert.equal(again.body.chat_id, direct)

  // Everyone in the group learns about it.
  for (const d of [b, c, aLaptop]) await d.waitEvent('group created', (e) => e.type === 'chat' && e.chat === group && e.change === 'created')

  const texts = ['one', 'two', 'three', 'four', 'five']
  const seqs: number[] = []
  for (const t of texts) {
    const r = await cli(home, ['send', group, t, '--profile', 'alice', '--json'], env)
    assert.equal(r.code, 0, r.stderr)
    seqs.push(JSON.parse(r.stdout).seq)
  }
  assert.deepEqual(seqs, [1, 2, 3, 4, 5])

  for (const d of [b, c, aLaptop]) {
    const msgs = await d.waitCount('msg', group, 5)
    assert.deepEqual(msgs.map((m) => m.seq), [1, 2, 3, 4, 5], `${d.creds.deviceId} order`)
    assert.deepEqual(msgs.map((m) => m.body), texts)
    assert.ok(msgs.every((m) => m.from === alice.userId && m.device === alice.deviceId && m.kind === 'text'))
  }
  // The sending device gets acks with the seqs, not copies of its own messages.
  const acks = await aPhone.waitCount('ack', group, 5)
  assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5])
  assert.equal(aPhone.of('msg', group).length, 0)

  // Direct chat over MQTT: bob -> alice; both of alice's devices get it.
  await b.publish(direct, { id: 'b-1', type: 'text', body: 'hi alice' })
  for (const d of [aPhone, aLaptop]) {
    const [m] = await d.waitCount('msg', direct, 1)
    assert.equal(m.body, 'hi alice')
    assert.equal(m.seq, 1)
  }
  assert.equal((await b.waitCount('ack', direct, 1))[0].seq, 1)
  assert.equal(c.of('msg', direct).length, 0, 'carol is not in the direct chat')

  // History: paged, oldest first.
  const h1 = await server.api('GET', `/v1/chats/${group}/messages?after=0&limit=2`, carol.token)
  assert.equal(h1.status, 200)
  assert.deepEqual(h1.body.messages.map((m: { seq: number }) => m.seq), [1, 2])
  assert.equal(h1.body.has_more, true)
  const h2 = await server.api('GET', `/v1/chats/${group}/messages?after=${h1.body.next_after}&limit=10`, carol.token)
  assert.deepEqual(h2.body.messages.map((m: { body: string }) => m.body), ['three', 'four', 'five'])
  assert.equal(h2.body.has_more, false)
  const hist = await cli(home, ['history', group, '--profile', 'alice'], env)
  assert.equal(hist.code, 0, hist.stderr)
  assert.match(hist.stdout, /#1\].*one[\s\S]*#5\].*five/)
})

test('the same client message id twice yields one stored message and one seq', async () => {
  const b = devices.find((d) => d.creds.deviceId === bob.deviceId) as Device
  const c = devices.find((d) => d.creds.deviceId === carol.deviceId) as Device
  const before = c.of('msg', group).length
  await b.publish(group, { id: 'dup-1', type: 'text', body: 'once' })
  await b.publish(group, { id: 'dup-1', type: 'text', body: 'once' })
  const acks = await waitFor('two acks for dup-1', () => { const a = b.of('ack', group).filter((x) => x.id === 'dup-1'); return a.length === 2 ? a : undefined })
  assert.equal(acks[0].seq, acks[1].seq)
  assert.equal(acks[0].duplicate, false)
  assert.equal(acks[1].duplicate, true)
  // Over HTTP too.
  const r1 = await server.api('POST', `/v1/chats/${group}/messages`, carol.token, { id: 'dup-2', type: 'text', body: 'x' })
  const r2 = await server.api('POST', `/v1/chats/${group}/messages`, carol.token, { id: 'dup-2', type: 'text', body: 'x' })
  assert.equal(r1.status, 201)
  assert.equal(r2.status, 200)
  assert.equal(r1.body.seq, r2.body.seq)
  const hist = await server.api('GET', `/v1/chats/${group}/messages?after=5`, alice.token)
  assert.deepEqual(hist.body.messages.map((m: { id: string }) => m.id), ['dup-1', 'dup-2'])
  await c.waitCount('msg', group, before + 1)
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(c.of('msg', group).filter((m) => m.id === 'dup-1').length, 1, 'the repeat is not fanned out again')
})

test("Debian's mosquitto_sub receives a device's inbox and mosquitto_pub delivers a valid envelope", async () => {
  // A fresh device of carol's, used only by the Mosquitto tools.
  const carolTool = await server.link(carol, 'mosquitto')
  const args = ['-h', '127.0.0.1', '-p', String(server.ports.mqtt), '-i', carolTool.deviceId, '-u', carolTool.deviceId, '-P', carolTool.token, '-V', 'mqttv311']
  const connectedBefore = await server.connections()
  const sub = spawn('mosquitto_sub', [...args, '-c', '-q', '1', '-t', `dev/${carolTool.deviceId}/inbox`, '-C', '1', '-W', '15'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  sub.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const subExit = new Promise<number | null>((r) => sub.once('exit', (code) => r(code)))
  try {
    // Wait until the subscriber's session is live before publishing.
    await waitFor('mosquitto_sub connected', async () => await server.connections() > connectedBefore)
    const bobTool = await server.link(bob, 'mosquitto-pub')
    const envelope = JSON.stringify({ id: 'mosq-1', type: 'text', body: 'from mosquitto_pub' })
    const pub = await new Promise<number>((resolve) => {
      execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(server.ports.mqtt), '-i', bobTool.deviceId, '-u', bobTool.deviceId, '-P', bobTool.token,
        '-V', 'mqttv311', '-q', '1', '-t', `chat/${group}/msg`, '-m', envelope], { timeout: 10_000 }, (err) => resolve(err ? 1 : 0))
    })
    assert.equal(pub, 0)
    assert.equal(await subExit, 0)
    const event = JSON.parse(out.trim())
    assert.equal(event.type, 'msg')
    assert.equal(event.chat, group)
    assert.equal(event.body, 'from mosquitto_pub')
    assert.equal(event.from, bob.userId)
    const alicePhone = devices.find((d) => d.creds.deviceId === alice.deviceId) as Device
    await alicePhone.waitEvent('the mosquitto_pub message', (e) => e.type === 'msg' && e.id === 'mosq-1')
  } finally {
    if (sub.exitCode === null) sub.kill('SIGKILL')
  }
})

test('PUBACK means stored: history has the message the moment the publish resolves', async () => {
  const b = devices.find((d) => d.creds.deviceId === bob.deviceId) as Device
  for (let i = 0; i < 5; i++) {
    await b.publish(direct, { id: `durable-${i}`, body: i })
    const h = await server.api('GET', `/v1/chats/${direct}/messages?after=0&limit=500`, bob.token)
    assert.ok(h.body.messages.some((m: { id: string }) => m.id === `durable-${i}`), `durable-${i} in history right after PUBACK`)
  }
})

test('pipelined publishes from one device get seqs in the order they were sent', async () => {
  const c = devices.find((d) => d.creds.deviceId === carol.deviceId) as Device
  const ids = Array.from({ length: 40 }, (_, i) => `pipe-${i}`)
  await within('PUBACKs of the pipelined publishes', Promise.all(ids.map((id) => c.publish(group, { id, body: id })))) // no waiting between them
  const h = await server.api('GET', `/v1/chats/${group}/messages?after=0&limit=500`, carol.token)
  const got = h.body.messages.filter((m: { id: string }) => m.id.startsWith('pipe-'))
  assert.deepEqual(got.map((m: { id: string }) => m.id), ids)
  const seqs = got.map((m: { seq: number }) => m.seq)
  assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => seqs[0] + i), 'consecutive seqs')
})
