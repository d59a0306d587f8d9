// End-to-end encrypted chat with the CLI as the client, against a real
// server (docs/protocol.md, "End-to-end encryption"; docs/security.md):
// every device decrypts what it should, the server's files hold no
// plaintext, and the protocol's failure cases end as they should.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import lockfile from 'proper-lockfile'
import { CLI, Device, TestServer, cli, tempDir, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { Listener, cliJson, filesUnder, fragmentsIn, historyOf, profileFor } from '../helpers/cli-e2ee.js'
import { vodozemac } from '../../clients/cli/vodozemac.js'

// Small prekey pools, so that running one dry takes a few claims.
const server = new TestServer({ MQCHAT_E2EE_MAX_PREKEYS: '4', MQCHAT_E2EE_PREKEYS_LOW: '2' })
const home = tempDir('mqchat-e2ee-cli-')
let alice: DeviceCreds, bob: DeviceCreds, bob2: DeviceCreds, carol: DeviceCreds
let direct: string, group: string
const listeners: Listener[] = []
/** Every plaintext sent encrypted: none of it may reach the server's files. */
const secrets: string[] = []
const secret = (words: string): string => {
  const s = `${words} ${Math.random().toString(36).slice(2, 10)}`
  secrets.push(s)
  return s
}
const listen = (profile: string): Listener => {
  const l = new Listener(home, profile)
  listeners.push(l)
  return l
}
const sent = async (profile: string, chat: string, text: string, ...more: string[]): Promise<any> => await cliJson(home, ['send', chat, text, '--profile', profile, ...more])
const bodyOf = (rows: any[], id: string): unknown => rows.find((m) => m.id === id)?.body
const reasonOf = (rows: any[], id: string): unknown => rows.find((m) => m.id === id)?.undecryptable

before(async () => {
  await server.start()
  alice = await server.register('+15552500001')
  bob = await server.register('+15552500002')
  carol = await server.register('+15552500003')
  bob2 = await server.link(bob, 'bob laptop')
  for (const [name, d] of [['alice', alice], ['bob', bob], ['bob2', bob2], ['carol', carol]] as const) await profileFor(home, server, name, d)
  direct = (await cliJson(home, ['chat', 'create', bob.userId, '--e2ee', '--profile', 'alice'])).chat_id
  group = (await cliJson(home, ['chat', 'create', '--group', 'plans', bob.userId, carol.userId, '--e2ee', '--profile', 'alice'])).chat_id
})
after(async () => {
  for (const l of listeners) await l.stop().catch(() => {})
  await server.dispose()
})

test('a direct chat: each of bob\'s devices decrypts alice\'s message, alice reads her own, bob\'s answer reaches alice', async () => {
  const bobListening = listen('bob')
  const aliceListening = listen('alice')
  const text = secret('meet at the old mill at nine')
  const r = await sent('alice', direct, text)
  assert.equal(r.encrypted, true)
  assert.equal(r.attempts, 1)
  const got = await bobListening.wait('alice\'s message', (e) => e.type === 'msg' && e.id === r.id)
  assert.equal(got.body, text)
  assert.equal(got.encrypted, true)
  assert.equal(bodyOf(await historyOf(home, 'bob2', direct), r.id), text, 'bob\'s second device decrypts it too')
  assert.equal(bodyOf(await historyOf(home, 'bob', direct), r.id), text, 'and history after listen reads the kept plaintext (Olm decrypts once)')
  assert.equal(bodyOf(await historyOf(home, 'alice', direct), r.id), text, 'the sender reads her own')
  for (const name of ['alice', 'bob', 'bob2']) assert.equal(statSync(join(home, `${name}.e2ee.json`)).mode & 0o777, 0o600, `${name}'s keys and sessions are the owner's alone`)
  const answer = secret('bring the lantern, also the map')
  const back = await sent('bob2', direct, answer, '--reply', String(r.seq))
  const onAlice = await aliceListening.wait('bob\'s answer', (e) => e.type === 'msg' && e.id === back.id)
  assert.equal(onAlice.body, answer)
  assert.equal(onAlice.kind, 'reply')
  assert.equal((await bobListening.wait('his own answer on his other device', (e) => e.type === 'msg' && e.id === back.id)).body, answer)
  // One connection per device: the next test's listeners take over these sessions otherwise.
  assert.equal(await bobListening.stop(), 0)
  assert.equal(await aliceListening.stop(), 0)
})

test('a group: one ciphertext per message, everyone\'s devices decrypt everyone\'s messages', async () => {
  const fromAlice = secret('the group meets on thursday')
  const a = await sent('alice', group, fromAlice)
  const fromCarol = secret('carol brings the cake')
  const c = await sent('carol', group, fromCarol)
  for (const reader of ['alice', 'bob', 'bob2', 'carol']) {
    const rows = await historyOf(home, reader, group)
    assert.equal(bodyOf(rows, a.id), fromAlice, `${reader} reads alice's`)
    assert.equal(bodyOf(rows, c.id), fromCarol, `${reader} reads carol's`)
    assert.ok(!rows.some((m) => m.kind === 'session'), 'group keys are not shown')
  }
  // An edit is encrypted too; history shows the edited text in place.
  const edited = secret('the group meets on friday now')
  assert.equal((await cliJson(home, ['edit', group, String(a.seq), edited, '--profile', 'alice'])).encrypted, true)
  const afterEdit = (await historyOf(home, 'bob2', group)).find((m) => m.id === a.id)
  assert.equal(afterEdit.body, edited)
  assert.equal(typeof afterEdit.edited_at, 'number')
  // Stored: one Megolm ciphertext, the same for every member.
  const raw = await server.api('GET', `/v1/chats/${group}/messages?after=0`, bob.token)
  const m = raw.body.messages.find((x: { id: string }) => x.id === a.id)
  assert.equal(typeof m.body.e2ee.megolm.body, 'string')
})

test('a device linked later cannot read what was sent before it; what follows, it reads', async () => {
  const before = (await historyOf(home, 'alice', direct)).map((m) => m.id)
  const linked = await cliJson(home, ['devices', 'link', '--name', 'bob tablet', '--save-as', 'bob3', '--profile', 'bob'])
  assert.match(linked.device_id, /^dv_/)
  const rows = await historyOf(home, 'bob3', direct)
  for (const id of before) assert.match(String(reasonOf(rows, id)), /not encrypted for this device/, `message ${id}`)
  const groupRows = await historyOf(home, 'bob3', group)
  assert.ok(groupRows.length > 0 && groupRows.every((m) => typeof m.undecryptable === 'string' && m.body === null), 'no group message from before is readable')
  // New messages: alice's client addresses the new device (the directory lists it), in the group by sending it the group key.
  const d = await sent('alice', direct, secret('a note for every device'))
  const g = await sent('alice', group, secret('and one for the whole group'))
  assert.equal(bodyOf(await historyOf(home, 'bob3', direct), d.id), secrets.at(-2))
  assert.equal(bodyOf(await historyOf(home, 'bob3', group), g.id), secrets.at(-1))
})

test('a removed member cannot decrypt what is sent after the removal: the sender\'s group key was replaced', async () => {
  const before = await sent('alice', group, secret('carol still reads this'))
  assert.equal(bodyOf(await historyOf(home, 'carol', group), before.id), secrets.at(-1))
  assert.equal((await server.api('DELETE', `/v1/chats/${group}/members/${carol.userId}`, alice.token)).status, 204)
  const afterRemoval = await sent('alice', group, secret('the surprise for carol is at noon'))
  assert.equal(bodyOf(await historyOf(home, 'bob', group), afterRemoval.id), secrets.at(-1), 'the members still read it')
  const rows = (await server.api('GET', `/v1/chats/${group}/messages?after=0`, bob.token)).body.messages as Array<{ id: string, body: any }>
  const oldCt = rows.find((m) => m.id === before.id)!.body.e2ee.megolm
  const newCt = rows.find((m) => m.id === afterRemoval.id)!.body.e2ee.megolm
  assert.notEqual(newCt.session, oldCt.session, 'a new group session after the removal')
  // Whatever carol's device holds (read from its own state file), the new ciphertext does not open; the old one does.
  const v = vodozemac()
  const state = JSON.parse(readFileSync(join(home, 'carol.e2ee.json'), 'utf8'))
  const key = Buffer.from(state.pickle_key, 'base64')
  const opens = (ct: string): boolean => Object.values(state.inbound as Record<string, { pickle: string }>).some((s) => {
    const g = v.InboundGroupSessionKey.from_pickle(s.pickle, key)
    try { g.decrypt(ct); return true } catch { return false } finally { g.free() }
  })
  assert.equal(opens(oldCt.body), true, 'carol\'s keys open what she was sent')
  assert.equal(opens(newCt.body), false, 'and not what came after her removal')
})

test('a stale device list gets devices_mismatch; the client claims the new device\'s keys and sends again under the same id, stored once', async () => {
  // Alice's send reads the chat's devices, then waits for her state file's lock, held here; meanwhile bob links a device.
  const release = await lockfile.lock(join(home, 'alice.e2ee.json'), { realpath: false })
  let stderr = ''
  let stdout = ''
  const child = spawn(process.execPath, [CLI, 'send', direct, 'x', '--profile', 'alice', '--id', 'stale-list-1'], { env: { PATH: process.env.PATH ?? '', MQCHAT_CLI_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  try {
    await waitFor('alice\'s send to wait for the lock', () => /waiting for another mqchat process/.test(stderr) || undefined, 20_000)
    await cliJson(home, ['devices', 'link', '--name', 'bob watch', '--save-as', 'bob4', '--profile', 'bob'])
  } finally {
    await release()
  }
  assert.equal(await within('alice\'s send', exited, 30_000), 0, stderr)
  assert.match(stderr, /devices changed/)
  assert.match(stdout, /seq \d+/)
  const rows = await historyOf(home, 'bob4', direct)
  assert.deepEqual(rows.filter((m) => m.id === 'stale-list-1').map((m) => m.body), ['x'], 'the new device reads it, and it is stored once')
  assert.equal(bodyOf(await historyOf(home, 'bob', direct), 'stale-list-1'), 'x')
})

test('prekey exhaustion: the fallback key starts the session, and a keys event makes the device upload more', async () => {
  const dave = await server.register('+15552500004')
  await profileFor(home, server, 'dave', dave)
  const chat = (await cliJson(home, ['chat', 'create', dave.userId, '--e2ee', '--profile', 'alice'])).chat_id
  // Someone claims dave's whole pool (4 keys), the way clients starting sessions would.
  for (let i = 0; i < 4; i++) assert.equal((await server.api('POST', '/v1/keys/claim', alice.token, { user: dave.userId })).body.devices[0].fallback, false)
  assert.deepEqual((await server.api('GET', '/v1/keys/count', dave.token)).body, { one_time_keys: 0, max_one_time_keys: 4, fallback_key: true })
  const text = secret('the pool ran dry but this still arrives')
  const r = await sent('alice', chat, text)
  const daveListening = listen('dave')
  assert.equal((await daveListening.wait('alice\'s message', (e) => e.type === 'msg' && e.id === r.id)).body, text)
  const low = await daveListening.wait('the refill', (e) => e.type === 'keys' && e.reason === 'prekeys_low' && /uploaded [1-9]/.test(e.note ?? ''))
  assert.equal(low.count < 2, true)
  await waitFor('dave\'s pool refilled', async () => (await server.api('GET', '/v1/keys/count', dave.token)).body.one_time_keys === 4 || undefined, 20_000)
})

test('a tampered ciphertext is shown as undecryptable, and the next message decrypts', async () => {
  const bobListening = listen('bob')
  const original = await sent('alice', group, secret('this one is genuine'))
  await bobListening.wait('the genuine message', (e) => e.id === original.id && e.body === secrets.at(-1))
  // The server (or anyone between) flips one byte of the stored group ciphertext and delivers it as a new message from alice.
  const stored = (await server.api('GET', `/v1/chats/${group}/messages?after=${original.seq - 1}&limit=1`, alice.token)).body.messages[0].body.e2ee
  const bytes = Buffer.from(stored.megolm.body, 'base64')
  bytes[Math.floor(bytes.length / 2)]! ^= 0x20
  const forged = { sender_key: stored.sender_key, megolm: { session: stored.megolm.session, body: bytes.toString('base64').replace(/=+$/, '') } }
  assert.equal((await server.api('POST', `/v1/chats/${group}/messages`, alice.token, { id: 'tampered-group', e2ee: forged })).status, 201)
  // And a pairwise one: a normal Olm message of noise, to every device of the direct chat.
  const devices = (await server.api('GET', `/v1/keys/chats/${direct}`, alice.token)).body.devices as Array<{ device_id: string }>
  const noise = Object.fromEntries(devices.map((d) => [d.device_id, { type: 1, body: Buffer.from(bytes).toString('base64') }]))
  assert.equal((await server.api('POST', `/v1/chats/${direct}/messages`, alice.token, { id: 'tampered-direct', e2ee: { sender_key: stored.sender_key, olm: noise } })).status, 201)
  const g = await bobListening.wait('the tampered group message', (e) => e.id === 'tampered-group')
  assert.equal(g.body, null)
  assert.match(g.undecryptable, /MAC|signature|decrypt|invalid/i)
  const d = await bobListening.wait('the tampered pairwise message', (e) => e.id === 'tampered-direct')
  assert.match(d.undecryptable, /no session with the sender can decrypt it/)
  const next = await sent('alice', group, secret('and this one decrypts again'))
  assert.equal((await bobListening.wait('the next message', (e) => e.id === next.id)).body, secrets.at(-1))
  const nextDirect = await sent('alice', direct, secret('pairwise still works too'))
  assert.equal((await bobListening.wait('the next pairwise message', (e) => e.id === nextDirect.id)).body, secrets.at(-1))
  // The human form says so rather than dropping it.
  const human = await cli(home, ['history', group, '--profile', 'bob'])
  assert.match(human.stdout, /\[could not decrypt: [^\]]+\]/)
  assert.equal(await bobListening.stop(), 0)
})

test('an identity key change reaches contacts as a keys event, and the safety number changes; the new identity is written to', async () => {
  const aliceListening = listen('alice')
  const before = await cliJson(home, ['safety', bob.userId, '--profile', 'alice'])
  assert.match(before.safety_number, /^(\d{5} ){11}\d{5}$/)
  const fromBob = await cliJson(home, ['safety', alice.userId, '--profile', 'bob'])
  assert.equal(fromBob.safety_number, before.safety_number, 'both sides see the same number')
  const reset = await cliJson(home, ['keys', 'reset', '--profile', 'bob2'])
  const e = await aliceListening.wait('the identity change', (x) => x.type === 'keys' && x.reason === 'identity_changed' && x.device === bob2.deviceId)
  assert.equal(e.user, bob.userId)
  const afterReset = await cliJson(home, ['safety', bob.userId, '--profile', 'alice'])
  assert.notEqual(afterReset.safety_number, before.safety_number)
  assert.equal(afterReset.devices.find((d: { device_id: string }) => d.device_id === bob2.deviceId).identity_key, reset.identity_key)
  const human = await cli(home, ['safety', bob.userId, '--profile', 'alice'])
  assert.match(human.stdout, new RegExp(`${bob2.deviceId}.*identity changed`))
  const text = secret('for the laptop after its reset')
  const r = await sent('alice', direct, text)
  assert.equal(bodyOf(await historyOf(home, 'bob2', direct), r.id), text)
  assert.equal(await aliceListening.stop(), 0)
})

test('plaintext into an e2ee chat is refused (e2ee_required) from a stock MQTT client; the CLI refuses files and reactions there before anything leaves', async () => {
  const stock = await new Device(server, carol).connect()
  try {
    const dm = (await server.api('POST', '/v1/chats', carol.token, { kind: 'direct', user: alice.userId, e2ee: 'required' })).body.chat_id
    await stock.publish(dm, { id: 'plain-from-mqtt', body: 'in the clear' })
    assert.equal((await stock.waitEvent('the refusal', (x) => x.type === 'error' && x.id === 'plain-from-mqtt')).code, 'e2ee_required')
  } finally {
    await stock.close()
  }
  const react = await cli(home, ['react', direct, '1', '👍', '--profile', 'alice'])
  assert.equal(react.code, 2)
  assert.match(react.stderr, /not available in end-to-end encrypted chats/)
})

test('the server\'s files hold no plaintext, nor any 10-character piece of one (and the scan finds a plaintext message)', async () => {
  // A control: a plaintext chat's message is found by the same scan.
  const plainChat = (await cliJson(home, ['chat', 'create', '--group', 'open group', bob.userId, '--profile', 'alice'])).chat_id
  const control = `a plaintext control message ${Math.random().toString(36).slice(2, 10)}`
  await sent('alice', plainChat, control)
  await server.stop()
  const stored = filesUnder(server.dataDir)
  assert.ok(stored.some((f) => f.path.endsWith('.db')), 'the SQLite files are there')
  assert.notDeepEqual(fragmentsIn([control], stored), [], 'the scan finds plaintext where there is some')
  assert.ok(secrets.length >= 10)
  assert.deepEqual(fragmentsIn(secrets, stored), [])
})
