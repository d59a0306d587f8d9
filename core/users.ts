// Naming users: by id, or by phone number. A phone number is enough to learn
// a user id (and, with it, to open a chat or ask for presence), so every
// number looked up costs one from an hourly allowance per user, whether or
// not it is registered: an account cannot walk the numbering plan. Naming a
// user by id costs nothing (ids are learnt from chats, not guessed).
import type { DirectoryStore } from '../store/types.js'
import { DomainError } from './errors.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'

export class UserLookup {
  #lookups: Counter

  constructor (
    private readonly directory: DirectoryStore,
    opts: {
      /** Phone numbers one user may look up per hour. */
      phoneLookupsPerHour: number
      /** Where lookups are counted (default: in memory; the cluster profile: Redis). */
      counters?: CounterFactory
    }
  ) {
    this.#lookups = (opts.counters ?? memoryCounters)('phone-lookups', opts.phoneLookupsPerHour, 3_600_000)
  }

  /** The user id a reference names: `u_…` as it is (callers check it as they need), `+…` by a lookup charged to `by`. */
  async resolve (by: string, ref: string): Promise<string> {
    if (!ref.startsWith('+')) return ref
    if (!await this.#lookups.hit(by)) throw new DomainError('rate_limited', 'too many phone numbers looked up this hour; name users by id, or try again later', 429)
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
