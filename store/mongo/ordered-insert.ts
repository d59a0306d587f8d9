// Runs of documents (each run one chat's next messages, in seq order) from
// one event-loop turn go to the server as one ordered insertMany. Ordered,
// because a run must be stored as a prefix: the server stops at the first
// document it refuses, so a refused message never leaves a later seq of its
// chat stored above a hole. A run cut short by another run's refusal is
// simply not stored past that point, and its writer sends the rest again.
//
// The per-command cost is most of an insert's on FerretDB (measured on its
// PostgreSQL backend: about 0.33 ms of its CPU for one document, 0.06 ms per
// document in a batch of 8, 0.03 in a batch of 64; ordered and unordered
// cost the same), which is why a turn's runs share one command.
import { MongoBulkWriteError, MongoServerError, MongoWriteConcernError, type Collection, type Document, type OptionalUnlessRequiredId } from 'mongodb'

/**
 * What became of a run: its first `stored` documents are stored; the next
 * one was refused with `error` when it is set, or never tried (another
 * run's document before it was refused).
 */
export interface RunOutcome { stored: number, error?: MongoServerError }

interface Run<T> { docs: Array<OptionalUnlessRequiredId<T>>, resolve: (o: RunOutcome) => void, reject: (err: unknown) => void }

export class OrderedInsert<T extends Document> {
  #runs: Array<Run<T>> = []

  constructor (private readonly collection: Collection<T>) {}

  /** Resolves with the run's outcome; rejects when nothing can be said of any document (a network error, a write concern error). */
  insert (docs: Array<OptionalUnlessRequiredId<T>>): Promise<RunOutcome> {
    return new Promise((resolve, reject) => {
      if (this.#runs.length === 0) setImmediate(() => { this.flush() })
      this.#runs.push({ docs, resolve, reject })
    })
  }

  private flush (): void {
    const runs = this.#runs
    this.#runs = []
    const all = runs.flatMap((r) => r.docs)
    const settle = (refusedAt: number, error?: MongoServerError): void => {
      let start = 0
      for (const r of runs) {
        const end = start + r.docs.length
        const stored = Math.max(0, Math.min(refusedAt, end) - start)
        r.resolve(refusedAt >= start && refusedAt < end && error ? { stored, error } : { stored })
        start = end
      }
    }
    const insert = all.length === 1 ? this.collection.insertOne(all[0]!) : this.collection.insertMany(all, { ordered: true })
    insert.then(
      () => settle(all.length),
      (err: unknown) => {
        if (all.length === 1 && err instanceof MongoServerError && !(err instanceof MongoWriteConcernError)) {
          settle(0, err)
          return
        }
        const first = err instanceof MongoBulkWriteError ? (Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors])[0] : undefined
        if (first === undefined) {
          // Not a document's error: nobody is told "stored".
          for (const r of runs) r.reject(err)
          return
        }
        // Ordered: every document before the refused one is stored, none after it.
        settle(first.index, new MongoServerError({ message: first.errmsg ?? 'insert failed', code: first.code, errmsg: first.errmsg }))
      }
    )
  }
}
