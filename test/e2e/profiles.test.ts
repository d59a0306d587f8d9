// Profiles and contact discovery against a real server (docs/protocol.md,
// "Profiles" and "Contacts"): names, abouts and avatars, who sees them,
// `profile` events, and discovery's answers, limits and timing.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Device, TestServer, cli, tempDir, type DeviceCreds } from '../helpers/server.js'

const ANSWER_MS = 150
const server = new TestServer({
  MQCHAT_CONTACT_SYNCS_PER_HOUR: '2',
  MQCHAT_CONTACTS_MAX: '50',
  MQCHAT_CONTACTS_NEW_PER_DAY: '60',
  MQCHAT_PHONE_LOOKUPS_PER_HOUR: '1000',
  MQCHAT_PHONE_LOOKUPS_PER_DAY: '12',
  MQCHAT_DISCOVERY_ANSWER_MS: String(ANSWER_MS)
})
let ann: DeviceCreds, ben: DeviceCreds, cat: DeviceCreds, dan: DeviceCreds
let Ben: Device, Cat: Device
const phones = { ann: '+15552700001', ben: '+15552700002', cat: '+15552700003', dan: '+15552700004' }

before(async () => {
  await server.start()
  ann = await server.register(phones.ann)
  ben = await server.register(phones.ben)
  cat = await server.register(phones.cat)
  dan = await server.register(phones.dan)
  // Ann shares a chat with Ben and one with Cat; Dan shares none with her.
  assert.equal((await server.api('POST', '/v1/chats', ann.token, { kind: 'direct', user: ben.userId })).status, 201)
  assert.equal((await server.api('POST', '/v1/chats', ann.token, { kind: 'direct', user: cat.userId })).status, 201)
  Ben = await new Device(server, ben).connect()
  Cat = await new Device(server, cat).connect()
})
after(async () => {
  await Ben?.close()
  await Cat?.close()
  await server.dispose()
})

const profileOf = async (viewer: DeviceCreds, user: DeviceCreds): Promise<any> => (await server.api('GET', `/v1/users/${user.userId}/profile`, viewer.token)).body
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function uploadImage (owner: DeviceCreds, type = 'image/png'): Promise<string> {
  const bytes = randomBytes(300)
  const slot = await server.api('POST', '/v1/media', owner.token, { size: bytes.length, content_type: type, sha256: sha(bytes) })
  assert.equal(slot.status, 201, JSON.stringify(slot.body))
  assert.equal((await fetch(slot.body.upload.url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': type } })).status, 201)
  return slot.body.media_id as string
}

test('a profile: name, about and avatar are set, cleared and checked; everyone who can name the user sees it', async () => {
  const avatar = await uploadImage(ann)
  const r = await server.api('PATCH', '/v1/me/profile', ann.token, { name: '  Ann Example ', about: 'out hiking', avatar })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.deepEqual({ name: r.body.name, about: r.body.about, avatar: r.body.avatar }, { name: 'Ann Example', about: 'out hiking', avatar })
  for (const viewer of [ben, dan]) {
    const p = await profileOf(viewer, ann)
    assert.deepEqual({ name: p.name, about: p.about, avatar: p.avatar }, { name: 'Ann Example', about: 'out hiking', avatar })
  }
  // Anyone who may see the profile may fetch the avatar; it is an image of hers.
  assert.equal((await server.api('POST', `/v1/media/${avatar}/download`, dan.token, {})).status, 200)
  // Refused: too long, control characters, someone else's media, a document, a media id that is nobody's.
  const bad = [{ name: 'x'.repeat(65) }, { about: 'y'.repeat(141) }, { name: 'Ann\u202eelpmaxE' }, { name: 'tab\there' }]
  for (const body of bad) assert.equal((await server.api('PATCH', '/v1/me/profile', ann.token, body)).status, 400, JSON.stringify(body))
  assert.equal((await server.api('PATCH', '/v1/me/profile', ben.token, { avatar })).status, 404, 'not his upload')
  const noChatDoc = await server.api('POST', '/v1/media', ann.token, { size: 10, content_type: 'application/pdf', sha256: sha(randomBytes(10)) })
  assert.equal(noChatDoc.status, 400, 'an upload for no chat is an avatar image')
  assert.equal((await server.api('PATCH', '/v1/me/profile', ann.token, { avatar: 'm_00000000000000000000' })).status, 404)
  assert.equal((await profileOf(ben, ann)).name, 'Ann Example', 'a refused change changes nothing')
  const cleared = await server.api('PATCH', '/v1/me/profile', ann.token, { about: null })
  assert.equal(cleared.body.about, null)
  assert.equal(cleared.body.name, 'Ann Example')
})

test('a profile change reaches those sharing a chat as a profile event; privacy nobody hides it, contacts shows it to the numbers she uploaded', async () => {
  await server.api('PATCH', '/v1/me/profile', ann.token, { name: 'Ann E.' })
  for (const d of [Ben, Cat]) {
    const e = await d.waitEvent('the profile change', (x) => x.type === 'profile' && x.user === ann.userId && x.name === 'Ann E.')
    assert.equal(typeof e.ts, 'number')
  }
  // Nobody: the fields read null, and no event goes out.
  assert.equal((await server.api('PATCH', '/v1/me/settings', ann.token, { profile: 'nobody' })).body.profile, 'nobody')
  assert.deepEqual(await profileOf(ben, ann), { user_id: ann.userId, name: null, about: null, avatar: null })
  assert.equal((await profileOf(ann, ann)).name, 'Ann E.', 'she sees her own')
  await server.api('PATCH', '/v1/me/profile', ann.token, { name: 'Ann (hidden)' })
  // Contacts: Ben's number is on her list, Cat's is not.
  await server.api('PATCH', '/v1/me/settings', ann.token, { profile: 'contacts' })
  const up = await server.api('POST', '/v1/contacts/discover', ann.token, { phones: [phones.ben, '+15552799999'], replace: true })
  assert.equal(up.status, 200, JSON.stringify(up.body))
  await server.api('PATCH', '/v1/me/profile', ann.token, { name: 'Ann C.' })
  await Ben.waitEvent('the change, for a contact', (x) => x.type === 'profile' && x.name === 'Ann C.')
  assert.equal((await profileOf(ben, ann)).name, 'Ann C.')
  assert.equal((await profileOf(cat, ann)).name, null)
  assert.equal(Cat.events.some((x) => x.type === 'profile' && (x.name === 'Ann C.' || x.name === 'Ann (hidden)')), false, 'Cat was told nothing while she could not see it')
  assert.equal(Ben.events.some((x) => x.type === 'profile' && x.name === 'Ann (hidden)'), false)
  // The avatar follows: Cat may not fetch it.
  const avatar = (await server.api('GET', '/v1/me/profile', ann.token)).body.avatar
  assert.equal((await server.api('POST', `/v1/media/${avatar}/download`, cat.token, {})).status, 404)
  assert.equal((await server.api('POST', `/v1/media/${avatar}/download`, ben.token, {})).status, 200)
  // Batch: several at once, the phone for users on the caller's contact list.
  const batch = await server.api('GET', `/v1/profiles?users=${ann.userId},${ben.userId},u_0000000000000000`, ann.token)
  assert.deepEqual(batch.body.profiles.map((p: { user_id: string }) => p.user_id), [ann.userId, ben.userId])
  assert.equal(batch.body.profiles[1].phone, phones.ben)
  assert.equal((await server.api('GET', `/v1/profiles?users=${ann.userId}`, cat.token)).body.profiles[0].phone, undefined, 'Ann is not on Cat\'s list')
  const tooMany = Array.from({ length: 101 }, (_, i) => `u_${i.toString(16).padStart(16, '0')}`).join(',')
  assert.equal((await server.api('GET', `/v1/profiles?users=${tooMany}`, ann.token)).status, 400, 'at most 100 at once')
  await server.api('PATCH', '/v1/me/settings', ann.token, { profile: 'everyone' })
  // A blocked user learns nothing, not even that she exists.
  assert.equal((await server.api('POST', '/v1/blocks', ann.token, { user: dan.userId })).status, 204)
  assert.equal((await server.api('GET', `/v1/users/${ann.userId}/profile`, dan.token)).status, 404)
  assert.deepEqual((await server.api('GET', `/v1/profiles?users=${ann.userId}`, dan.token)).body.profiles, [])
  await server.api('DELETE', `/v1/blocks/${ann.userId}`, dan.token)
  await server.api('DELETE', `/v1/blocks/${dan.userId}`, ann.token)
})

test('discovery finds exactly the registered numbers, with the profiles the caller may see', async () => {
  await server.api('PATCH', '/v1/me/profile', cat.token, { name: 'Cat' })
  const unknown = ['+15552788881', '+15552788882', '+15552788883']
  const r = await server.api('POST', '/v1/contacts/discover', dan.token, { phones: [phones.ann, phones.cat, ...unknown, phones.cat], replace: true })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  assert.deepEqual(r.body.registered.map((x: { phone: string }) => x.phone).sort(), [phones.ann, phones.cat])
  const c = r.body.registered.find((x: { phone: string }) => x.phone === phones.cat)
  assert.deepEqual(c, { user_id: cat.userId, name: 'Cat', about: null, avatar: null, phone: phones.cat })
  assert.equal(r.body.contacts, 5)
  assert.deepEqual((await server.api('GET', '/v1/contacts', dan.token)).body.phones, [phones.ann, phones.cat, ...unknown].sort())
  // A number on the list names a user for free; a chat by number works.
  assert.equal((await server.api('POST', '/v1/chats', dan.token, { kind: 'direct', user: phones.cat })).status, 201)
})

test('discovery limits: full uploads per hour, new numbers per day, list size, single lookups from the daily allowance shared with naming users by phone', async () => {
  const ed = await server.register('+15552700005')
  const many = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `+1555279${String(from + i).padStart(4, '0')}`)
  assert.equal((await server.api('POST', '/v1/contacts/discover', ed.token, { phones: many(0, 51), replace: true })).body.error.code, 'limit_reached')
  assert.equal((await server.api('POST', '/v1/contacts/discover', ed.token, { phones: many(0, 50), replace: true })).status, 200)
  // The second upload this hour: 10 numbers new to the list, within 60 a day.
  assert.equal((await server.api('POST', '/v1/contacts/discover', ed.token, { phones: many(40, 20), replace: true })).status, 200)
  const third = await server.api('POST', '/v1/contacts/discover', ed.token, { phones: many(0, 2), replace: true })
  assert.equal(third.status, 429, 'two full uploads an hour')
  // Single lookups: numbers off the list cost from 12 a day; numbers on it cost nothing.
  const fred = await server.register('+15552700006')
  const single = (ps: string[]): Promise<{ status: number, body: any }> => server.api('POST', '/v1/contacts/discover', fred.token, { phones: ps })
  assert.equal((await single(many(100, 11))).status, 400, 'at most 10 at once')
  assert.equal((await single(many(100, 10))).status, 200)
  assert.equal((await single(many(100, 10))).status, 200, 'the same numbers again: on the list, free')
  assert.equal((await server.api('POST', '/v1/chats', fred.token, { kind: 'direct', user: '+15552799998' })).body.error.code, 'unknown_user', 'the 11th lookup')
  assert.equal((await server.api('POST', '/v1/chats', fred.token, { kind: 'direct', user: '+15552799997' })).body.error.code, 'unknown_user', 'the 12th lookup')
  assert.equal((await single(['+15552799996'])).status, 429, 'the 13th, over the day\'s allowance')
  assert.equal((await server.api('POST', '/v1/chats', fred.token, { kind: 'direct', user: '+15552799995' })).status, 429)
  assert.equal((await server.api('POST', '/v1/chats', fred.token, { kind: 'direct', user: many(100, 1)[0] })).body.error.code, 'unknown_user', 'a number on the list is still free')
  assert.equal((await single(['12345'])).status, 400)
})

test('discovery answers no sooner for registered numbers than for unregistered ones', async () => {
  const gus = await server.register('+15552700007')
  const timed = async (ps: string[]): Promise<number> => {
    const t = performance.now()
    const r = await server.api('POST', '/v1/contacts/discover', gus.token, { phones: ps })
    assert.equal(r.status, 200)
    return performance.now() - t
  }
  const registered: number[] = []
  const unregistered: number[] = []
  // Alternating, so the machine's drift falls on both alike. Numbers looked up once are on the list and cost nothing after.
  for (let i = 0; i < 5; i++) {
    registered.push(await timed([phones.ann, phones.ben]))
    unregistered.push(await timed(['+15552788891', '+15552788892']))
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  assert.ok(Math.min(...registered) >= ANSWER_MS - 5 && Math.min(...unregistered) >= ANSWER_MS - 5, `every answer waits ${ANSWER_MS} ms: ${registered.join(', ')} / ${unregistered.join(', ')}`)
  assert.ok(median(registered) >= median(unregistered) - 20, `registered ${median(registered)} ms, unregistered ${median(unregistered)} ms`)
})

test('the CLI names users: chat list, history, listen, info and presence show names; a hidden name falls back to the number for a contact, else the id', async () => {
  const home = tempDir('mqchat-names-')
  // Ben's device listens with the CLI here: its test connection steps aside.
  await Ben.close()
  for (const [name, d] of [['ann', ann], ['ben', ben], ['cat', cat]] as const) {
    writeFileSync(join(home, `${name}.json`), JSON.stringify({ server: server.url, user_id: d.userId, device_id: d.deviceId, token: d.token }), { mode: 0o600 })
  }
  const run = async (args: string[]): Promise<string> => {
    const r = await cli(home, args, {}, 30_000)
    assert.equal(r.code, 0, `mqchat ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  assert.match(await run(['profile', '--name', 'Ann Lee', '--about', 'tea, not coffee', '--profile', 'ann']), /^Ann Lee .*\ntea, not coffee/)
  await run(['profile', '--name', 'Ben Ng', '--profile', 'ben'])
  assert.match(await run(['profile', ann.userId, '--profile', 'ben']), /^Ann Lee/)
  const chat = (await server.api('POST', '/v1/chats', ann.token, { kind: 'direct', user: ben.userId })).body.chat_id as string
  const sent = await server.api('POST', `/v1/chats/${chat}/messages`, ann.token, { id: 'names-1', body: 'hello by name' })
  assert.match(await run(['history', chat, '--profile', 'ben']), /\] Ann Lee: hello by name$/m)
  assert.match(await run(['listen', '--count', '1', '--timeout', '20', '--profile', 'ben']), /\] Ann Lee: hello by name$/m)
  assert.match(await run(['chat', 'list', '--profile', 'ben']), new RegExp(`${chat}  direct .*members: (Ann Lee, Ben Ng|Ben Ng, Ann Lee)`))
  await server.api('POST', `/v1/chats/${chat}/receipts`, ben.token, { type: 'read', seq: sent.body.seq })
  assert.match(await run(['info', chat, String(sent.body.seq), '--profile', 'ann']), /read: Ben Ng/)
  // Ben answers, so Ann (a contact now) may see his presence.
  await server.api('POST', `/v1/chats/${chat}/messages`, ben.token, { id: 'names-back', body: 'hi' })
  assert.match(await run(['presence', ben.userId, '--profile', 'ann']), /^Ben Ng: (online|offline)/)
  // Hidden: Ben has her number on his list (he knows it), Cat does not.
  await run(['settings', '--show-profile', 'nobody', '--profile', 'ann'])
  assert.match(await run(['contacts', 'find', phones.ann, '--profile', 'ben']), /1 of 1 registered/)
  assert.match(await run(['history', chat, '--profile', 'ben']), new RegExp(`\\] \\${phones.ann}: hello by name$`, 'm'))
  const catChat = (await server.api('POST', '/v1/chats', ann.token, { kind: 'direct', user: cat.userId })).body.chat_id as string
  await server.api('POST', `/v1/chats/${catChat}/messages`, ann.token, { id: 'names-2', body: 'hello cat' })
  assert.match(await run(['history', catChat, '--profile', 'cat']), new RegExp(`\\] ${ann.userId}: hello cat$`, 'm'))
  await run(['settings', '--show-profile', 'everyone', '--profile', 'ann'])
})
