// The contract every MediaStore adapter passes.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Media, MediaStore } from '../types.js'
import type { Opened } from './directory.js'

export function mediaContract (engine: string, open: () => Promise<Opened<MediaStore>>): void {
  async function withStore (fn: (s: MediaStore) => Promise<void>): Promise<void> {
    const o = await open()
    try { await fn(o.store) } finally { await o.close() }
  }
  const media = (id: string, over: Partial<Media> = {}): Media => ({
    id, sha256: 'a'.repeat(64), size: 10, contentType: 'image/png', kind: 'image', uploader: 'u_1', status: 'pending', createdAt: 100, uploadExpiresAt: 200, ...over
  })

  describe(`MediaStore contract: ${engine}`, () => {
    test('a record reads back whole; completion clears the upload expiry', () => withStore(async (s) => {
      await s.put(media('m_1'))
      assert.deepEqual(await s.get('m_1'), media('m_1'))
      assert.equal(await s.get('m_none'), undefined)
      await s.markComplete('m_1')
      assert.deepEqual(await s.get('m_1'), media('m_1', { status: 'complete', uploadExpiresAt: null }))
      await assert.rejects(s.put(media('m_1')), 'an id is unique')
    }))

    test('deduplication finds only complete media of the same hash and size, oldest first', () => withStore(async (s) => {
      await s.put(media('m_1', { createdAt: 1 }))
      assert.equal(await s.findComplete('a'.repeat(64), 10), undefined, 'pending media is not a match')
      await s.put(media('m_2', { createdAt: 2 }))
      await s.put(media('m_3', { createdAt: 3 }))
      await s.markComplete('m_3')
      await s.markComplete('m_2')
      assert.equal((await s.findComplete('a'.repeat(64), 10))?.id, 'm_2')
      assert.equal(await s.findComplete('a'.repeat(64), 11), undefined)
      assert.equal(await s.findComplete('b'.repeat(64), 10), undefined)
    }))

    test('owners: the uploader and those added; links in first-link order, each with its first and last seq', () => withStore(async (s) => {
      await s.put(media('m_1'))
      assert.equal(await s.isOwner('m_1', 'u_1'), true)
      assert.equal(await s.isOwner('m_1', 'u_2'), false)
      await s.addOwner('m_1', 'u_2', 101)
      await s.addOwner('m_1', 'u_2', 102)
      assert.equal(await s.isOwner('m_1', 'u_2'), true)
      assert.equal(await s.isOwner('m_none', 'u_1'), false)
      await s.linkChat('m_1', 'c_b', 4, 5)
      await s.linkChat('m_1', 'c_a', 9, 6)
      await s.linkChat('m_1', 'c_b', 12, 7)
      await s.linkChat('m_1', 'c_b', 2, 8)
      assert.deepEqual(await s.linksOf('m_1'), [{ chatId: 'c_b', firstSeq: 2, lastSeq: 12 }, { chatId: 'c_a', firstSeq: 9, lastSeq: 9 }])
      assert.deepEqual(await s.linksOf('m_none'), [])
    }))

    test('disown: an erased user gives up their media; those no one else owns are returned for deletion', () => withStore(async (s) => {
      await s.put(media('m_1'))
      await s.put(media('m_2'))
      await s.addOwner('m_2', 'u_2', 101)
      await s.put(media('m_3', { uploader: 'u_2' }))
      assert.deepEqual((await s.disown('u_1')).sort(), ['m_1'])
      assert.equal(await s.isOwner('m_2', 'u_1'), false)
      assert.equal(await s.isOwner('m_2', 'u_2'), true)
      assert.deepEqual(await s.disown('u_1'), [])
    }))

    test('quota bytes count a user\'s uploads since a time', () => withStore(async (s) => {
      await s.put(media('m_1', { size: 10, createdAt: 100 }))
      await s.put(media('m_2', { size: 20, createdAt: 200 }))
      await s.put(media('m_3', { size: 40, createdAt: 300, uploader: 'u_2' }))
      assert.equal(await s.bytesUploadedSince('u_1', 100), 30)
      assert.equal(await s.bytesUploadedSince('u_1', 150), 20)
      assert.equal(await s.bytesUploadedSince('u_3', 0), 0)
    }))

    test('expiry: unused past retention, or never sent within the grace period; delete removes all', () => withStore(async (s) => {
      await s.put(media('m_old', { createdAt: 10 }))
      await s.linkChat('m_old', 'c_a', 1, 11)
      await s.put(media('m_unsent', { createdAt: 50 }))
      await s.put(media('m_sent', { createdAt: 50 }))
      await s.linkChat('m_sent', 'c_a', 2, 51)
      await s.put(media('m_fresh', { createdAt: 90 }))
      // Old, but sent again recently, or deduplicated for someone recently: retention counts from that use.
      await s.put(media('m_resent', { createdAt: 10 }))
      await s.linkChat('m_resent', 'c_a', 3, 11)
      await s.linkChat('m_resent', 'c_b', 1, 30)
      await s.put(media('m_reused', { createdAt: 10 }))
      await s.linkChat('m_reused', 'c_a', 4, 11)
      await s.addOwner('m_reused', 'u_2', 25)
      assert.deepEqual((await s.expired(20, 60)).map((m) => m.id).sort(), ['m_old', 'm_unsent'])
      assert.deepEqual((await s.expired(31, 60)).map((m) => m.id).sort(), ['m_old', 'm_resent', 'm_reused', 'm_unsent'])
      await s.delete('m_old')
      assert.equal(await s.get('m_old'), undefined)
      assert.deepEqual(await s.linksOf('m_old'), [])
      assert.equal(await s.isOwner('m_old', 'u_1'), false)
    }))
  })
}
