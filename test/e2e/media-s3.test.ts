// Media on the S3 backend, against a real MinIO that enforces SigV4 presigned
// URLs, their expiry and SHA-256 checksums: the same behaviour as the local
// backend, with S3's own refusals for bytes that never reach the API.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { TestServer, cli, tempDir, waitFor, type DeviceCreds } from '../helpers/server.js'
import { Minio } from '../helpers/services.js'

const minio = new Minio()
let server: TestServer
let a: DeviceCreds, b: DeviceCreds, outsider: DeviceCreds
let group: string
let s3: S3Client

before(async () => {
  await minio.start()
  server = new TestServer({ ...minio.env(), MQCHAT_MEDIA_UPLOAD_URL_SECONDS: '5', MQCHAT_MEDIA_MAX_IMAGE_BYTES: String(1 << 20) })
  await server.start()
  a = await server.register('+15551400001')
  b = await server.register('+15551400002')
  outsider = await server.register('+15551400003')
  group = (await server.api('POST', '/v1/chats', a.token, { kind: 'group', name: 's3', members: [b.userId] })).body.chat_id
  s3 = new S3Client({ endpoint: minio.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey } })
})
after(async () => {
  s3?.destroy()
  await server?.dispose()
  await minio.stop()
})

const sha = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex')
const stored = (key: string): Promise<boolean> => s3.send(new HeadObjectCommand({ Bucket: 'mqchat-media', Key: key })).then(() => true, () => false)

async function slot (token: string, bytes: Buffer, type = 'application/pdf', size = bytes.length) {
  return server.api('POST', '/v1/media', token, { chat: group, size, content_type: type, sha256: sha(bytes) })
}

async function put (upload: { url: string, headers: Record<string, string> }, bytes: Buffer, headers: Record<string, string> = upload.headers): Promise<number> {
  const h = { ...headers }
  delete h['content-length']
  const res = await fetch(upload.url, { method: 'PUT', body: new Uint8Array(bytes), headers: h })
  await res.arrayBuffer()
  return res.status
}

test('S3: upload straight to S3, media message, another member downloads byte-identical (with Range); dedup', async () => {
  const file = randomBytes(20 * 1024 * 1024)
  const s1 = await slot(a.token, file)
  assert.equal(s1.status, 201)
  assert.ok(s1.body.upload.url.startsWith(minio.endpoint), 'the URL points at S3, not at the API')
  assert.equal(s1.body.upload.headers['x-amz-checksum-sha256'], Buffer.from(sha(file), 'hex').toString('base64'))
  assert.equal(await put(s1.body.upload, file), 200)
  const sent = await server.api('POST', `/v1/chats/${group}/messages`, a.token, { id: 's3-1', type: 'media', media: s1.body.media_id })
  assert.equal(sent.status, 201, JSON.stringify(sent.body))
  const dl = await server.api('POST', `/v1/media/${s1.body.media_id as string}/download`, b.token)
  assert.equal(dl.status, 200)
  const res = await fetch(dl.body.url)
  assert.equal(res.headers.get('content-disposition'), 'attachment', 'served as a download, never as a page')
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(file), 'byte-identical')
  const part = await fetch(dl.body.url, { headers: { range: 'bytes=10-19' } })
  assert.equal(part.status, 206)
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(file.subarray(10, 20)))
  const again = await slot(b.token, file)
  assert.deepEqual(again.body, { media_id: s1.body.media_id, existing: true })
})

test('S3: wrong hash, wrong size, a missing checksum, a tampered signature, an expired URL are refused by S3 and nothing is stored', async () => {
  const bytes = randomBytes(4096)
  const s1 = await slot(a.token, bytes)
  assert.equal(await put(s1.body.upload, randomBytes(4096)), 400, 'other bytes under the declared SHA-256')
  assert.equal(await put(s1.body.upload, bytes.subarray(0, 1000)), 403, 'a size other than the signed one')
  const noChecksum = { ...s1.body.upload.headers }
  delete noChecksum['x-amz-checksum-sha256']
  assert.equal(await put(s1.body.upload, randomBytes(4096), noChecksum), 400, 'the checksum header is required')
  const u = new URL(s1.body.upload.url)
  const sig = u.searchParams.get('X-Amz-Signature') as string
  u.searchParams.set('X-Amz-Signature', sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0'))
  assert.equal(await put({ url: u.toString(), headers: s1.body.upload.headers }, bytes), 403, 'tampered signature')
  assert.equal(await stored(s1.body.media_id), false, 'nothing stored')
  // The media is not usable while nothing verified is stored.
  const msg = await server.api('POST', `/v1/chats/${group}/messages`, a.token, { id: 's3-bad', type: 'media', media: s1.body.media_id })
  assert.equal(msg.body.error.code, 'unknown_media')
  assert.equal((await server.api('POST', `/v1/media/${s1.body.media_id as string}/download`, a.token)).status, 404)

  // Upload URLs live 5 s here.
  const s2 = await slot(a.token, randomBytes(100))
  await new Promise((r) => setTimeout(r, 6500))
  assert.equal(await put(s2.body.upload, randomBytes(100)), 403, 'expired')
  assert.equal(await stored(s2.body.media_id), false)

  // Membership and limits are the API's, the same as on the local backend.
  assert.equal((await server.api('POST', '/v1/media', outsider.token, { chat: group, size: 10, content_type: 'text/plain', sha256: sha(Buffer.alloc(10)) })).body.error.code, 'not_member')
  assert.equal((await slot(a.token, Buffer.alloc(1), 'image/png', 2 << 20)).body.error.code, 'too_large')
})

test('S3: the CLI sends a file and another member fetches it; a non-member is refused', async () => {
  const home = tempDir('mqchat-cli-')
  const { writeFileSync, readFileSync, rmSync } = await import('node:fs')
  try {
    for (const [name, who] of [['a', a], ['b', b], ['o', outsider]] as const) {
      writeFileSync(`${home}/${name}.json`, JSON.stringify({ server: server.url, user_id: who.userId, device_id: who.deviceId, token: who.token }))
    }
    const file = randomBytes(3 * 1024 * 1024)
    writeFileSync(`${home}/notes.pdf`, file)
    const sent = await cli(home, ['send', group, '--file', `${home}/notes.pdf`, '--profile', 'a', '--json'], {}, 60_000)
    assert.equal(sent.code, 0, sent.stderr)
    const s = JSON.parse(sent.stdout)
    assert.equal(await stored(s.media_id), true)
    const got = await cli(home, ['fetch', s.media_id, '-o', `${home}/got.pdf`, '--profile', 'b'], {}, 60_000)
    assert.equal(got.code, 0, got.stderr)
    assert.ok(readFileSync(`${home}/got.pdf`).equals(file))
    const denied = await cli(home, ['fetch', s.media_id, '-o', `${home}/no.pdf`, '--profile', 'o'])
    assert.equal(denied.code, 3)
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
})

test('S3: mqchat setup-s3 removes the age rule of older releases and keeps other rules; the server job deletes unreferenced media from S3', async () => {
  const { GetBucketLifecycleConfigurationCommand, PutBucketLifecycleConfigurationCommand } = await import('@aws-sdk/client-s3')
  // The bucket as an older release left it, with a rule of the operator's beside it.
  await s3.send(new PutBucketLifecycleConfigurationCommand({
    Bucket: 'mqchat-media',
    LifecycleConfiguration: {
      Rules: [
        { ID: 'mqchat-media-retention', Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: 30 } },
        { ID: 'operator-scratch', Status: 'Enabled', Filter: { Prefix: 'scratch/' }, Expiration: { Days: 2 } }
      ]
    }
  }))
  const r = await cli(tempDir('mqchat-cli-'), ['setup-s3', '--json'], { ...minio.env(), MQCHAT_MEDIA_RETENTION_DAYS: '30' })
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { bucket: 'mqchat-media', retention_days: 30, removed_age_rule: true })
  // Retention counts from a media id's last use, which only the server knows: no expiry by age is left in the bucket.
  const rules = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'mqchat-media' }))).Rules ?? []
  assert.deepEqual(rules.map((x) => x.ID), ['operator-scratch'])
  const again = await cli(tempDir('mqchat-cli-'), ['setup-s3', '--json'], minio.env())
  assert.equal(JSON.parse(again.stdout).removed_age_rule, false)

  // An upload never sent anywhere, two days old: the job at the next start removes it from S3.
  const bytes = randomBytes(1000)
  const sl = await slot(a.token, bytes)
  assert.equal(await put(sl.body.upload, bytes), 200)
  assert.equal(await stored(sl.body.media_id), true)
  await server.stop()
  const { SqliteDatabase } = await import('../../lib/sqlite.js')
  const db = new SqliteDatabase(`${server.dataDir}/mqchat.db`)
  db.prepare('UPDATE media SET created_at = created_at - ? WHERE id = ?').run(2 * 86_400_000, sl.body.media_id)
  db.close()
  await server.start()
  await waitFor('the object to leave S3', async () => !(await stored(sl.body.media_id)))
})
