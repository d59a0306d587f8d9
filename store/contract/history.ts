// The contract every HistoryStore adapter passes.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { HistoryStore, NewMessage } from '../types.js'
import type { Opened } from './directory.js'

export function historyContract (engine: string, open: () => Promise<Opened<HistoryStore>>): void {
  async function withStore (fn: (s: HistoryStore) => Promise<void>): Promise<void> {
    const o = await open()
    try { await fn(o.store) } finally { await o.close() }
  }
  const msg = (chatId: string, clientId: string, device = 'dv_1'): NewMessage => ({
    chatId, senderUser: 'u_1', senderDevice: device, clientId, type: 'text', body: JSON.stringify(`body ${clientId}`), clientTs: 7, serverTs: 1000
  })

  describe(`HistoryStore contract: ${engine}`, () => {
    test('seqs start at 1 and increase per chat, independently across chats', () => withStore(async (s) => {
      assert.equal(await s.lastSeq('c_a'), 0)
      const seqs = []
      for (const [chat, id] of [['c_a', '1'], ['c_a', '2'], ['c_b', '3'], ['c_a', '4']]) seqs.push((await s.append(msg(chat, id))).message.seq)
      assert.deepEqual(seqs, [1, 2, 1, 3])
      assert.equal(await s.lastSeq('c_a'), 3)
    }))

    test('a repeated (device, client id) returns the original and stores nothing', () => withStore(async (s) => {
      const first = await s.append(msg('c_a', 'x'))
      const again = await s.append({ ...msg('c_a', 'x'), body: '"changed"' })
      assert.equal(first.duplicate, false)
      assert.equal(again.duplicate, true)
      assert.equal(again.message.seq, first.message.seq)
      assert.equal(again.message.body, first.message.body)
      // The same client id from another device is another message.
      assert.equal((await s.append(msg('c_a', 'x', 'dv_2'))).message.seq, 2)
      assert.equal((await s.after('c_a', 0, 10)).length, 2)
    }))

    test('concurrent appends to one chat get distinct, gapless seqs', () => withStore(async (s) => {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.append(msg('c_a', `p${i}`))))
      assert.deepEqual(results.map((r) => r.message.seq).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1))
    }))

    test('after() pages oldest first and returns every field', () => withStore(async (s) => {
      for (let i = 0; i < 5; i++) await s.append(msg('c_a', `m${i}`))
      assert.deepEqual((await s.after('c_a', 1, 2)).map((m) => m.seq), [2, 3])
      assert.deepEqual((await s.after('c_a', 5, 10)), [])
      assert.deepEqual((await s.after('c_a', 0, 1))[0], { ...msg('c_a', 'm0'), seq: 1, ref: null, forwarded: false, editedAt: null, deletedAt: null, media: null })
    }))

    test('receipts: watermarks only rise, read implies delivered, no-ops report no change', () => withStore(async (s) => {
      assert.equal(await s.advanceReceipt('c_a', 'u_2', 0, 0, 1), undefined)
      assert.deepEqual(await s.advanceReceipt('c_a', 'u_2', 3, 0, 10), { chatId: 'c_a', userId: 'u_2', delivered: 3, read: 0, updatedAt: 10 })
      assert.equal(await s.advanceReceipt('c_a', 'u_2', 2, 0, 11), undefined, 'never backwards')
      assert.deepEqual(await s.advanceReceipt('c_a', 'u_2', 0, 5, 12), { chatId: 'c_a', userId: 'u_2', delivered: 5, read: 5, updatedAt: 12 })
      assert.equal(await s.advanceReceipt('c_a', 'u_2', 5, 4, 13), undefined)
      await s.advanceReceipt('c_a', 'u_1', 1, 0, 14)
      assert.deepEqual((await s.receipts('c_a')).map((w) => [w.userId, w.delivered, w.read]), [['u_1', 1, 0], ['u_2', 5, 5]])
      assert.equal((await s.getReceipt('c_a', 'u_2'))?.read, 5)
      assert.equal(await s.getReceipt('c_b', 'u_2'), undefined)
    }))

    test('authorsBetween lists the distinct senders of a seq range', () => withStore(async (s) => {
      await s.append({ ...msg('c_a', '1'), senderUser: 'u_1' })
      await s.append({ ...msg('c_a', '2', 'dv_2'), senderUser: 'u_2' })
      await s.append({ ...msg('c_a', '3'), senderUser: 'u_1' })
      assert.deepEqual((await s.authorsBetween('c_a', 0, 3)).sort(), ['u_1', 'u_2'])
      assert.deepEqual(await s.authorsBetween('c_a', 2, 3), ['u_1'])
      assert.deepEqual(await s.authorsBetween('c_a', 3, 9), [])
    }))

    test('countUnread counts what others sent after a seq (content, not deleted), up to a cap', () => withStore(async (s) => {
      await s.append({ ...msg('c_u', '1'), senderUser: 'u_1' })
      await s.append({ ...msg('c_u', '2', 'dv_2'), senderUser: 'u_2' })
      await s.append({ ...msg('c_u', '3', 'dv_2'), senderUser: 'u_2', type: 'reply', ref: 1 })
      await s.append({ ...msg('c_u', '4', 'dv_2'), senderUser: 'u_2', type: 'reaction', ref: 1, body: '"x"' })
      await s.append({ ...msg('c_u', '5', 'dv_2'), senderUser: 'u_2' })
      await s.append({ ...msg('c_u', '6', 'dv_2'), senderUser: 'u_2', type: 'delete', ref: 5, body: 'null' }, { kind: 'delete', seq: 5, at: 2000 })
      assert.equal(await s.countUnread('c_u', 0, 'u_1', 100), 2, 'seq 2 and the reply; not the reaction, nor the deleted one, nor the delete')
      assert.equal(await s.countUnread('c_u', 2, 'u_1', 100), 1)
      assert.equal(await s.countUnread('c_u', 0, 'u_2', 100), 1)
      assert.equal(await s.countUnread('c_u', 0, 'u_1', 1), 1, 'capped')
      assert.equal(await s.countUnread('c_none', 0, 'u_1', 100), 0)
    }))

    test('disappearing messages: an expired message is never read (get, after, unread counts) and purgeExpired deletes it, its reactions too; seqs go on', () => withStore(async (s) => {
      const now = Date.now()
      await s.append({ ...msg('c_e', 'keep'), senderUser: 'u_2' })
      await s.append({ ...msg('c_e', 'gone'), senderUser: 'u_2', expiresAt: now - 1 })
      await s.append({ ...msg('c_e', 'later'), senderUser: 'u_2', expiresAt: now + 3_600_000 })
      await s.append({ ...msg('c_e', 'react', 'dv_2'), type: 'reaction', ref: 2, body: '"x"' }, { kind: 'reaction', seq: 2, userId: 'u_1', emoji: 'x' })
      assert.equal(await s.get('c_e', 2), undefined, 'expired: not read, purged or not')
      assert.equal((await s.get('c_e', 3))?.expiresAt, now + 3_600_000)
      assert.deepEqual((await s.after('c_e', 0, 10)).map((m) => m.clientId), ['keep', 'later', 'react'])
      assert.deepEqual((await s.after('c_e', 0, 2)).map((m) => m.clientId), ['keep', 'later'], 'a page is still full')
      assert.equal(await s.countUnread('c_e', 0, 'u_1', 100), 2)
      assert.deepEqual(await s.purgeExpired(now), ['c_e'])
      assert.deepEqual(await s.purgeExpired(now), [])
      assert.deepEqual(await s.reactions('c_e', 1, 4), [])
      assert.deepEqual((await s.after('c_e', 0, 10)).map((m) => m.seq), [1, 3, 4])
      assert.equal((await s.append(msg('c_e', 'next'))).message.seq, 5)
      assert.equal(await s.lastSeq('c_e'), 5)
    }))

    test('eraseSender: an erased user\'s messages become tombstones without body or media; their reactions and watermark go; others\' stay', () => withStore(async (s) => {
      await s.append({ ...msg('c_x', 'a1'), senderUser: 'u_gone', media: 'm_1', body: '"secret text"' })
      await s.append({ ...msg('c_x', 'b1', 'dv_2'), senderUser: 'u_2', body: '"stays"' })
      await s.append({ ...msg('c_x', 'a2'), senderUser: 'u_gone', type: 'reaction', ref: 2, body: '"x"' }, { kind: 'reaction', seq: 2, userId: 'u_gone', emoji: 'x' })
      await s.advanceReceipt('c_x', 'u_gone', 3, 3, 9)
      await s.advanceReceipt('c_x', 'u_2', 3, 1, 9)
      assert.equal(await s.eraseSender('c_x', 'u_gone', 500), 2)
      const gone = await s.get('c_x', 1)
      assert.deepEqual({ body: gone?.body, media: gone?.media ?? null, deletedAt: gone?.deletedAt }, { body: 'null', media: null, deletedAt: 500 })
      assert.equal((await s.get('c_x', 2))?.body, '"stays"')
      assert.deepEqual(await s.reactions('c_x', 1, 3), [])
      assert.equal(await s.getReceipt('c_x', 'u_gone'), undefined)
      assert.equal((await s.getReceipt('c_x', 'u_2'))?.read, 1)
      assert.equal(await s.eraseSender('c_none', 'u_gone', 500), 0)
    }))

    test('retention: purgeBefore drops old messages, seqs continue, firstSeq tells what is left', () => withStore(async (s) => {
      for (let i = 0; i < 4; i++) await s.append({ ...msg('c_a', `r${i}`), serverTs: 1000 + i })
      assert.equal(await s.firstSeq('c_a'), 1)
      assert.equal(await s.firstSeq('c_none'), 1)
      assert.equal(await s.purgeBefore(1002), 2)
      assert.equal(await s.firstSeq('c_a'), 3)
      assert.deepEqual((await s.after('c_a', 0, 10)).map((m) => m.seq), [3, 4])
      assert.equal(await s.purgeBefore(9999), 2)
      assert.equal(await s.firstSeq('c_a'), 5)
      assert.equal((await s.append(msg('c_a', 'r9'))).message.seq, 5, 'seqs are never reused')
    }))

    test('operations: edit, delete and reaction effects apply with their append, atomically', () => withStore(async (s) => {
      await s.append(msg('c_a', 'orig'))
      const edit = await s.append({ ...msg('c_a', 'e1'), type: 'edit', ref: 1, body: '"new text"' }, { kind: 'edit', seq: 1, body: '"new text"', at: 50 })
      assert.equal(edit.message.ref, 1)
      let target = await s.get('c_a', 1)
      assert.equal(target?.body, '"new text"')
      assert.equal(target?.editedAt, 50)
      await s.append({ ...msg('c_a', 'r1', 'dv_2'), senderUser: 'u_2', type: 'reaction', ref: 1, body: '"👍"' }, { kind: 'reaction', seq: 1, userId: 'u_2', emoji: '👍' })
      await s.append({ ...msg('c_a', 'r2', 'dv_2'), senderUser: 'u_2', type: 'reaction', ref: 1, body: '"🎉"' }, { kind: 'reaction', seq: 1, userId: 'u_2', emoji: '🎉' })
      await s.append({ ...msg('c_a', 'r3', 'dv_3'), senderUser: 'u_3', type: 'reaction', ref: 1, body: '"👍"' }, { kind: 'reaction', seq: 1, userId: 'u_3', emoji: '👍' })
      assert.deepEqual(await s.reactions('c_a', 1, 1), [{ seq: 1, userId: 'u_2', emoji: '🎉' }, { seq: 1, userId: 'u_3', emoji: '👍' }])
      await s.append({ ...msg('c_a', 'r4', 'dv_3'), senderUser: 'u_3', type: 'reaction', ref: 1, body: 'null' }, { kind: 'reaction', seq: 1, userId: 'u_3', emoji: null })
      assert.deepEqual((await s.reactions('c_a', 1, 1)).map((r) => r.userId), ['u_2'])
      // A repeated client id applies nothing again.
      const again = await s.append({ ...msg('c_a', 'e1'), type: 'edit', ref: 1, body: '"other"' }, { kind: 'edit', seq: 1, body: '"other"', at: 60 })
      assert.equal(again.duplicate, true)
      assert.equal((await s.get('c_a', 1))?.body, '"new text"')
      // Delete: a tombstone; the edits' text and the reactions go too.
      await s.append({ ...msg('c_a', 'd1'), type: 'delete', ref: 1, body: 'null' }, { kind: 'delete', seq: 1, at: 70 })
      target = await s.get('c_a', 1)
      assert.equal(target?.body, 'null')
      assert.equal(target?.deletedAt, 70)
      assert.equal((await s.get('c_a', 2))?.body, 'null', 'the edit no longer carries the old text')
      assert.deepEqual(await s.reactions('c_a', 1, 1), [])
      assert.equal(await s.get('c_a', 99), undefined)
      assert.equal((await s.findByClientId('dv_1', 'orig'))?.seq, 1)
      assert.equal(await s.findByClientId('dv_1', 'nope'), undefined)
    }))

    test('fan-out outbox: new messages are pending until marked', () => withStore(async (s) => {
      await s.append(msg('c_a', '1'))
      await s.append(msg('c_b', '2'))
      assert.deepEqual((await s.pendingFanout(10)).map((m) => m.chatId).sort(), ['c_a', 'c_b'])
      await s.markFannedOut('c_a', 1)
      assert.deepEqual((await s.pendingFanout(10)).map((m) => m.chatId), ['c_b'])
      assert.equal((await s.pendingFanout(0)).length, 0)
      // A message with nothing to redo is stored settled.
      await s.append(msg('c_c', '3'), undefined, { settled: true })
      assert.deepEqual((await s.pendingFanout(10)).map((m) => m.chatId), ['c_b'])
    }))
  })
}
