// Naming users: by id, or by phone number. A phone number is enough to learn
// a user id (and, with it, to open a chat or ask for presence), so every
// number looked up that is not on the caller's contact list (the address
// book they uploaded, core/contacts.ts) costs one from an hourly and a daily
// allowance, whether or not it is registered: an account cannot walk the
// numbering plan, and contact discovery is the one way to learn about many
// numbers at once. Naming a user by id costs nothing (ids are learnt from
// chats, not guessed).
import type { DirectoryStore, ProfileStore } from '../store/types.js'
import { DomainError } from './errors.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'

export class UserLookup {
  #hourly: Counter
  #daily: Counter

  constructor (
    private readonly directory: DirectoryStore,
    private readonly contacts: ProfileStore,
    opts: {
      /** Phone numbers off the contact list one user may look up per hour, and per day. */
      phoneLookupsPerHour: number
      phoneLookupsPerDay: number
      /** Where lookups are counted (default: in memory; the cluster profile: Redis). */
      counters?: CounterFactory
    }
  ) {
    const counters = opts.counters ?? memoryCounters
    this.#hourly = counters('phone-lookups', opts.phoneLookupsPerHour, 3_600_000)
    this.#daily = counters('phone-lookups-day', opts.phoneLookupsPerDay, 86_400_000)
  }

  /** Charges `n` lookups of numbers off `by`'s contact list; refuses (429) past either allowance. */
  async charge (by: string, n: number): Promise<void> {
    if (n === 0) return
    if (!await this.#hourly.hit(by, n) || !await this.#daily.hit(by, n)) {
      throw new DomainError('rate_limited', 'too many phone numbers looked up outside your contacts; name users by id, upload your contacts, or try again later', 429)
    }
  }

  /** The user id a reference names: `u_…` as it is (callers check it as they need), `+…` by a lookup (charged to `by` unless the number is one of their contacts). */
  async resolve (by: string, ref: string): Promise<string> {
    if (!ref.startsWith('+')) return ref
    if (!await this.contacts.hasContact(by, ref)) await this.charge(by, 1)
    const user = await this.directory.getUserByPhone(ref)
    if (!user) throw new DomainError('unknown_user', `no user with phone ${ref}`, 404)
    return user.id
  }

  /** Resolves a list in order; the first refusal (unknown, or over the allowance) refuses the whole list. */
  async resolveAll (by: string, refs: string[]): Promise<string[]> {
    const out: string[] = []
    for (const ref of refs) out.push(await this.resolve(by, ref))
    return out
  }
}
