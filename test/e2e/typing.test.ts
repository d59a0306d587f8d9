// Typing: forwarded to the other members' live topic at QoS 0, at most once
// per 3 s per (user, chat); never stored, never queued for offline devices.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestServer, Device, waitFor, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer()
let a: DeviceCreds, b: DeviceCreds, c: DeviceCreds
let chatId: string

before(async () => {
  await server.start()
  a = await server.register('+15550900001')
  b = await server.register('+15550900002')
  c = await server.register('+15550900003')
  chatId = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'typing', members: [b.userId, c.userId] })).body.chat_id
})
after(async () => { await server.dispose() })

test('20 typing publishes in 2 s reach the other member once; an offline device gets none later', async () => {
  const A = await new Device(server, a).connect()
  const B = await new Device(server, b).connect({ live: true })
  // C has a persistent session with the live topic, then goes away.
  const C = await new Device(server, c).connect({ live: true })
  await C.close()

  const started = Date.now()
  for (let i = 0; i < 20; i++) {
    await A.publish(chatId, { state: 'typing' }, 'typing', 0)
    await new Promise((r) => setTimeout(r, 100))
  }
  const elapsed = Date.now() - started
  await waitFor('B sees typing', () => B.live.length >= 1)
  await new Promise((r) => setTimeout(r, 300))
  // At most one forward per started 3 s window of the 20 publishes.
  assert.ok(B.live.length <= Math.ceil(elapsed / 3000), `forwarded ${B.live.length} times in ${elapsed} ms`)
  if (elapsed < 3000) assert.equal(B.live.length, 1, 'one forward for a burst under 3 s')
  assert.deepEqual({ ...B.live[0], ts: 0 }, { type: 'typing', chat: chatId, user: a.userId, state: 'typing', ts: 0 })
  assert.equal(A.live.length, 0, 'the typer does not get its own typing')
  assert.equal(B.events.some((e) => e.type === 'typing'), false, 'typing never goes to the inbox')

  const back = await new Device(server, c).connect({ live: true })
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(back.live.length, 0, 'nothing queued for the offline device')
  assert.equal(back.events.some((e) => e.type === 'typing'), false)

  // mqchat listen shows typing from its live topic.
  const { cli, tempDir } = await import('../helpers/server.js')
  const { writeFileSync, rmSync } = await import('node:fs')
  const home = tempDir('mqchat-cli-')
  writeFileSync(`${home}/c.json`, JSON.stringify({ server: server.url, user_id: c.userId, device_id: c.deviceId, token: c.token }))
  const withC = await server.connections()
  await back.close()
  await waitFor('C disconnected', async () => await server.connections() === withC - 1)
  const listening = cli(home, ['listen', '--profile', 'c', '--timeout', '8'])
  // listen subscribes right after connecting; the throttle window has long passed by then.
  await waitFor('listen connected', async () => await server.connections() === withC)
  await new Promise((r) => setTimeout(r, 300))
  await A.publish(chatId, { state: 'typing' }, 'typing', 0)
  const l = await listening
  rmSync(home, { recursive: true, force: true })
  assert.equal(l.code, 0, l.stderr)
  assert.match(l.stdout, new RegExp(`\\[${chatId}\\] ${a.userId} is typing…`))

  // A non-member's typing is refused with an error event.
  const O = await new Device(server, await server.register('+15550900009')).connect()
  await O.publish(chatId, '', 'typing', 0)
  assert.equal((await O.waitEvent('not_member', (e) => e.type === 'error')).code, 'not_member')
  for (const d of [A, B, O]) await d.close()
})
