// Account erasure (docs/protocol.md, "Account"): the right to be forgotten.
// Confirmed with a fresh registration code, it
//   - revokes every device at once (connections close, tokens stop working)
//     and deletes their keys and push targets;
//   - leaves every group (an admin is handed over as when leaving) and
//     closes every direct chat, whose other member gets an `account_deleted`
//     chat event;
//   - turns every message the user sent into a tombstone (no body, no media),
//     and deletes their reactions and read watermarks, at once and again a
//     minute later (for messages that were in flight);
//   - deletes the media only they owned, their profile and avatar, their
//     contact list, their number from everyone else's, their settings,
//     blocks, and the user record with the phone number.
import type { Logger } from 'pino'
import type { ChatService } from './chats.js'
import type { DeviceService } from './devices.js'
import type { BlockService } from './blocks.js'
import type { SettingsService } from './settings.js'
import type { MediaService } from './media.js'
import type { KeyDirectory } from './keys.js'
import type { PushTargets } from './push-targets.js'
import type { RegistrationService } from './registration.js'
import { DomainError, notFound } from './errors.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'
import type { DirectoryStore, HistoryStore, ProfileStore, User } from '../store/types.js'
import { isEncryptedBody } from '../bridge/e2ee.js'
import { chatSettingsJson } from './chat-settings.js'
import { deviceJson } from './devices.js'
import { settingsJson } from './settings.js'

/** The second tombstoning pass, for messages that were on their way when the account was erased. */
export const SECOND_PASS_MS = 60_000

export interface AccountDeps {
  directory: DirectoryStore
  history: HistoryStore
  profiles: ProfileStore
  devices: DeviceService
  chats: ChatService
  blocks: BlockService
  settings: SettingsService
  media: MediaService
  keys: KeyDirectory
  push: PushTargets
  registration: RegistrationService
  /** Exports one user may make per hour (each reads all their chats). */
  exportsPerHour: number
  counters?: CounterFactory
  log: Logger
}

export interface Erasure { chats: number, messages: number, media: number }

export class AccountService {
  #historyChanged: (chats: string[]) => Promise<void> = async () => {}
  readonly #exports: Counter
  constructor (private readonly d: AccountDeps) {
    this.#exports = (d.counters ?? memoryCounters)('exports', d.exportsPerHour, 3_600_000)
  }

  /** Counts an export against the hourly allowance; refuses (429) past it. */
  async allowExport (userId: string): Promise<void> {
    if (!await this.#exports.hit(userId)) throw new DomainError('rate_limited', `at most ${this.d.exportsPerHour} exports an hour`, 429)
  }

  /** Cached copies of these chats' messages are stale (their sender was erased): how to drop them, on every node. */
  historyChangedWith (fn: (chats: string[]) => Promise<void>): void { this.#historyChanged = fn }

  /** DELETE /v1/me: the code proves the caller holds the account's number now. */
  async eraseConfirmed (userId: string, code: string, ip: string): Promise<Erasure> {
    const user = await this.#user(userId)
    await this.d.registration.confirm(user.phone, code, ip)
    return await this.#erase(user)
  }

  /** Erases an account (an operator decided). */
  async erase (userId: string): Promise<Erasure> { return await this.#erase(await this.#user(userId)) }

  async #user (userId: string): Promise<User> {
    const user = await this.d.directory.getUser(userId)
    if (user === undefined) throw notFound('user')
    return user
  }

  async #erase (user: User): Promise<Erasure> {
    const d = this.d
    const userId = user.id
    // Devices first: nothing more is accepted from them.
    const devices = d.devices.list(userId).map((dev) => dev.id)
    for (const id of devices) await d.devices.revoke(userId, id)
    // Revocation drops keys and push targets in the background; here it is done before answering.
    for (const id of devices) {
      await d.keys.dropDevice(id)
      await d.push.dropDevice(id)
    }
    const chats = await d.chats.accountGone(userId)
    const messages = await this.tombstone(userId, chats)
    const gone = await d.media.eraseOwner(userId)
    await d.profiles.deleteProfile(userId)
    await d.profiles.dropContacts(userId)
    await d.profiles.forgetPhone(user.phone)
    await d.directory.eraseUser(userId, user.phone)
    await d.directory.compact?.()
    d.devices.forgetUser(userId)
    await d.settings.refresh(userId)
    await d.blocks.reload()
    d.log.info({ user: userId, chats: chats.length, messages, media: gone.length }, 'account erased')
    // Messages still on their way (a chat stream, a group commit) when the first pass ran get the second.
    setTimeout(() => {
      this.tombstone(userId, chats).then(async () => await d.directory.compact?.(), (err: unknown) => d.log.error({ err, user: userId }, 'the second pass of an erasure failed'))
    }, SECOND_PASS_MS).unref()
    return { chats: chats.length, messages, media: gone.length }
  }

  /**
   * The account as one JSON document, produced piece by piece (GET
   * /v1/me/export streams it): profile, settings, devices (no secrets),
   * contact list, and each chat with the membership and the messages the
   * user sent there in plaintext (end-to-end encrypted ones are ciphertext
   * the server cannot read, so they are left out, counted). Each chat starts
   * on a line of its own.
   */
  async * exportOf (userId: string, now = Date.now()): AsyncGenerator<string> {
    const d = this.d
    const user = await this.#user(userId)
    const profile = await d.profiles.getProfile(userId)
    const head = {
      format: 'mqchat-export-1',
      exported_at: now,
      user: { user_id: user.id, phone: user.phone, created_at: user.createdAt },
      profile: { name: profile?.name ?? null, about: profile?.about ?? null, avatar: profile?.avatar ?? null },
      settings: settingsJson(d.settings.of(userId)),
      chat_settings: Object.fromEntries([...(await d.directory.chatSettingsOf(userId))].map(([c, s]) => [c, chatSettingsJson(s)])),
      devices: d.devices.list(userId).map(deviceJson),
      contacts: await d.profiles.contacts(userId),
      blocked: d.blocks.list(userId)
    }
    yield JSON.stringify(head).slice(0, -1) + ',"chats":['
    let first = true
    for (const view of await d.chats.listFor(userId)) {
      const me = view.members.find((m) => m.userId === userId)
      const chatHead = { chat_id: view.id, kind: view.kind, name: view.name, role: me?.role ?? null, joined_at: me?.joinedAt ?? null, members: view.members.map((m) => m.userId) }
      yield `${first ? '' : ','}\n${JSON.stringify(chatHead).slice(0, -1)},"messages":[`
      first = false
      let after = 0
      let n = 0
      let encrypted = 0
      for (;;) {
        const page = await d.history.after(view.id, after, 500)
        for (const m of page) {
          if (m.senderUser !== userId || m.deletedAt || m.type === 'session') continue
          if (isEncryptedBody(m.body)) { encrypted++; continue }
          yield `${n++ === 0 ? '' : ','}{"seq":${m.seq},"id":${JSON.stringify(m.clientId)},"type":${JSON.stringify(m.type)},"ts":${m.serverTs}${m.ref !== null && m.ref !== undefined ? `,"ref":${m.ref}` : ''}${m.media ? `,"media":${JSON.stringify(m.media)}` : ''}${m.editedAt ? `,"edited_at":${m.editedAt}` : ''},"body":${m.body}}`
        }
        if (page.length < 500) break
        after = page.at(-1)!.seq
      }
      yield `],"encrypted_messages_left_out":${encrypted}}`
    }
    yield '\n]}\n'
  }

  /** How many chats an export will hold (a client's progress bar). */
  chatCount (userId: string): number { return this.d.chats.chatIdsOf(userId).size }

  private async tombstone (userId: string, chats: string[]): Promise<number> {
    const at = Date.now()
    let n = 0
    for (const chatId of chats) n += await this.d.history.eraseSender(chatId, userId, at)
    await this.#historyChanged(chats)
    return n
  }
}
