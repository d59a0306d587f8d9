// Contact discovery (docs/protocol.md, "Contacts"): a user uploads phone
// numbers, their address book, and learns which are registered, with the
// users' ids and the profiles they may see. The uploaded numbers are kept:
// they are the user's contact list, which decides who is a "contact" for
// profile privacy, and numbers on it are free to name elsewhere.
//
// Numbers, not hashes: the space of phone numbers is small enough that a
// hash of one is reversed by trying them all, so hashing would only look
// private. The numbers travel over TLS and are kept as the contact list
// (deleted with the account, and from everyone's lists when a number's
// account is erased).
//
// What an account can learn is bounded: a full upload (replacing the list)
// once an hour (MQCHAT_CONTACT_SYNCS_PER_HOUR) of at most MQCHAT_CONTACTS_MAX
// numbers, of which at most MQCHAT_CONTACTS_NEW_PER_DAY a day may be new to
// the list; single lookups (added to the list) share the hourly and daily
// allowance of phone lookups with chat creation and blocking (core/users.ts).
// Every answer waits until MQCHAT_DISCOVERY_ANSWER_MS after the request, and
// does the same store work for every number, so its timing says nothing
// about which numbers are registered.
import { setTimeout as sleep } from 'node:timers/promises'
import { DomainError } from './errors.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'
import type { DirectoryStore, ProfileStore } from '../store/types.js'
import type { ProfileService, VisibleProfile } from './profiles.js'
import type { UserLookup } from './users.js'
import { PHONE_PATTERN } from './registration.js'

export interface ContactOptions {
  max: number
  syncsPerHour: number
  newPerDay: number
  answerMs: number
  counters?: CounterFactory
}

const PHONE = new RegExp(PHONE_PATTERN)
/** Numbers one single lookup (not a full upload) may carry. */
export const MAX_SINGLE = 10

export interface Discovered { phone: string, userId: string, profile: VisibleProfile }

export class ContactService {
  readonly #syncs: Counter
  readonly #newNumbers: Counter

  constructor (
    private readonly store: ProfileStore,
    private readonly directory: DirectoryStore,
    private readonly profiles: ProfileService,
    private readonly users: UserLookup,
    private readonly opts: ContactOptions
  ) {
    const counters = opts.counters ?? memoryCounters
    this.#syncs = counters('contact-syncs', opts.syncsPerHour, 3_600_000)
    this.#newNumbers = counters('contacts-new', opts.newPerDay, 86_400_000)
  }

  /**
   * Uploads numbers and answers which are registered. `replace`: they are
   * the whole contact list (a full sync); otherwise they are added to it
   * (single lookups).
   */
  async discover (userId: string, phones: string[], replace: boolean): Promise<{ registered: Discovered[], contacts: number }> {
    const started = Date.now()
    try {
      const wanted = [...new Set(phones)]
      const bad = wanted.find((p) => !PHONE.test(p))
      if (bad !== undefined) throw new DomainError('bad_request', `${bad} is not a phone number in +E.164 form`, 400)
      if (!replace && wanted.length > MAX_SINGLE) throw new DomainError('bad_request', `a lookup carries at most ${MAX_SINGLE} numbers; upload the whole list with "replace": true`, 400)
      if (wanted.length > this.opts.max) throw new DomainError('limit_reached', `a contact list holds at most ${this.opts.max} numbers`, 409)
      const before = new Set(await this.store.contacts(userId))
      const fresh = wanted.filter((p) => !before.has(p))
      if (replace) {
        if (!await this.#syncs.hit(userId)) throw new DomainError('rate_limited', `the contact list may be uploaded ${this.opts.syncsPerHour} time(s) an hour`, 429)
        if (fresh.length > 0 && !await this.#newNumbers.hit(userId, fresh.length)) throw new DomainError('rate_limited', `at most ${this.opts.newPerDay} numbers new to your contact list a day`, 429)
      } else {
        if (before.size + fresh.length > this.opts.max) throw new DomainError('limit_reached', `a contact list holds at most ${this.opts.max} numbers`, 409)
        await this.users.charge(userId, fresh.length)
      }
      const found = await this.directory.usersByPhones(wanted)
      // The same profile read for every number: ids of the registered, and the numbers themselves for the others (they match nothing).
      const byPhone = new Map(found.map((u) => [u.phone, u.id]))
      const visible = new Map((await this.profiles.view(userId, wanted.map((p) => byPhone.get(p) ?? p))).map((v) => [v.userId, v]))
      const contacts = replace ? (await this.store.setContacts(userId, wanted), wanted.length) : await this.store.addContacts(userId, wanted)
      const registered: Discovered[] = []
      for (const phone of wanted) {
        const id = byPhone.get(phone)
        const profile = id === undefined ? undefined : visible.get(id)
        if (id !== undefined && profile !== undefined) registered.push({ phone, userId: id, profile })
      }
      return { registered, contacts }
    } finally {
      // Refusals too: how long an answer took tells nothing.
      const left = this.opts.answerMs - (Date.now() - started)
      if (left > 0) await sleep(left)
    }
  }

  async list (userId: string): Promise<string[]> { return await this.store.contacts(userId) }
}
