// Counts what outsiders hold at once (connections not yet signed in, say),
// overall and per client address, and refuses past either bound.

export class Admission {
  #total = 0
  readonly #byAddress = new Map<string, number>()

  constructor (readonly maxTotal: number, readonly maxPerAddress: number) {}

  get total (): number { return this.#total }

  /** Takes one place for `address`; returns its release (idempotent), or undefined when a bound is reached. */
  take (address: string): (() => void) | undefined {
    const mine = this.#byAddress.get(address) ?? 0
    if (this.#total >= this.maxTotal || mine >= this.maxPerAddress) return undefined
    this.#total++
    this.#byAddress.set(address, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total--
      const n = (this.#byAddress.get(address) ?? 1) - 1
      if (n <= 0) this.#byAddress.delete(address)
      else this.#byAddress.set(address, n)
    }
  }
}

/**
 * The per-address bound to use: none behind a load balancer
 * (MQCHAT_TRUST_PROXY set), whose address every connection then has.
 */
export const perAddressBound = (limit: number, trustProxy: string | undefined): number =>
  (trustProxy ?? '') === '' ? limit : Number.MAX_SAFE_INTEGER
