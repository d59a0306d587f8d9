// bridge/recent.ts: the bounded recent-messages cache the inbox reads before history.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RecentMessages } from '../../bridge/recent.js'
import type { StoredMessage } from '../../store/types.js'

const msg = (chatId: string, seq: number): StoredMessage => ({
  chatId, seq, senderUser: 'u', senderDevice: 'd', clientId: `${chatId}-${seq}`, type: 'text', body: '"x"',
  clientTs: null, serverTs: 0, ref: null, forwarded: false, media: null, editedAt: null, deletedAt: null
})
const seqs = (ms: StoredMessage[] | undefined): number[] | undefined => ms?.map((m) => m.seq)

test('serves what follows a seq while it holds the next one; otherwise says to read history', () => {
  const r = new RecentMessages(100, 4)
  for (let s = 1; s <= 6; s++) r.add(msg('c', s))
  assert.deepEqual(seqs(r.after('c', 2, 10)), [3, 4, 5, 6], 'a chat keeps its last 4')
  assert.deepEqual(seqs(r.after('c', 3, 2)), [4, 5])
  assert.equal(r.after('c', 1, 10), undefined, 'seq 2 left the cache: history')
  assert.equal(r.after('c', 6, 10), undefined, 'nothing after the last: history decides')
  assert.equal(r.after('other', 0, 10), undefined)
})

test('a gap in a chat\'s seqs starts it afresh; forget drops a chat', () => {
  const r = new RecentMessages(100, 10)
  r.add(msg('c', 1))
  r.add(msg('c', 2))
  r.add(msg('c', 5))
  assert.equal(r.after('c', 1, 10), undefined)
  assert.deepEqual(seqs(r.after('c', 4, 10)), [5])
  r.forget('c')
  assert.equal(r.after('c', 4, 10), undefined)
  assert.equal(r.size, 0)
})

test('bounded overall: the chats used least recently leave first', () => {
  const r = new RecentMessages(5, 3)
  for (let s = 1; s <= 3; s++) r.add(msg('a', s))
  for (let s = 1; s <= 2; s++) r.add(msg('b', s))
  r.add(msg('a', 4))
  r.add(msg('c', 1))
  assert.ok(r.size <= 5, `size ${r.size}`)
  assert.equal(r.after('b', 0, 10), undefined, 'b was used least recently')
  assert.deepEqual(seqs(r.after('a', 1, 10)), [2, 3, 4])
  assert.deepEqual(seqs(r.after('c', 0, 10)), [1])
  assert.equal(new RecentMessages(0, 3).after('a', 0, 1), undefined, 'a cache of 0 holds nothing')
})
