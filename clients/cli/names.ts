// How the CLI names users: by their profile's display name where the user
// lets us see it, else by their phone number when it is on our contact list
// (we know it already), else by their id. Profiles are fetched in batches of
// up to 100 (GET /v1/profiles) for the ids a command shows, once each.
import { call } from './http.js'

interface ProfileJson { user_id: string, name: string | null, phone?: string }

const BATCH = 100
const USER_ID = /^u_[0-9a-f]{16}$/

export class Names {
  readonly #labels = new Map<string, string>()

  constructor (private readonly p: { server: string, token: string }) {}

  /** Fetches the names of the ids not known yet (a failure leaves them as ids: names are a nicety). */
  async load (ids: Iterable<unknown>): Promise<void> {
    const wanted = [...new Set([...ids].filter((id): id is string => typeof id === 'string' && USER_ID.test(id) && !this.#labels.has(id)))]
    for (let i = 0; i < wanted.length; i += BATCH) {
      const batch = wanted.slice(i, i + BATCH)
      for (const id of batch) this.#labels.set(id, id)
      try {
        const r = await call<{ profiles: ProfileJson[] }>(this.p.server, 'GET', `/v1/profiles?users=${batch.join(',')}`, { token: this.p.token })
        for (const pr of r.profiles) this.learn(pr.user_id, pr.name, pr.phone)
      } catch {}
    }
  }

  /** What a `profile` event or a profile answer says of a user. */
  learn (userId: string, name: string | null | undefined, phone?: string): void {
    this.#labels.set(userId, name ?? phone ?? (this.#labels.get(userId)?.startsWith('+') === true ? this.#labels.get(userId)! : userId))
  }

  /** The user's label: name, else phone, else id. */
  label = (userId: unknown): string => typeof userId === 'string' ? this.#labels.get(userId) ?? userId : String(userId)

  /** The user ids an event or message names. */
  static idsOf (e: Record<string, unknown>): string[] {
    const out: string[] = []
    for (const k of ['from', 'by', 'user']) if (typeof e[k] === 'string') out.push(e[k] as string)
    if (Array.isArray(e.users)) for (const u of e.users) if (typeof u === 'string') out.push(u)
    return out
  }
}
