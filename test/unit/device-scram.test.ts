// SCRAM keys of devices, on a real SQLite directory: made at creation, and
// made from the token the first time a device from before they existed
// signs in; revoked devices are no candidates.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeviceService, SCRAM_ITERATIONS, scramSalt } from '../../core/devices.js'
import { hashSecret, newToken } from '../../core/ids.js'
import { scramCredentials } from '../../lib/scram.js'
import { openDatabase } from '../../store/sqlite/database.js'
import { SqliteDirectory } from '../../store/sqlite/directory.js'

async function withDirectory (fn: (dir: SqliteDirectory) => Promise<void>): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'mqchat-scram-'))
  const db = openDatabase(join(home, 'db.sqlite'))
  try {
    const dir = new SqliteDirectory(db)
    await dir.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
    await fn(dir)
  } finally {
    db.close()
    rmSync(home, { recursive: true, force: true })
  }
}

async function until<T> (what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a new device gets SCRAM keys of its token, under the user\'s salt', () => withDirectory(async (dir) => {
  const devices = new DeviceService(dir, 5)
  await devices.init()
  const { device, token } = await devices.create('u_1', 'phone')
  const expected = await scramCredentials(token, scramSalt('u_1'), SCRAM_ITERATIONS)
  assert.deepEqual((await dir.getDevice(device.id))?.scram, expected)
  assert.deepEqual(devices.scramOf('u_1').devices.map((d) => d.id), [device.id])
  assert.notDeepEqual(scramSalt('u_1'), scramSalt('u_2'), 'one salt per user')
}))

test('a device from before SCRAM keys gets them when its token is next used; a revoked device is no candidate', () => withDirectory(async (dir) => {
  const id = 'dv_legacy'
  const token = newToken(id)
  await dir.addDevice({ id, userId: 'u_1', name: 'old', tokenHash: hashSecret(token), createdAt: 1, revokedAt: null })
  const devices = new DeviceService(dir, 5)
  await devices.init()
  assert.deepEqual(devices.scramOf('u_1').devices, [], 'no keys yet: SCRAM cannot pick it')
  assert.equal(devices.authenticate(`${id}.wrong`), undefined)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal((await dir.getDevice(id))?.scram, undefined, 'a wrong token makes no keys')
  assert.equal(devices.authenticate(token)?.id, id)
  const stored = await until('the keys in the store', async () => (await dir.getDevice(id))?.scram)
  assert.deepEqual(stored, await scramCredentials(token, scramSalt('u_1'), SCRAM_ITERATIONS))
  assert.deepEqual(devices.scramOf('u_1').devices.map((d) => d.id), [id], 'and in the cache')
  await devices.revoke('u_1', id)
  assert.deepEqual(devices.scramOf('u_1').devices, [])
}))

test('device limit: a device being set up (its creation hooks still running) counts once, not twice', () => withDirectory(async (dir) => {
  const devices = new DeviceService(dir, 3)
  await devices.init()
  let release!: () => void
  const hold = new Promise<void>((resolve) => { release = resolve })
  let held = 0
  devices.onCreate(async () => { if (held++ === 0) await hold })
  const first = devices.create('u_1', 'one')
  await until('the first device to be in its creation hooks', async () => held === 1 ? true : undefined)
  // One device exists (the first, still setting up): two more fit under the limit of 3.
  const second = await devices.create('u_1', 'two')
  const third = await devices.create('u_1', 'three')
  await assert.rejects(devices.create('u_1', 'four'), /at most 3 active devices/)
  release()
  await first
  assert.deepEqual(devices.list('u_1').map((d) => d.name).sort(), ['one', 'three', 'two'])
  assert.ok(second.token && third.token)
}))
