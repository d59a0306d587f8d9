// The push dispatcher's bounds with fakes around it (the e2e tests in
// push.test.ts and cluster-push.test.ts run it against real servers): the
// queue bound, the last try, and that a message's path never waits for it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import { PushDispatcher, type PushDeps } from '../../push/dispatcher.js'
import type { PushNotice, PushProvider, SendOutcome } from '../../push/notice.js'
import type { ChatService } from '../../core/chats.js'
import type { DeviceService } from '../../core/devices.js'
import type { PushTargets } from '../../core/push-targets.js'
import type { PushTarget, StoredMessage } from '../../store/types.js'
import { waitFor } from '../helpers/server.js'

function counter (): { inc (labels: Record<string, string>): void, by: Map<string, number> } {
  const by = new Map<string, number>()
  return { by, inc: (labels) => { const k = Object.values(labels).join('/'); by.set(k, (by.get(k) ?? 0) + 1) } }
}

/** One chat with the sender and `members` other users, one device each, every device away with one UnifiedPush target. */
function setup (members: number, provider: PushProvider, opts: Partial<ConstructorParameters<typeof PushDispatcher>[1]> = {}) {
  const users = ['u_sender', ...Array.from({ length: members }, (_, i) => `u_${i}`)]
  const target = (deviceId: string): PushTarget => ({ id: `pt_${deviceId}`, deviceId, userId: `u_${deviceId}`, type: 'unifiedpush', address: `https://push.example.org/${deviceId}`, createdAt: 0 })
  const metrics = { sent: counter(), failed: counter(), dropped: counter() }
  const deps: PushDeps = {
    chats: { memberIds: () => new Set(users), receivesMessage: () => true } as unknown as ChatService,
    devices: { activeIds: (u: string) => new Set([`dv_${u}`]) } as unknown as DeviceService,
    targets: { mayHave: () => true, of: async (d: string) => [target(d)], remove: async () => true } as unknown as PushTargets,
    providers: new Map([['unifiedpush', provider]]),
    isAway: () => true,
    chatSettings: async () => ({ mutedUntil: null }),
    position: () => 0,
    chatName: async () => null,
    metrics,
    log: pino({ level: 'silent' })
  }
  const d = new PushDispatcher(deps, { coalesceMs: 60_000, queueMax: 1000, concurrency: 4, maxAttempts: 3, maxRetryDelayMs: 10, ...opts })
  return { d, metrics }
}

const message = (seq: number): StoredMessage => ({ chatId: 'g_1', seq, senderUser: 'u_sender', senderDevice: 'dv_u_sender', clientId: `m${seq}`, type: 'text', body: '"x"', clientTs: null, serverTs: 0 })

test('past MQCHAT_PUSH_QUEUE waiting, new pushes are dropped and counted; committed() returns at once whatever the providers do', async () => {
  // A provider that never answers: every push stays in flight.
  const hung: PushProvider = { type: 'unifiedpush', send: async () => await new Promise<SendOutcome>(() => {}) }
  const { d, metrics } = setup(50, hung, { queueMax: 10, concurrency: 2 })
  // committed() is synchronous and returns with the providers still silent: nothing on the message path waits for them.
  d.committed(message(1))
  assert.equal(d.pending, 10, 'the bound')
  assert.equal(metrics.dropped.by.get('queue_full'), 40)
  await d.stop()
})

test('a provider that keeps failing with 503 is tried MQCHAT_PUSH_MAX_ATTEMPTS times, then the push is given up and counted', async () => {
  let tries = 0
  const failing: PushProvider = { type: 'unifiedpush', send: async () => { tries++; return { ok: false, reason: 'http 503', retry: true, retryAfterMs: 60_000 } } }
  const { d, metrics } = setup(1, failing, { maxAttempts: 3, maxRetryDelayMs: 10 })
  d.committed(message(1))
  await waitFor('the push to be given up', () => metrics.dropped.by.get('gave_up') === 1)
  // A Retry-After of a minute is bounded by maxRetryDelayMs: the three tries took milliseconds.
  assert.equal(tries, 3)
  assert.equal(metrics.failed.by.get('unifiedpush/http 503'), 3)
  assert.equal(d.pending, 0)
  await d.stop()
})

test('edits, deletes and reactions never push; the sender is never pushed', async () => {
  const sent: PushNotice[] = []
  const ok: PushProvider = { type: 'unifiedpush', send: async (_t, n) => { sent.push(n); return { ok: true } } }
  const { d } = setup(1, ok)
  for (const type of ['edit', 'delete', 'reaction']) d.committed({ ...message(1), type })
  d.committed(message(2))
  await waitFor('the text message\'s push', () => sent.length === 1)
  assert.equal(sent[0]!.seq, 2)
  await d.stop()
})
