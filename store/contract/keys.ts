// The contract every KeyStore adapter passes.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { DeviceIdentity, KeyStore, SignedPrekey } from '../types.js'
import type { Opened } from './directory.js'

export function keysContract (engine: string, open: () => Promise<Opened<KeyStore>>): void {
  async function withStore (fn: (s: KeyStore) => Promise<void>): Promise<void> {
    const o = await open()
    try { await fn(o.store) } finally { await o.close() }
  }
  const identity = (deviceId: string, identityKey = 'ik-1', fallback: SignedPrekey | null = { keyId: 'f1', key: 'fk-1', signature: 'sf' }): DeviceIdentity =>
    ({ deviceId, userId: 'u_1', identityKey, signingKey: 'sk-1', signature: 'sig', fallbackKey: fallback, updatedAt: 5 })
  const otk = (n: number): SignedPrekey => ({ keyId: `k${n}`, key: `key-${n}`, signature: `s${n}` })

  describe(`KeyStore contract: ${engine}`, () => {
    test('an identity reads back whole and is replaced whole', () => withStore(async (s) => {
      assert.equal(await s.getIdentity('dv_1'), undefined)
      await s.putIdentity(identity('dv_1'))
      assert.deepEqual(await s.getIdentity('dv_1'), identity('dv_1'))
      await s.putIdentity({ ...identity('dv_1'), fallbackKey: null, updatedAt: 9 })
      assert.deepEqual(await s.getIdentity('dv_1'), { ...identity('dv_1'), fallbackKey: null, updatedAt: 9 })
    }))

    test('one-time keys: added once by id, each claimed once, then the fallback key, then nothing', () => withStore(async (s) => {
      await s.putIdentity(identity('dv_1'))
      assert.equal(await s.addOneTimeKeys('dv_1', [otk(1), otk(2)]), 2)
      assert.equal(await s.addOneTimeKeys('dv_1', [otk(2), otk(3)]), 3, 'a repeated id is kept once')
      assert.equal(await s.countOneTimeKeys('dv_2'), 0)
      const got = new Set<string>()
      for (let i = 0; i < 3; i++) {
        const c = await s.claim('dv_1')
        assert.equal(c?.fallback, false)
        got.add(c!.prekey.keyId)
        assert.equal(c!.prekey.key, `key-${c!.prekey.keyId.slice(1)}`)
      }
      assert.deepEqual([...got].sort(), ['k1', 'k2', 'k3'])
      assert.deepEqual(await s.claim('dv_1'), { prekey: { keyId: 'f1', key: 'fk-1', signature: 'sf' }, fallback: true })
      assert.deepEqual(await s.claim('dv_1'), { prekey: { keyId: 'f1', key: 'fk-1', signature: 'sf' }, fallback: true }, 'the fallback stays')
      await s.putIdentity(identity('dv_2', 'ik-2', null))
      assert.equal(await s.claim('dv_2'), undefined)
      assert.equal(await s.claim('dv_none'), undefined)
    }))

    test('racing claims never hand out the same key', () => withStore(async (s) => {
      await s.putIdentity(identity('dv_1', 'ik-1', null))
      await s.addOneTimeKeys('dv_1', Array.from({ length: 20 }, (_, i) => otk(i)))
      const claims = await Promise.all(Array.from({ length: 30 }, () => s.claim('dv_1')))
      const taken = claims.filter((c) => c !== undefined).map((c) => c.prekey.keyId)
      assert.equal(taken.length, 20)
      assert.equal(new Set(taken).size, 20)
    }))

    test('a new identity key drops the pool made with the old one; the same key keeps it; a dropped device is gone', () => withStore(async (s) => {
      await s.putIdentity(identity('dv_1'))
      await s.addOneTimeKeys('dv_1', [otk(1)])
      await s.putIdentity({ ...identity('dv_1'), updatedAt: 7 })
      assert.equal(await s.countOneTimeKeys('dv_1'), 1)
      await s.putIdentity(identity('dv_1', 'ik-new'))
      assert.equal(await s.countOneTimeKeys('dv_1'), 0)
      await s.addOneTimeKeys('dv_1', [otk(2)])
      await s.putIdentity(identity('dv_2', 'ik-2'))
      assert.deepEqual((await s.identityKeys()).sort((x, y) => x.deviceId.localeCompare(y.deviceId)), [{ deviceId: 'dv_1', identityKey: 'ik-new' }, { deviceId: 'dv_2', identityKey: 'ik-2' }])
      await s.dropDevice('dv_1')
      assert.deepEqual(await s.identityKeys(), [{ deviceId: 'dv_2', identityKey: 'ik-2' }])
      assert.equal(await s.getIdentity('dv_1'), undefined)
      assert.equal(await s.countOneTimeKeys('dv_1'), 0)
    }))
  })
}
