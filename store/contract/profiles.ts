// The contract every ProfileStore adapter passes.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Profile, ProfileStore } from '../types.js'
import type { Opened } from './directory.js'

export function profilesContract (engine: string, open: () => Promise<Opened<ProfileStore>>): void {
  async function withStore (fn: (s: ProfileStore) => Promise<void>): Promise<void> {
    const o = await open()
    try { await fn(o.store) } finally { await o.close() }
  }
  const profile = (name: string, avatar: string | null = null): Profile => ({ name, about: null, avatar, updatedAt: 7 })

  describe(`ProfileStore contract (${engine})`, () => {
    test('a profile is put, read, replaced and deleted; profiles() reads those that exist', () => withStore(async (s) => {
      assert.equal(await s.getProfile('u_1'), undefined)
      await s.putProfile('u_1', profile('Ann', 'm_1'))
      await s.putProfile('u_2', { name: null, about: 'busy', avatar: null, updatedAt: 9 })
      assert.deepEqual(await s.getProfile('u_1'), profile('Ann', 'm_1'))
      const many = await s.profiles(['u_1', 'u_2', 'u_3', 'u_1'])
      assert.deepEqual([...many.keys()].sort(), ['u_1', 'u_2'])
      assert.equal(many.get('u_2')!.about, 'busy')
      assert.equal(await s.avatarOwner('m_1'), 'u_1')
      await s.putProfile('u_1', profile('Ann B.'))
      assert.equal((await s.getProfile('u_1'))!.name, 'Ann B.')
      assert.equal(await s.avatarOwner('m_1'), undefined, 'a replaced avatar is no one\'s')
      await s.deleteProfile('u_1')
      assert.equal(await s.getProfile('u_1'), undefined)
      assert.deepEqual([...(await s.profiles([])).keys()], [])
    }))

    test('contact lists: replaced, added to without copies, asked about, and a number forgotten from every list', () => withStore(async (s) => {
      await s.setContacts('u_1', ['+15550000002', '+15550000003'])
      assert.equal(await s.addContacts('u_1', ['+15550000003', '+15550000004']), 3)
      assert.deepEqual(await s.contacts('u_1'), ['+15550000002', '+15550000003', '+15550000004'])
      assert.equal(await s.hasContact('u_1', '+15550000004'), true)
      assert.equal(await s.hasContact('u_2', '+15550000004'), false)
      await s.setContacts('u_1', ['+15550000009'])
      assert.deepEqual(await s.contacts('u_1'), ['+15550000009'])
      await s.setContacts('u_2', ['+15550000009', '+15550000001'])
      await s.forgetPhone('+15550000009')
      assert.deepEqual(await s.contacts('u_1'), [])
      assert.deepEqual(await s.contacts('u_2'), ['+15550000001'])
      await s.dropContacts('u_2')
      assert.deepEqual(await s.contacts('u_2'), [])
      assert.equal(await s.addContacts('u_3', []), 0)
    }))
  })
}
