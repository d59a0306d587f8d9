// A user's own chat settings against a real server (docs/protocol.md, "Chat
// settings"): mute, archive and pin are the same on every device of the
// user (a chat_settings event tells the others), at most 3 chats are pinned,
// and the unread count follows the read watermark any device moves.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Device, TestServer, cli, tempDir, type DeviceCreds } from '../helpers/server.js'

const server = new TestServer()
let amy: DeviceCreds, amyLaptop: DeviceCreds, bo: DeviceCreds
let Laptop: Device
const chats: string[] = []
const home = tempDir('mqchat-chat-settings-')

before(async () => {
  await server.start()
  amy = await server.register('+15552800001')
  bo = await server.register('+15552800002')
  amyLaptop = await server.link(amy, 'laptop')
  for (let i = 0; i < 5; i++) chats.push((await server.api('POST', '/v1/chats', bo.token, { kind: 'group', name: `g${i}`, members: [amy.userId] })).body.chat_id as string)
  Laptop = await new Device(server, amyLaptop).connect()
  for (const [name, d] of [['amy', amy], ['laptop', amyLaptop]] as const) {
    writeFileSync(join(home, `${name}.json`), JSON.stringify({ server: server.url, user_id: d.userId, device_id: d.deviceId, token: d.token }), { mode: 0o600 })
  }
})
after(async () => {
  await Laptop?.close()
  await server.dispose()
})

const run = async (args: string[]): Promise<string> => {
  const r = await cli(home, args, {}, 30_000)
  assert.equal(r.code, 0, `mqchat ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}
const listed = async (creds: DeviceCreds): Promise<any[]> => (await server.api('GET', '/v1/chats', creds.token)).body.chats

test('archive, pin and mute made on the phone show on the laptop, which is told with a chat_settings event; at most 3 pins', async () => {
  assert.match(await run(['chat', 'archive', chats[0]!, '--profile', 'amy']), /archived \(on all your devices\)/)
  const e = await Laptop.waitEvent('the archive', (x) => x.type === 'chat_settings' && x.chat === chats[0] && x.archived === true)
  assert.equal(e.pinned, false)
  for (const c of chats.slice(1, 4)) await run(['chat', 'pin', c, '--profile', 'amy'])
  const fourth = await cli(home, ['chat', 'pin', chats[4]!, '--profile', 'amy'])
  assert.equal(fourth.code, 3)
  assert.match(fourth.stderr, /limit_reached/)
  await Laptop.waitCount('chat_settings', chats[3]!, 1)
  // The laptop sees the same, from the server: archived hidden, pinned first.
  const onLaptop = await run(['chat', 'list', '--profile', 'laptop'])
  const lines = onLaptop.trim().split('\n')
  assert.deepEqual(lines.slice(0, 3).map((l) => l.split(' ')[0]).sort(), chats.slice(1, 4).sort(), 'pinned first')
  assert.ok(lines.slice(0, 3).every((l) => l.includes('[pinned]')))
  assert.ok(!onLaptop.includes(chats[0]!), 'archived chats are not in the list')
  assert.match(onLaptop, /\(1 archived: mqchat chat list --archived\)/)
  assert.match(await run(['chat', 'list', '--archived', '--profile', 'laptop']), new RegExp(`^${chats[0]}.*\\[archived\\]`))
  // Unpinning one frees a place; mute shows too.
  await run(['chat', 'unpin', chats[1]!, '--profile', 'laptop'])
  await run(['chat', 'pin', chats[4]!, '--profile', 'amy'])
  await run(['mute', chats[4]!, '--profile', 'laptop'])
  const c4 = (await listed(amy)).find((c) => c.chat_id === chats[4])
  assert.deepEqual({ archived: c4.settings.archived, pinned: c4.settings.pinned, muted: c4.settings.muted_until > Date.now() }, { archived: false, pinned: true, muted: true })
  await run(['chat', 'unarchive', chats[0]!, '--profile', 'laptop'])
  assert.equal((await listed(amy)).find((c) => c.chat_id === chats[0]).settings.archived, false)
})

test('unread counts: messages from others since the read watermark; reading on one device clears them on the other', async () => {
  const c = chats[2]!
  for (let i = 0; i < 3; i++) await server.api('POST', `/v1/chats/${c}/messages`, bo.token, { id: `u-${i}`, body: `news ${i}` })
  await server.api('POST', `/v1/chats/${c}/messages`, amy.token, { id: 'own', body: 'mine do not count' })
  assert.equal((await listed(amyLaptop)).find((x) => x.chat_id === c).unread, 3)
  assert.match(await run(['chat', 'list', '--profile', 'laptop']), new RegExp(`^${c}.*\\(3 unread\\)`, 'm'))
  await run(['read', c, '--profile', 'amy'])
  const after = (await listed(amyLaptop)).find((x) => x.chat_id === c)
  assert.equal(after.unread, 0)
  assert.equal(after.read, after.last_seq)
  await Laptop.waitEvent('the read on the phone', (x) => x.type === 'receipt' && x.chat === c && x.user === amy.userId && x.read === after.last_seq)
  await server.api('POST', `/v1/chats/${c}/messages`, bo.token, { id: 'u-9', body: 'one more' })
  assert.equal((await listed(amy)).find((x) => x.chat_id === c).unread, 1)
})
