// The contract every DirectoryStore adapter passes. Run it with
// directoryContract('engine name', factory) from a test file.
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { ChatSettings, Device, DirectoryStore, Member, PushTarget } from '../types.js'

export type Opened<S> = { store: S, close (): Promise<void> }

export function directoryContract (engine: string, open: () => Promise<Opened<DirectoryStore>>): void {
  async function withStore (fn: (s: DirectoryStore) => Promise<void>): Promise<void> {
    const o = await open()
    try { await fn(o.store) } finally { await o.close() }
  }

  describe(`DirectoryStore contract: ${engine}`, () => {
    test('users are found by id and by phone; a phone is unique', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      assert.deepEqual(await s.getUser('u_1'), { id: 'u_1', phone: '+15550000001', createdAt: 1 })
      assert.deepEqual(await s.getUserByPhone('+15550000001'), { id: 'u_1', phone: '+15550000001', createdAt: 1 })
      assert.equal(await s.getUser('u_2'), undefined)
      await assert.rejects(s.createUser({ id: 'u_2', phone: '+15550000001', createdAt: 2 }))
      await s.createUser({ id: 'u_3', phone: '+15550000003', createdAt: 3 })
      const found = await s.usersByPhones(['+15550000003', '+15550000009', '+15550000001', '+15550000003'])
      assert.deepEqual(found.map((u) => u.id).sort(), ['u_1', 'u_3'])
      assert.deepEqual(await s.usersByPhones([]), [])
      // Operators' search: by number prefix (in order, bounded), or by id.
      await s.createUser({ id: 'u_4', phone: '+15560000004', createdAt: 4 })
      assert.deepEqual((await s.findUsers({ phonePrefix: '+1555' }, 10)).map((u) => u.id), ['u_1', 'u_3'])
      assert.deepEqual((await s.findUsers({ phonePrefix: '+1555' }, 1)).map((u) => u.id), ['u_1'])
      assert.deepEqual((await s.findUsers({ id: 'u_4' }, 10)).map((u) => u.phone), ['+15560000004'])
      assert.deepEqual(await s.findUsers({ id: 'u_9' }, 10), [])
      // Bans: set, listed, lifted.
      await s.setBanned('u_3', 77)
      assert.equal((await s.getUser('u_3'))?.bannedAt, 77)
      assert.deepEqual(await s.bannedUsers(), ['u_3'])
      await s.setBanned('u_3', null)
      assert.equal((await s.getUser('u_3'))?.bannedAt, undefined)
      assert.deepEqual(await s.bannedUsers(), [])
    }))

    test('devices: listed oldest first, revoked ones leave the list once', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      const base = { userId: 'u_1', tokenHash: 'ab', revokedAt: null }
      await s.addDevice({ ...base, id: 'dv_b', name: 'two', createdAt: 20 })
      await s.addDevice({ ...base, id: 'dv_a', name: 'one', createdAt: 10 })
      assert.deepEqual((await s.listDevices('u_1')).map((d) => d.id), ['dv_a', 'dv_b'])
      assert.equal(await s.revokeDevice('dv_a', 30), true)
      assert.equal(await s.revokeDevice('dv_a', 31), false)
      assert.equal(await s.revokeDevice('dv_zz', 31), false)
      assert.deepEqual((await s.listDevices('u_1')).map((d) => d.id), ['dv_b'])
      assert.equal((await s.getDevice('dv_a'))?.revokedAt, 30)
      assert.equal((await s.allDevices()).length, 2)
    }))

    test('devices: at most N active per user, even when additions race; a revocation frees a place; devices added before count', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      const dev = (id: string): Device => ({ id, userId: 'u_1', name: id, tokenHash: 'ab', createdAt: 1, revokedAt: null })
      // A device added before places were counted takes one of the 4.
      await s.addDevice(dev('dv_old'))
      assert.equal(await s.addDeviceWithin(dev('dv_first'), 4), true)
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => s.addDeviceWithin(dev(`dv_${i}`), 4)))
      assert.equal(results.filter(Boolean).length, 2, 'exactly the places left are taken')
      assert.equal((await s.listDevices('u_1')).length, 4)
      assert.equal(await s.addDeviceWithin(dev('dv_more'), 4), false)
      const someone = results.findIndex(Boolean)
      assert.equal(await s.revokeDevice(`dv_${someone}`, 2), true)
      assert.equal(await s.addDeviceWithin(dev('dv_after'), 4), true)
      assert.equal(await s.addDeviceWithin(dev('dv_over'), 4), false)
      assert.deepEqual((await s.listDevices('u_1')).length, 4)
      // Another user's places are their own.
      await s.createUser({ id: 'u_2', phone: '+15550000002', createdAt: 1 })
      assert.equal(await s.addDeviceWithin({ ...dev('dv_u2'), userId: 'u_2' }, 4), true)
    }))

    test('devices: a linked device reads back as linked; one from a phone verification has no flag', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      const base = { userId: 'u_1', tokenHash: 'ab', revokedAt: null, createdAt: 1 }
      await s.addDevice({ ...base, id: 'dv_p', name: 'phone' })
      await s.addDevice({ ...base, id: 'dv_l', name: 'laptop', linked: true })
      assert.equal((await s.getDevice('dv_l'))?.linked, true)
      assert.equal('linked' in ((await s.getDevice('dv_p')) ?? {}), false)
      assert.deepEqual((await s.listDevices('u_1')).map((d) => [d.id, d.linked === true]).sort(), [['dv_l', true], ['dv_p', false]])
    }))

    test('devices: SCRAM keys are kept when given at creation, and can be added later', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      const keys = (n: string): { storedKey: string, serverKey: string } => ({ storedKey: `st${n}`, serverKey: `sv${n}` })
      const scram = { iterations: 4096, sha1: keys('1'), sha256: keys('256') }
      const base = { userId: 'u_1', tokenHash: 'ab', revokedAt: null, createdAt: 1 }
      await s.addDevice({ ...base, id: 'dv_a', name: 'with', scram })
      await s.addDevice({ ...base, id: 'dv_b', name: 'without' })
      assert.deepEqual((await s.getDevice('dv_a'))?.scram, scram)
      assert.equal((await s.getDevice('dv_b'))?.scram, undefined)
      assert.equal('scram' in ((await s.getDevice('dv_b')) ?? {}), false)
      const later = { ...scram, iterations: 8192 }
      await s.setDeviceScram('dv_b', later)
      assert.deepEqual((await s.getDevice('dv_b'))?.scram, later)
      assert.deepEqual((await s.listDevices('u_1')).map((d) => d.scram?.iterations), [4096, 8192])
      assert.deepEqual((await s.allDevices()).map((d) => d.scram?.iterations).sort(), [4096, 8192])
    }))

    test('chats: creation is idempotent by id; members, roles, rename, removal', () => withStore(async (s) => {
      const m = (userId: string, role: Member['role'] = 'member'): Member => ({ chatId: 'g_1', userId, role, joinedAt: 5, fromSeq: 1, engaged: role === 'admin' })
      const chat = { id: 'g_1', kind: 'group' as const, name: 'G', createdBy: 'u_1', createdAt: 5 }
      assert.equal(await s.createChat(chat, [m('u_1', 'admin'), m('u_2')]), true)
      assert.equal(await s.createChat({ ...chat, name: 'other' }, [m('u_3')]), false)
      assert.equal((await s.getChat('g_1'))?.name, 'G')
      assert.deepEqual((await s.members('g_1')).map((x) => [x.userId, x.role]), [['u_1', 'admin'], ['u_2', 'member']])
      assert.deepEqual((await s.addMembers([m('u_2'), m('u_3')])).map((x) => x.userId), ['u_3'])
      assert.equal(await s.setRole('g_1', 'u_3', 'admin'), true)
      assert.equal(await s.setRole('g_1', 'u_9', 'admin'), false)
      await s.renameChat('g_1', 'H')
      assert.equal((await s.getChat('g_1'))?.name, 'H')
      assert.equal(await s.removeMember('g_1', 'u_2', { toSeq: 0, at: 6 }), true)
      assert.equal(await s.removeMember('g_1', 'u_2', { toSeq: 0, at: 7 }), false)
      assert.deepEqual((await s.chatsOfUser('u_3')).map((c) => c.id), ['g_1'])
      assert.deepEqual(await s.chatsOfUser('u_2'), [])
      assert.deepEqual((await s.allMemberships()).map((x) => x.userId).sort(), ['u_1', 'u_3'])
    }))

    test('eraseUser: the user, their devices, settings, chat settings, blocks either way, push targets and their number\'s code go; others stay', () => withStore(async (s) => {
      await s.createUser({ id: 'u_1', phone: '+15550000001', createdAt: 1 })
      await s.createUser({ id: 'u_2', phone: '+15550000002', createdAt: 1 })
      const dev = (id: string, userId: string): Device => ({ id, userId, name: 'd', tokenHash: 'h', createdAt: 1, revokedAt: null })
      await s.addDevice(dev('dv_1', 'u_1'))
      await s.addDevice(dev('dv_2', 'u_2'))
      await s.putSettings('u_1', { readReceipts: false, lastSeen: 'nobody' })
      await s.putChatSettings('u_1', 'c_1', { mutedUntil: 5, archived: true, pinnedAt: null })
      await s.block('u_1', 'u_2', 1)
      await s.block('u_2', 'u_1', 1)
      await s.addPushTarget({ id: 'pt_1', deviceId: 'dv_1', userId: 'u_1', type: 'fcm', address: 'tok', createdAt: 1 })
      await s.putCode({ phone: '+15550000001', codeHash: 'x', expiresAt: 9, attempts: 0 })
      await s.eraseUser('u_1', '+15550000001')
      assert.equal(await s.getUser('u_1'), undefined)
      assert.equal(await s.getUserByPhone('+15550000001'), undefined)
      assert.equal(await s.getDevice('dv_1'), undefined)
      assert.deepEqual(await s.listDevices('u_1'), [])
      assert.equal(await s.getSettings('u_1'), undefined)
      assert.equal(await s.getChatSettings('u_1', 'c_1'), undefined)
      assert.deepEqual(await s.allBlocks(), [])
      assert.deepEqual(await s.pushTargets('dv_1'), [])
      assert.equal(await s.getCode('+15550000001'), undefined)
      assert.equal((await s.getDevice('dv_2'))?.userId, 'u_2')
      assert.equal((await s.getUser('u_2'))?.phone, '+15550000002')
    }))

    test('chats: a disappearing-messages timer is set, read back, listed for the cache, and turned off', () => withStore(async (s) => {
      const chat = (id: string) => ({ id, kind: 'group' as const, name: id, createdBy: 'u_1', createdAt: 5 })
      await s.createChat(chat('g_1'), [])
      await s.createChat(chat('g_2'), [])
      assert.equal((await s.getChat('g_1'))?.disappearing, undefined)
      await s.setDisappearing('g_1', 86400)
      await s.setDisappearing('g_2', 604800)
      assert.equal((await s.getChat('g_1'))?.disappearing, 86400)
      assert.deepEqual((await s.disappearingChats()).sort((a, b) => a.chatId.localeCompare(b.chatId)), [{ chatId: 'g_1', seconds: 86400 }, { chatId: 'g_2', seconds: 604800 }])
      await s.setDisappearing('g_2', null)
      assert.equal((await s.getChat('g_2'))?.disappearing, undefined)
      assert.deepEqual(await s.disappearingChats(), [{ chatId: 'g_1', seconds: 86400 }])
    }))

    test('membership periods: each removal closes one, a return opens the next; reads and the warm-up carry fromSeq', () => withStore(async (s) => {
      const chat = { id: 'g_1', kind: 'group' as const, name: 'G', createdBy: 'u_1', createdAt: 5 }
      assert.equal(await s.createChat(chat, [{ chatId: 'g_1', userId: 'u_1', role: 'admin', joinedAt: 5, fromSeq: 1, engaged: true }]), true)
      assert.deepEqual(await s.periods('g_1', 'u_2'), [])
      await s.addMembers([{ chatId: 'g_1', userId: 'u_2', role: 'member', joinedAt: 10, fromSeq: 5, engaged: false }])
      assert.deepEqual((await s.members('g_1')).map((x) => [x.userId, x.fromSeq]), [['u_1', 1], ['u_2', 5]])
      assert.deepEqual(await s.periods('g_1', 'u_2'), [{ fromSeq: 5, toSeq: null, joinedAt: 10, leftAt: null }])
      assert.equal(await s.removeMember('g_1', 'u_2', { toSeq: 8, at: 20 }), true)
      assert.deepEqual(await s.periods('g_1', 'u_2'), [{ fromSeq: 5, toSeq: 8, joinedAt: 10, leftAt: 20 }])
      await s.addMembers([{ chatId: 'g_1', userId: 'u_2', role: 'member', joinedAt: 30, fromSeq: 12, engaged: false }])
      assert.equal(await s.removeMember('g_1', 'u_2', { toSeq: 15, at: 40 }), true)
      await s.addMembers([{ chatId: 'g_1', userId: 'u_2', role: 'member', joinedAt: 50, fromSeq: 20, engaged: false }])
      assert.deepEqual(await s.periods('g_1', 'u_2'), [
        { fromSeq: 5, toSeq: 8, joinedAt: 10, leftAt: 20 },
        { fromSeq: 12, toSeq: 15, joinedAt: 30, leftAt: 40 },
        { fromSeq: 20, toSeq: null, joinedAt: 50, leftAt: null }
      ])
      assert.deepEqual(await s.periods('g_1', 'u_1'), [{ fromSeq: 1, toSeq: null, joinedAt: 5, leftAt: null }])
      assert.deepEqual((await s.allMemberships()).map((x) => [x.userId, x.fromSeq]).sort(), [['u_1', 1], ['u_2', 20]])
    }))

    test('engagement: members start as given, are marked once they take part, and the warm-up carries it', () => withStore(async (s) => {
      const chat = { id: 'g_1', kind: 'group' as const, name: 'G', createdBy: 'u_1', createdAt: 5 }
      const m = (userId: string, engaged: boolean): Member => ({ chatId: 'g_1', userId, role: 'member', joinedAt: 5, fromSeq: 1, engaged })
      await s.createChat(chat, [m('u_1', true), m('u_2', false)])
      assert.deepEqual((await s.members('g_1')).map((x) => [x.userId, x.engaged]), [['u_1', true], ['u_2', false]])
      assert.equal(await s.setEngaged('g_1', 'u_2'), true)
      assert.equal(await s.setEngaged('g_1', 'u_9'), false)
      assert.deepEqual((await s.members('g_1')).map((x) => [x.userId, x.engaged]), [['u_1', true], ['u_2', true]])
      await s.addMembers([m('u_3', false)])
      assert.deepEqual((await s.allMemberships()).map((x) => [x.userId, x.engaged]).sort(), [['u_1', true], ['u_2', true], ['u_3', false]])
      assert.deepEqual(await s.periods('g_9', 'u_2'), [])
    }))

    test('user settings: stored whole, listed for the cache', () => withStore(async (s) => {
      assert.equal(await s.getSettings('u_1'), undefined)
      await s.putSettings('u_1', { readReceipts: false, lastSeen: 'nobody' })
      await s.putSettings('u_1', { readReceipts: false, lastSeen: 'chats', profile: 'contacts' })
      assert.deepEqual(await s.getSettings('u_1'), { readReceipts: false, lastSeen: 'chats', profile: 'contacts' })
      assert.deepEqual(await s.allSettings(), [{ userId: 'u_1', settings: { readReceipts: false, lastSeen: 'chats', profile: 'contacts' } }])
      // Settings kept before profiles had a setting read as they were (the service fills in the default).
      await s.putSettings('u_2', { readReceipts: true, lastSeen: 'everyone' })
      assert.deepEqual(await s.getSettings('u_2'), { readReceipts: true, lastSeen: 'everyone' })
    }))

    test('blocks: one direction each, idempotent', () => withStore(async (s) => {
      assert.equal(await s.block('u_1', 'u_2', 1), true)
      assert.equal(await s.block('u_1', 'u_2', 2), false)
      assert.equal(await s.block('u_2', 'u_1', 3), true)
      assert.deepEqual(await s.allBlocks(), [{ blocker: 'u_1', blocked: 'u_2' }, { blocker: 'u_2', blocked: 'u_1' }])
      assert.equal(await s.unblock('u_1', 'u_2'), true)
      assert.equal(await s.unblock('u_1', 'u_2'), false)
      assert.deepEqual(await s.allBlocks(), [{ blocker: 'u_2', blocked: 'u_1' }])
    }))

    test('chat settings: per user and chat, replaced whole, listed per user', () => withStore(async (s) => {
      const set = (mutedUntil: number | null, archived = false, pinnedAt: number | null = null): ChatSettings => ({ mutedUntil, archived, pinnedAt })
      assert.equal(await s.getChatSettings('u_1', 'c_1'), undefined)
      await s.putChatSettings('u_1', 'c_1', set(500))
      await s.putChatSettings('u_2', 'c_1', set(null, true))
      await s.putChatSettings('u_1', 'c_2', set(null, false, 77))
      assert.deepEqual(await s.getChatSettings('u_1', 'c_1'), set(500))
      assert.deepEqual(await s.getChatSettings('u_2', 'c_1'), set(null, true))
      assert.equal(await s.getChatSettings('u_1', 'c_3'), undefined)
      await s.putChatSettings('u_1', 'c_1', set(null))
      assert.deepEqual(await s.getChatSettings('u_1', 'c_1'), set(null))
      assert.deepEqual([...(await s.chatSettingsOf('u_1')).entries()].sort(), [['c_1', set(null)], ['c_2', set(null, false, 77)]])
      assert.deepEqual([...(await s.chatSettingsOf('u_9')).keys()], [])
    }))

    test('push targets: listed per device oldest first; the same id again is kept on its device and moves from another; removed one by one or all', () => withStore(async (s) => {
      const t = (id: string, deviceId: string, createdAt: number, more: Partial<PushTarget> = {}): PushTarget => ({ id, deviceId, userId: 'u_1', type: 'fcm', address: `token-${id}`, createdAt, ...more })
      assert.deepEqual(await s.addPushTarget(t('pt_b', 'dv_1', 20)), t('pt_b', 'dv_1', 20))
      await s.addPushTarget(t('pt_a', 'dv_1', 10, { type: 'apns', topic: 'org.example.app', sandbox: true }))
      await s.addPushTarget(t('pt_c', 'dv_2', 30, { type: 'webpush', p256dh: 'key', auth: 'secret' }))
      assert.deepEqual((await s.pushTargets('dv_1')).map((x) => x.id), ['pt_a', 'pt_b'])
      assert.deepEqual((await s.pushTargets('dv_1'))[0], t('pt_a', 'dv_1', 10, { type: 'apns', topic: 'org.example.app', sandbox: true }))
      assert.deepEqual((await s.pushTargets('dv_2'))[0], t('pt_c', 'dv_2', 30, { type: 'webpush', p256dh: 'key', auth: 'secret' }))
      // Registered again on the same device: the stored one stands.
      assert.equal((await s.addPushTarget(t('pt_b', 'dv_1', 99))).createdAt, 20)
      // Registered on another device: it moves.
      await s.addPushTarget(t('pt_b', 'dv_2', 40))
      assert.deepEqual((await s.pushTargets('dv_1')).map((x) => x.id), ['pt_a'])
      assert.deepEqual((await s.pushTargets('dv_2')).map((x) => x.id), ['pt_c', 'pt_b'])
      assert.deepEqual((await s.pushTargetDevices()).sort(), ['dv_1', 'dv_2'])
      assert.equal(await s.removePushTarget('dv_1', 'pt_b'), false, 'not this device\'s')
      assert.equal(await s.removePushTarget('dv_2', 'pt_b'), true)
      assert.equal(await s.removePushTarget('dv_2', 'pt_b'), false)
      assert.equal(await s.removePushTargets('dv_1'), 1)
      assert.deepEqual(await s.pushTargets('dv_1'), [])
      assert.deepEqual(await s.pushTargetDevices(), ['dv_2'])
    }))

    test('one-time codes: stored, attempts counted, deleted', () => withStore(async (s) => {
      await s.putCode({ phone: '+1', codeHash: 'h', expiresAt: 100, attempts: 0 })
      assert.equal(await s.countAttempt('+1'), 1)
      assert.equal(await s.countAttempt('+1'), 2)
      assert.deepEqual(await s.getCode('+1'), { phone: '+1', codeHash: 'h', expiresAt: 100, attempts: 2 })
      await s.putCode({ phone: '+1', codeHash: 'h2', expiresAt: 200, attempts: 0 })
      assert.equal((await s.getCode('+1'))?.attempts, 0)
      await s.deleteCode('+1')
      assert.equal(await s.getCode('+1'), undefined)
      assert.equal(await s.countAttempt('+1'), 0)
    }))
  })
}
