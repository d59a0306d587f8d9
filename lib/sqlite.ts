// SQLite through Node's built-in node:sqlite: no native module to build, so
// the same install runs on every supported Node (22.13 and later). This is
// the one module that loads it; it adds the two things the stores used from
// better-sqlite3 that node:sqlite lacks: transactions as wrapped functions
// (nested ones as savepoints) and a quiet load on Node 22, where node:sqlite
// is still marked experimental and would print a warning on every start.
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type { DatabaseSync } from 'node:sqlite'

export type SqlValue = null | number | bigint | string | NodeJS.ArrayBufferView

/**
 * A prepared statement. Rows come back as `unknown` for the caller to name
 * (integers are numbers: node:sqlite reads BigInts only when asked to).
 */
export interface Statement {
  run: (...params: SqlValue[]) => { changes: number, lastInsertRowid: number }
  get: (...params: SqlValue[]) => unknown
  all: (...params: SqlValue[]) => unknown[]
  iterate: (...params: SqlValue[]) => IterableIterator<unknown>
}

const sqlite = loadQuietly()

function loadQuietly (): typeof import('node:sqlite') {
  const emit = process.emitWarning
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    const kind = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type
    if (kind === 'ExperimentalWarning' && String(warning).startsWith('SQLite')) return
    Reflect.apply(emit, this, [warning, ...rest])
  } as typeof process.emitWarning
  try {
    return createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite')
  } finally {
    process.emitWarning = emit
  }
}

export interface OpenOptions {
  readOnly?: boolean
}

interface Batch { waiting: Array<{ resolve: (v: unknown) => void, reject: (e: unknown) => void, value: unknown }> }

export class SqliteDatabase {
  readonly #db: DatabaseSync
  #depth = 0
  #begin: Statement
  #commit: Statement
  #rollback: Statement
  /** The open group commit (see `grouped`), committed at the end of the event-loop turn. */
  #batch: Batch | undefined
  /** Inside a grouped function: its statements belong to the batch. */
  #inGroup = false
  #checkpointer: Worker | undefined
  readonly #path: string

  constructor (path: string, opts: OpenOptions = {}) {
    // Foreign keys stay a per-store choice (PRAGMA foreign_keys), as in SQLite itself.
    this.#path = path
    this.#db = new sqlite.DatabaseSync(path, { readOnly: opts.readOnly ?? false, enableForeignKeyConstraints: false })
    this.#begin = this.prepare('BEGIN')
    this.#commit = this.prepare('COMMIT')
    this.#rollback = this.prepare('ROLLBACK')
  }

  /**
   * A prepared statement. While a group commit is open, a write from outside
   * it commits the group first, so a write that returns is committed, as
   * without group commit.
   */
  prepare (sql: string): Statement {
    const st = this.#db.prepare(sql) as unknown as Statement
    const run = st.run.bind(st)
    return {
      run: (...params) => {
        if (this.#batch !== undefined && !this.#inGroup && this.#depth === 0) this.commitGroup()
        return run(...params)
      },
      get: st.get.bind(st),
      all: st.all.bind(st),
      iterate: st.iterate.bind(st)
    }
  }

  exec (sql: string): void {
    if (this.#batch !== undefined && !this.#inGroup && this.#depth === 0) this.commitGroup()
    this.#db.exec(sql)
  }

  /**
   * Group commit: `fn` runs now, in the transaction shared by every grouped
   * call of this event-loop turn (as a savepoint of it: a throw undoes only
   * its own writes, and rejects). The promise resolves once that transaction
   * commits, at the end of the turn, so one commit (one WAL append, one
   * fsync with synchronous=FULL) serves many callers. Resolved means
   * durable, exactly as for `transaction`. A write outside the group
   * meanwhile commits the group first.
   */
  grouped<R> (fn: () => R): Promise<R> {
    if (this.#depth > 0 && !this.#inGroup) return Promise.resolve(this.transaction(fn)())
    if (this.#batch === undefined) {
      this.#begin.run()
      this.#batch = { waiting: [] }
      setImmediate(() => this.commitGroup())
    }
    const batch = this.#batch
    const outer = this.#inGroup
    this.#inGroup = true
    try {
      const value = this.transaction(fn)()
      return new Promise<R>((resolve, reject) => batch.waiting.push({ resolve: resolve as (v: unknown) => void, reject, value }))
    } catch (err) {
      return Promise.reject(err)
    } finally {
      this.#inGroup = outer
    }
  }

  /** Commits the open group now (if any) and settles its callers. */
  commitGroup (): void {
    const batch = this.#batch
    if (batch === undefined) return
    this.#batch = undefined
    try {
      this.#commit.run()
    } catch (err) {
      try { this.#rollback.run() } catch {}
      for (const w of batch.waiting) w.reject(err)
      return
    }
    for (const w of batch.waiting) w.resolve(w.value)
  }

  /** Sets a pragma, e.g. `pragma('journal_mode = WAL')`. */
  pragma (setting: string): void {
    this.#db.exec(`PRAGMA ${setting}`)
  }

  /**
   * `fn` wrapped in a transaction: committed when it returns, rolled back when
   * it throws. A transaction begun inside another is a savepoint of it.
   * `fn` must be synchronous, like every call on this database.
   */
  transaction<A extends unknown[], R> (fn: (...args: A) => R): (...args: A) => R {
    return (...args: A): R => {
      // A transaction of its own, while a group is open: the group commits first.
      if (this.#batch !== undefined && !this.#inGroup && this.#depth === 0) this.commitGroup()
      const before = this.#depth
      // Inside a group its transaction is open: this one is a savepoint of it.
      const depth = this.#batch !== undefined && this.#inGroup ? Math.max(before, 1) : before
      const savepoint = `sp${depth}`
      if (depth === 0) this.#begin.run()
      else this.#db.exec(`SAVEPOINT ${savepoint}`)
      this.#depth = depth + 1
      try {
        const result = fn(...args)
        if (depth === 0) this.#commit.run()
        else this.#db.exec(`RELEASE ${savepoint}`)
        return result
      } catch (err) {
        if (depth > 0) {
          // An error SQLite ended the whole transaction for leaves no savepoint to roll back to.
          try { this.#db.exec(`ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`) } catch {}
        } else {
          // Some errors (a full disk, a busy database) end the transaction in SQLite itself;
          // then there is nothing to roll back. (isTransaction would tell, but only from Node 22.16.)
          try { this.#rollback.run() } catch {}
        }
        throw err
      } finally {
        this.#depth = before
      }
    }
  }

  /**
   * WAL mode: checkpoints move to a worker thread with its own connection
   * (lib/checkpoint-worker.ts), every `intervalMs`. With SQLite's automatic
   * checkpoint, the commit that crosses 1,000 WAL pages copies them into the
   * database file and fsyncs it, on this thread: half of what a commit cost
   * (bench/README.md). A PASSIVE checkpoint never blocks this connection.
   */
  checkpointInBackground (intervalMs: number): void {
    if (this.#checkpointer !== undefined || this.#path === ':memory:') return
    this.pragma('wal_autocheckpoint = 0')
    this.#checkpointer = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData: { path: this.#path, intervalMs } })
    this.#checkpointer.unref()
    // A checkpointer that fails leaves the WAL to grow until the next start: said, and the automatic checkpoint comes back.
    this.#checkpointer.on('error', (err) => {
      this.#checkpointer = undefined
      try { this.pragma('wal_autocheckpoint = 1000') } catch {}
      process.emitWarning(`mqchat: the background checkpoint of ${this.#path} failed (${err.message}); SQLite checkpoints on commit again`)
    })
  }

  close (): void {
    this.commitGroup()
    this.#checkpointer?.postMessage('stop')
    this.#checkpointer = undefined
    this.#db.close()
  }
}

/**
 * node:sqlite's rows are objects without a prototype. A store hands out
 * plain objects, as the MongoDB adapter does, so rows it returns as they
 * are go through these.
 */
export function plainRow<T> (row: unknown): T | undefined {
  return row === undefined ? undefined : { ...(row as object) } as T
}
export function plainRows<T> (rows: unknown[]): T[] {
  return rows.map((r) => ({ ...(r as object) }) as T)
}
