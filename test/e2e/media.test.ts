// Media on the local backend: slots, signed streaming upload verified by size
// and SHA-256, deduplication, access rules, Range downloads, and every refusal
// with nothing partial left behind. The server's memory is sampled while a
// 20 MiB file goes through it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { TestServer, Device, type DeviceCreds } from '../helpers/server.js'

const SECRET = 'test-media-secret'
const server = new TestServer({ MQCHAT_MEDIA_SECRET: SECRET, MQCHAT_MEDIA_MAX_IMAGE_BYTES: String(1 << 20) })
let a: DeviceCreds, b: DeviceCreds, outsider: DeviceCreds
let group: string

before(async () => {
  await server.start()
  a = await server.register('+15551300001')
  b = await server.register('+15551300002')
  outsider = await server.register('+15551300003')
  group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 'media', members: [b.userId] })).body.chat_id
})
after(async () => { await server.dispose() })

const sha = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex')

async function rss (): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  return Number(/^mqchat_process_process_resident_memory_bytes (\d+)/m.exec(text)?.[1])
}

/** Samples the server's RSS every 20 ms while `work` runs; returns the peak growth over the starting value. */
async function peakGrowth (work: () => Promise<void>): Promise<number> {
  const base = await rss()
  let peak = base
  let done = false
  const sampler = (async () => { while (!done) { peak = Math.max(peak, await rss()); await new Promise((r) => setTimeout(r, 20)) } })()
  try { await work() } finally { done = true; await sampler }
  return peak - base
}

async function slot (token: string, bytes: Buffer, type = 'application/octet-stream', size = bytes.length) {
  return server.api('POST', '/v1/media', token, { chat: group, size, content_type: type, sha256: sha(bytes) })
}

async function put (url: string, bytes: Buffer, type = 'application/octet-stream'): Promise<{ status: number, body: any }> {
  const res = await fetch(url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': type } })
  return { status: res.status, body: await res.json() }
}

function nothingPartial (): void {
  const tmp = join(server.dataDir, 'media', 'tmp')
  assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'no partial upload left in media/tmp')
}

test('a 20 MiB file goes up and down byte-identical and is deduplicated on a second send', async () => {
  const file = randomBytes(20 * 1024 * 1024)
  const s1 = await slot(a.token, file)
  assert.equal(s1.status, 201)
  assert.equal(s1.body.existing, false)
  assert.equal(s1.body.upload.method, 'PUT')
  const r = await put(s1.body.upload.url, file)
  assert.equal(r.status, 201, JSON.stringify(r.body))

  // Sent in the group as a media message; the other member fetches it.
  const A = await new Device(server, a).connect()
  await A.publish(group, { id: 'pic-1', type: 'media', media: s1.body.media_id, body: { name: 'big.bin' } })
  const ack = await A.waitEvent('ack', (e) => e.type === 'ack' && e.id === 'pic-1')
  assert.equal(ack.duplicate, false)
  await A.close()
  const dl = await server.api('POST', `/v1/media/${s1.body.media_id}/download`, b.token)
  assert.equal(dl.status, 200)
  assert.equal(dl.body.sha256, sha(file))
  const res = await fetch(dl.body.url)
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-length'), String(file.length))
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(file), 'byte-identical')

  // The same bytes again: no upload, the same media id.
  const s2 = await slot(b.token, file)
  assert.equal(s2.status, 200)
  assert.deepEqual(s2.body, { media_id: s1.body.media_id, existing: true })

  // Range requests.
  const r1 = await fetch(dl.body.url, { headers: { range: 'bytes=100-199' } })
  assert.equal(r1.status, 206)
  assert.equal(r1.headers.get('content-range'), `bytes 100-199/${file.length}`)
  assert.ok(Buffer.from(await r1.arrayBuffer()).equals(file.subarray(100, 200)))
  const r2 = await fetch(dl.body.url, { headers: { range: 'bytes=-10' } })
  assert.ok(Buffer.from(await r2.arrayBuffer()).equals(file.subarray(file.length - 10)))
  assert.equal((await fetch(dl.body.url, { headers: { range: `bytes=${file.length}-` } })).status, 416)
  nothingPartial()
})

test('the server streams media: its memory grows by far less than a 192 MiB file going up and down', async (t) => {
  // Streaming leaves some uncollected chunk garbage (10-50 MiB seen, the most on a loaded machine); buffering would add the whole file.
  const file = randomBytes(192 * 1024 * 1024)
  const s1 = await slot(a.token, file)
  const up = await peakGrowth(async () => {
    const r = await put(s1.body.upload.url, file)
    assert.equal(r.status, 201, JSON.stringify(r.body))
  })
  t.diagnostic(`server RSS grew at most ${(up / 1048576).toFixed(1)} MiB while receiving 192 MiB`)
  assert.ok(up < file.length / 2, `upload grew RSS by ${up} bytes`)
  const dl = await server.api('POST', `/v1/media/${s1.body.media_id as string}/download`, a.token)
  let hash = ''
  const down = await peakGrowth(async () => {
    const res = await fetch(dl.body.url)
    const h = createHash('sha256')
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) h.update(chunk)
    hash = h.digest('hex')
  })
  t.diagnostic(`server RSS grew at most ${(down / 1048576).toFixed(1)} MiB while sending 192 MiB`)
  assert.ok(down < file.length / 2, `download grew RSS by ${down} bytes`)
  assert.equal(hash, sha(file))
})

test('refusals: wrong size, wrong hash, expired URL, tampered signature, non-member, over the size limit — nothing partial stays', async () => {
  const bytes = randomBytes(4096)
  // Too few and too many bytes.
  const s1 = await slot(a.token, bytes)
  const short = await put(s1.body.upload.url, bytes.subarray(0, 1000))
  assert.deepEqual([short.status, short.body.error.code], [400, 'size_mismatch'])
  assert.equal((await put(s1.body.upload.url, bytes)).status, 404, 'a failed upload removes its slot')
  const s2 = await slot(a.token, bytes)
  const long = await put(s2.body.upload.url, Buffer.concat([bytes, Buffer.from('extra')]))
  assert.deepEqual([long.status, long.body.error.code], [400, 'size_mismatch'])
  // Right size, other bytes.
  const s3 = await slot(a.token, bytes)
  const wrong = await put(s3.body.upload.url, randomBytes(4096))
  assert.deepEqual([wrong.status, wrong.body.error.code], [400, 'hash_mismatch'])
  // Tampered signature and an expired URL (signed with the right key, in the past).
  const s4 = await slot(a.token, bytes)
  const u = new URL(s4.body.upload.url)
  const sig = u.searchParams.get('sig') as string
  u.searchParams.set('sig', sig.slice(0, -2) + (sig.endsWith('AA') ? 'BB' : 'AA'))
  assert.equal((await put(u.toString(), bytes)).body.error.code, 'bad_signature')
  const past = Date.now() - 1000
  const expiredSig = createHmac('sha256', SECRET).update(`PUT\n${s4.body.media_id as string}\n${past}`).digest('base64url')
  const expired = await put(`${server.url}/media/${s4.body.media_id as string}?exp=${past}&sig=${expiredSig}`, bytes)
  assert.deepEqual([expired.status, expired.body.error.code], [403, 'url_expired'])
  // A GET signature does not work for PUT.
  assert.equal((await put(u.toString().replace(/sig=[^&]+/, `sig=${createHmac('sha256', SECRET).update(`GET\n${s4.body.media_id as string}\n${u.searchParams.get('exp') as string}`).digest('base64url')}`), bytes)).body.error.code, 'bad_signature')
  // The untampered URL still works, once.
  assert.equal((await put(s4.body.upload.url, bytes)).status, 201)
  assert.equal((await put(s4.body.upload.url, bytes)).body.error.code, 'already_uploaded')

  // Not a member: of the chat for a slot, of any chat it was sent in for a download.
  assert.equal((await server.api('POST', '/v1/media', outsider.token, { chat: group, size: 10, content_type: 'text/plain', sha256: sha(Buffer.alloc(10)) })).body.error.code, 'not_member')
  const dl = await server.api('POST', `/v1/media/${s4.body.media_id as string}/download`, outsider.token)
  assert.deepEqual([dl.status, dl.body.error.code], [404, 'not_found'])
  assert.equal((await server.api('POST', '/v1/media/m_00000000000000000000/download', outsider.token)).body.error.code, 'not_found', 'the same answer as for a missing id')
  // b may not download a's upload until it is sent in their chat.
  assert.equal((await server.api('POST', `/v1/media/${s4.body.media_id as string}/download`, b.token)).status, 404)
  // Over the per-kind limit (images: 1 MiB here).
  const big = await slot(a.token, Buffer.alloc(10), 'image/png', 2 << 20)
  assert.deepEqual([big.status, big.body.error.code], [413, 'too_large'])
  nothingPartial()
})

test('a media message may only reference an upload of the sender or one already in that chat', async () => {
  const bytes = randomBytes(2048)
  const s = await slot(a.token, bytes)
  await put(s.body.upload.url, bytes)
  const B = await new Device(server, b).connect()
  await B.publish(group, { id: 'steal', type: 'media', media: s.body.media_id })
  assert.equal((await B.waitEvent('unknown_media', (e) => e.type === 'error' && e.id === 'steal')).code, 'unknown_media')
  await B.publish(group, { id: 'bad-id', type: 'media', media: 'nope' })
  assert.equal((await B.waitEvent('bad_request', (e) => e.type === 'error' && e.id === 'bad-id')).code, 'bad_request')
  const sent = await server.api('POST', `/v1/chats/${group}/messages`, a.token, { id: 'share', type: 'media', media: s.body.media_id, body: { caption: 'hi' } })
  assert.equal(sent.status, 201)
  const m = await B.waitEvent('the media message', (e) => e.type === 'msg' && e.id === 'share')
  assert.deepEqual([m.kind, m.media, (m.body as { caption: string }).caption], ['media', s.body.media_id, 'hi'])
  // Now it is in the chat: b may fetch it and send it there again.
  assert.equal((await server.api('POST', `/v1/media/${s.body.media_id as string}/download`, b.token)).status, 200)
  await B.publish(group, { id: 'again', type: 'media', media: s.body.media_id })
  await B.waitEvent('ack', (e) => e.type === 'ack' && e.id === 'again')
  await B.close()
})

test('the hourly upload quota is enforced', async () => {
  const s = new TestServer({ MQCHAT_MEDIA_QUOTA_BYTES_PER_HOUR: '10000' })
  try {
    await s.start()
    const u = await s.register('+15551300010')
    const v = await s.register('+15551300011')
    const chat = (await s.api('POST', '/v1/chats', u.token, { kind: 'direct', user: v.userId })).body.chat_id
    const ask = (n: number) => s.api('POST', '/v1/media', u.token, { chat, size: n, content_type: 'application/pdf', sha256: sha(randomBytes(8)) })
    assert.equal((await ask(6000)).status, 201)
    const over = await ask(6000)
    assert.deepEqual([over.status, over.body.error.code], [429, 'quota_exceeded'])
    assert.equal((await ask(4000)).status, 201, 'what is left of the hour is still usable')
  } finally {
    await s.dispose()
  }
})

test('the CLI: send --file in a group, another member fetches it byte-identical; sending it again uploads nothing', async () => {
  const { cli, tempDir } = await import('../helpers/server.js')
  const { writeFileSync, readFileSync, rmSync } = await import('node:fs')
  const home = tempDir('mqchat-cli-')
  try {
    for (const [name, who] of [['a', a], ['b', b], ['o', outsider]] as const) {
      writeFileSync(`${home}/${name}.json`, JSON.stringify({ server: server.url, user_id: who.userId, device_id: who.deviceId, token: who.token }))
    }
    const file = randomBytes(20 * 1024 * 1024)
    writeFileSync(`${home}/holiday.mp4`, file)
    const sent = await cli(home, ['send', group, '--file', `${home}/holiday.mp4`, 'the', 'beach', '--profile', 'a', '--json'], {}, 60_000)
    assert.equal(sent.code, 0, sent.stderr)
    const s = JSON.parse(sent.stdout)
    assert.equal(s.uploaded, true)
    const msg = (await server.api('GET', `/v1/chats/${group}/messages?after=${s.seq - 1}&limit=1`, b.token)).body.messages[0]
    assert.deepEqual([msg.kind, msg.media, msg.body.name, msg.body.caption, msg.body.content_type], ['media', s.media_id, 'holiday.mp4', 'the beach', 'video/mp4'])

    const fetched = await cli(home, ['fetch', s.media_id, '-o', `${home}/got.mp4`, '--profile', 'b'], {}, 60_000)
    assert.equal(fetched.code, 0, fetched.stderr)
    assert.match(fetched.stdout, /SHA-256 verified/)
    assert.ok(readFileSync(`${home}/got.mp4`).equals(file), 'byte-identical')

    const again = await cli(home, ['send', group, '--file', `${home}/holiday.mp4`, '--profile', 'b', '--json'], {}, 60_000)
    assert.equal(again.code, 0, again.stderr)
    const s2 = JSON.parse(again.stdout)
    assert.equal(s2.media_id, s.media_id)
    assert.equal(s2.uploaded, false, 'deduplicated: no second upload')

    const denied = await cli(home, ['fetch', s.media_id, '-o', `${home}/nope`, '--profile', 'o'])
    assert.equal(denied.code, 3)
    assert.match(denied.stderr, /not_found/)
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('the lifecycle job removes media unused past retention and unreferenced media, and nothing else: not media sent again, nor media whose link a crash lost', async () => {
  const s = new TestServer()
  try {
    await s.start()
    const u = await s.register('+15551300020')
    const v = await s.register('+15551300021')
    const chat = (await s.api('POST', '/v1/chats', u.token, { kind: 'direct', user: v.userId })).body.chat_id as string
    const bytesOf = new Map<string, Buffer>()
    const send = async (id: string): Promise<void> => {
      assert.equal((await s.api('POST', `/v1/chats/${chat}/messages`, u.token, { id: `lc-${id}-${randomBytes(3).toString('hex')}`, type: 'media', media: id })).status, 201)
    }
    const upload = async (sendIt: boolean, complete = true): Promise<string> => {
      const bytes = randomBytes(512)
      const sl = await s.api('POST', '/v1/media', u.token, { chat, size: bytes.length, content_type: 'application/pdf', sha256: sha(bytes) })
      if (complete) assert.equal((await fetch(sl.body.upload.url, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': 'application/pdf' } })).status, 201)
      bytesOf.set(sl.body.media_id as string, bytes)
      if (sendIt) await send(sl.body.media_id as string)
      return sl.body.media_id as string
    }
    const keepSentRecent = await upload(true)
    const keepUnsentFresh = await upload(false)
    const keepSent29Days = await upload(true)
    const dropUnsent2Days = await upload(false)
    const dropSent31Days = await upload(true)
    const dropPending2Days = await upload(false, false)
    const keepSentAgain = await upload(true)
    const keepLinkLost = await upload(true)
    await s.stop()
    const { SqliteDatabase } = await import('../../lib/sqlite.js')
    /** Moves a media id's times (creation and last use) back, as if that much time had passed. */
    const age = (days: Array<[string, number]>, also?: (db: InstanceType<typeof SqliteDatabase>) => void): void => {
      const db = new SqliteDatabase(join(s.dataDir, 'mqchat.db'))
      const hasUse = (db.prepare('PRAGMA table_info(media)').all() as Array<{ name: string }>).some((c) => c.name === 'used_at')
      const st = db.prepare(hasUse ? 'UPDATE media SET created_at = created_at - ?1, used_at = used_at - ?1 WHERE id = ?2' : 'UPDATE media SET created_at = created_at - ?1 WHERE id = ?2')
      for (const [id, d] of days) st.run(d * 86_400_000, id)
      also?.(db)
      db.close()
    }
    age([[keepSent29Days, 29], [dropUnsent2Days, 2], [dropSent31Days, 31], [dropPending2Days, 2], [keepSentAgain, 29], [keepLinkLost, 2]], (db) => {
      // The state a crash leaves between storing a media message and linking its media: stored, not linked, not fanned out.
      db.prepare('DELETE FROM media_chats WHERE media_id = ?').run(keepLinkLost)
      db.prepare('UPDATE messages SET fanned_out = 0 WHERE media = ?').run(keepLinkLost)
    })
    await s.start()
    const { waitFor } = await import('../helpers/server.js')
    await waitFor('the lifecycle to run', () => /media lifecycle/.test(s.log))
    // The 29-day-old file is sent again (the client names its bytes: deduplicated, no upload)...
    const again = await s.api('POST', '/v1/media', u.token, { chat, size: 512, content_type: 'application/pdf', sha256: sha(bytesOf.get(keepSentAgain) as Buffer) })
    assert.deepEqual([again.body.media_id, again.body.existing], [keepSentAgain, true])
    await send(keepSentAgain)
    await s.stop()
    // ... and two days pass: it is 31 days old, last sent 2 days ago.
    age([[keepSentAgain, 2]])
    // The lifecycle job runs at start, before the server reports ready.
    await s.start()
    const status = async (token: string, id: string) => (await s.api('POST', `/v1/media/${id}/download`, token)).status
    for (const id of [keepSentRecent, keepUnsentFresh, keepSent29Days, keepSentAgain]) assert.equal(await status(u.token, id), 200, `${id} kept`)
    // The other member can fetch the media whose link was lost: the restart linked it again.
    assert.equal(await status(v.token, keepLinkLost), 200, 'media of a message stored just before a crash is kept and linked')
    for (const id of [dropUnsent2Days, dropSent31Days, dropPending2Days]) assert.equal(await status(u.token, id), 404, `${id} deleted`)
    const files = readdirSync(join(s.dataDir, 'media'), { recursive: true }).map(String).filter((f) => f.includes('m_')).map((f) => f.split('/').pop())
    assert.deepEqual(files.sort(), [keepSentRecent, keepUnsentFresh, keepSent29Days, keepSentAgain, keepLinkLost].sort(), 'exactly the kept files remain on disk')
  } finally {
    await s.dispose()
  }
})
