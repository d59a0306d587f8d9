// Blocking: a user blocks another. Neither can then message the other in their
// direct chat (the blocked one gets `blocked`), and the blocked user no longer
// sees the blocker's presence or typing. Groups they share are unaffected.
import type { DirectoryStore } from '../store/types.js'
import { DomainError } from './errors.js'

export class BlockService {
  #pairs = new Set<string>()
  #notify: () => Promise<void> = async () => {}
  constructor (private readonly directory: DirectoryStore) {}

  /** Cluster: block changes are announced to the other nodes through this (they reload all blocks). */
  notifyWith (notify: () => Promise<void>): void { this.#notify = notify }

  async init (): Promise<void> {
    const rows = await this.directory.allBlocks()
    this.#pairs.clear()
    for (const { blocker, blocked } of rows) this.#pairs.add(`${blocker}\n${blocked}`)
  }

  /** Whether `blocker` blocked `blocked`. */
  has (blocker: string, blocked: string): boolean { return this.#pairs.has(`${blocker}\n${blocked}`) }

  /** Blocked users of a blocker. */
  list (blocker: string): string[] {
    const out: string[] = []
    for (const pair of this.#pairs) {
      const [a, b] = pair.split('\n')
      if (a === blocker) out.push(b)
    }
    return out.sort()
  }

  async block (blocker: string, blocked: string): Promise<void> {
    if (blocker === blocked) throw new DomainError('bad_request', 'you cannot block yourself')
    await this.directory.block(blocker, blocked, Date.now())
    this.#pairs.add(`${blocker}\n${blocked}`)
    await this.#notify()
  }

  async unblock (blocker: string, blocked: string): Promise<void> {
    await this.directory.unblock(blocker, blocked)
    this.#pairs.delete(`${blocker}\n${blocked}`)
    await this.#notify()
  }

  /** Reads every block again (an erased account's are gone), here and on the other nodes. */
  async reload (): Promise<void> {
    await this.init()
    await this.#notify()
  }

  /** Refuses a direct message between two users when either blocked the other. */
  checkDirect (sender: string, recipient: string): void {
    if (this.has(recipient, sender)) throw new DomainError('blocked', 'this user has blocked you', 403)
    if (this.has(sender, recipient)) throw new DomainError('blocked', 'you have blocked this user; unblock them to write', 403)
  }
}
