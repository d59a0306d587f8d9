// Account export and erasure against a real server, with the CLI (docs/protocol.md,
// "Account"): the export holds what is listed; erasure, confirmed with a fresh
// code, leaves the chats as described and no trace of the user's number, name
// or texts in the server's files.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Device, TestServer, cli, tempDir, type DeviceCreds } from '../helpers/server.js'
import { filesUnder, fragmentsIn } from '../helpers/cli-e2ee.js'
import { Keys } from '../helpers/keys.js'

const server = new TestServer({ MQCHAT_EXPORTS_PER_HOUR: '2' })
const home = tempDir('mqchat-account-')
let ann: DeviceCreds, annLaptop: DeviceCreds, ben: DeviceCreds, cat: DeviceCreds
let Ben: Device, Cat: Device
let direct: string, group: string
const NAME = 'Annabel Quinceworth'
const ABOUT = 'collects antique barometers'
const texts = ['the key is under the blue flowerpot', 'my passport number is ZX4411902', 'meet me by the lighthouse at six']
let media = ''
/** The code the first `account delete` asked for. */
let code = ''

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
async function upload (owner: DeviceCreds, chat: string | undefined, type: string): Promise<string> {
  const bytes = Buffer.concat([Buffer.from('PRIVATE-PHOTO-OF-ANNABEL '), randomBytes(200)])
  const slot = await server.api('POST', '/v1/media', owner.token, { ...(chat !== undefined ? { chat } : {}), size: bytes.length, content_type: type, sha256: sha(bytes) })
  assert.equal((await fetch(slot.body.upload.url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': type } })).status, 201)
  return slot.body.media_id as string
}
const run = async (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await cli(home, [...args, '--profile', 'ann'], {}, 30_000)

before(async () => {
  await server.start()
  ann = await server.register('+15553100001')
  ben = await server.register('+15553100002')
  cat = await server.register('+15553100003')
  annLaptop = await server.link(ann, 'laptop')
  writeFileSync(join(home, 'ann.json'), JSON.stringify({ server: server.url, phone: ann.phone, user_id: ann.userId, device_id: ann.deviceId, token: ann.token }), { mode: 0o600 })
  direct = (await server.api('POST', '/v1/chats', ann.token, { kind: 'direct', user: ben.userId })).body.chat_id
  group = (await server.api('POST', '/v1/chats', ann.token, { kind: 'group', name: 'book club', members: [ben.userId, cat.userId] })).body.chat_id
  Ben = await new Device(server, ben).connect()
  Cat = await new Device(server, cat).connect()
  // Everything an account leaves on a server: a profile with an avatar, contacts, keys, a push target, a block, media, messages, a reaction.
  const avatar = await upload(ann, undefined, 'image/png')
  assert.equal((await server.api('PATCH', '/v1/me/profile', ann.token, { name: NAME, about: ABOUT, avatar })).status, 200)
  assert.equal((await server.api('POST', '/v1/contacts/discover', ann.token, { phones: [ben.phone, '+15553199999'], replace: true })).status, 200)
  assert.equal((await server.api('POST', '/v1/contacts/discover', ben.token, { phones: [ann.phone], replace: true })).status, 200)
  await new Keys(ann.deviceId).publish(server, ann.token)
  assert.equal((await server.api('POST', '/v1/push/targets', ann.token, { type: 'unifiedpush', endpoint: 'https://ntfy.example.org/upANNABEL0123' })).status, 201)
  assert.equal((await server.api('POST', '/v1/blocks', ann.token, { user: '+15553100003' })).status, 204)
  await server.api('DELETE', `/v1/blocks/${cat.userId}`, ann.token)
  assert.equal((await server.api('POST', `/v1/chats/${direct}/messages`, ann.token, { id: 'a1', body: texts[0] })).status, 201)
  assert.equal((await server.api('POST', `/v1/chats/${group}/messages`, ann.token, { id: 'a2', body: texts[1] })).status, 201)
  media = await upload(ann, group, 'image/jpeg')
  assert.equal((await server.api('POST', `/v1/chats/${group}/messages`, ann.token, { id: 'a3', type: 'media', media, body: { caption: texts[2] } })).status, 201)
  const fromBen = await server.api('POST', `/v1/chats/${group}/messages`, ben.token, { id: 'b1', body: 'ben writes too' })
  await server.api('POST', `/v1/chats/${group}/messages`, ann.token, { id: 'a4', type: 'reaction', ref: fromBen.body.seq, body: '👍' })
  await Ben.waitEvent('ann\'s profile', (e) => e.type === 'profile' && e.name === NAME)
  await Cat.waitEvent('ann\'s profile', (e) => e.type === 'profile' && e.name === NAME)
})
after(async () => {
  await Ben?.close()
  await Cat?.close()
  await server.dispose()
})

test('the export holds the profile, settings, devices without secrets, chats and memberships, contacts, and the plaintext messages sent; a few an hour', async () => {
  const file = join(home, 'export.json')
  const r = await run(['account', 'export', '-o', file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /exported 2 chats and 4 messages you sent/)
  const doc = JSON.parse(readFileSync(file, 'utf8'))
  assert.equal(doc.format, 'mqchat-export-1')
  assert.deepEqual(doc.user, { user_id: ann.userId, phone: ann.phone, created_at: doc.user.created_at })
  assert.deepEqual({ name: doc.profile.name, about: doc.profile.about }, { name: NAME, about: ABOUT })
  assert.deepEqual(doc.settings, { read_receipts: true, last_seen: 'chats', profile: 'everyone' })
  assert.deepEqual(doc.devices.map((d: { device_id: string }) => d.device_id).sort(), [ann.deviceId, annLaptop.deviceId].sort())
  assert.equal(JSON.stringify(doc).includes(ann.token.split('.')[1]!), false, 'no token')
  assert.deepEqual(doc.contacts, [ben.phone, '+15553199999'].sort())
  const byId = Object.fromEntries(doc.chats.map((c: { chat_id: string }) => [c.chat_id, c]))
  assert.equal(byId[group].role, 'admin')
  assert.deepEqual(byId[group].members.sort(), [ann.userId, ben.userId, cat.userId].sort())
  assert.deepEqual(byId[direct].messages.map((m: { body: string }) => m.body), [texts[0]])
  assert.deepEqual(byId[group].messages.map((m: { id: string }) => m.id), ['a2', 'a3', 'a4'], 'hers only, not Ben\'s')
  assert.equal(byId[group].messages[1].media, media)
  assert.equal(statMode(file), 0o600)
  assert.equal((await run(['account', 'export', '-o', file])).code, 0)
  const third = await run(['account', 'export', '-o', file])
  assert.equal(third.code, 3)
  assert.match(third.stderr, /rate_limited/)
})

test('erasure needs a fresh code; a wrong one changes nothing', async () => {
  const asked = await run(['account', 'delete'])
  assert.equal(asked.code, 0, asked.stderr)
  assert.match(asked.stdout, /a code was sent to \+15553100001/)
  code = /development code: (\d{6})/.exec(asked.stdout)![1]!
  const wrong = await run(['account', 'delete', '--code', '000000'])
  assert.equal(wrong.code, 4, 'invalid_code is a 401')
  assert.equal((await server.api('GET', '/v1/me', ann.token)).status, 200)
})

test('erasure: devices out at once, groups left with an admin handed over, direct chats closed and told, messages tombstoned, media, profile and contacts gone; no trace in the files', async () => {
  const r = await run(['account', 'delete', '--code', code])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /account deleted: left 2 chats, 4 messages deleted, 2 media files deleted/)
  assert.equal(existsSync(join(home, 'ann.json')), false, 'the CLI profile is removed')
  for (const t of [ann.token, annLaptop.token]) assert.equal((await server.api('GET', '/v1/me', t)).status, 401)
  // Ben: the direct chat is closed, and he is told; the group has a new admin.
  await Ben.waitEvent('the direct chat closing', (e) => e.type === 'chat' && e.chat === direct && e.change === 'account_deleted')
  const closed = await server.api('POST', `/v1/chats/${direct}/messages`, ben.token, { id: 'b-late', body: 'hello?' })
  assert.deepEqual([closed.status, closed.body.error.code], [410, 'account_deleted'])
  await Cat.waitEvent('ann leaving the group', (e) => e.type === 'chat' && e.chat === group && e.change === 'member_removed')
  const g = (await server.api('GET', `/v1/chats/${group}`, cat.token)).body
  assert.deepEqual(g.members.map((m: { user_id: string }) => m.user_id).sort(), [ben.userId, cat.userId].sort())
  assert.ok(g.members.some((m: { role: string }) => m.role === 'admin'))
  // Her messages are tombstones; her reaction is gone; her media cannot be fetched.
  const h = (await server.api('GET', `/v1/chats/${group}/messages?after=0`, ben.token)).body.messages as any[]
  for (const id of ['a2', 'a3']) assert.deepEqual(((m) => [m.body, m.deleted])(h.find((m) => m.id === id)), [null, true], id)
  assert.equal(h.find((m) => m.id === 'b1').reactions, undefined)
  assert.equal((await server.api('POST', `/v1/media/${media}/download`, ben.token, {})).status, 404)
  assert.equal((await server.api('GET', `/v1/users/${ann.userId}/profile`, ben.token)).status, 404)
  assert.deepEqual((await server.api('GET', '/v1/contacts', ben.token)).body.phones, [], 'her number left Ben\'s list too')
  assert.equal((await server.api('POST', '/v1/keys/claim', ben.token, { user: ann.userId })).status, 404)
  // The files: nothing of her number, name, about, texts or photos (the scan does find Ben's number, which stays).
  await server.stop()
  const stored = filesUnder(server.dataDir)
  assert.notDeepEqual(fragmentsIn([ben.phone], stored, ben.phone.length), [], 'the scan finds what is there')
  assert.deepEqual(fragmentsIn([ann.phone], stored, ann.phone.length), [], 'her number')
  assert.deepEqual(fragmentsIn([NAME, ABOUT, ...texts, 'PRIVATE-PHOTO-OF-ANNABEL'], stored), [])
  // The number can register again, as a new user.
  await server.start()
  const again = await server.register(ann.phone)
  assert.notEqual(again.userId, ann.userId)
})

const statMode = (file: string): number => statSync(file).mode & 0o777
