// Runs async tasks one at a time per key, in call order. The chat ingest uses
// it so that a chat's seqs follow the order publishes arrived, even though
// aedes may hand several packets of one socket read to the hooks concurrently.
export class KeyedQueue {
  #tails = new Map<string, Promise<unknown>>()

  run<T> (key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve()
    const next = prev.then(task, task)
    const tail = next.then(() => undefined, () => undefined)
    this.#tails.set(key, tail)
    void tail.then(() => { if (this.#tails.get(key) === tail) this.#tails.delete(key) })
    return next
  }
}
