// SQLite through Node's built-in node:sqlite: no native module to build, so
// the same install runs on every supported Node (22.13 and later). This is
// the one module that loads it; it adds the two things the stores used from
// better-sqlite3 that node:sqlite lacks: transactions as wrapped functions
// (nested ones as savepoints) and a quiet load on Node 22, where node:sqlite
// is still marked experimental and would print a warning on every start.
import { createRequire } from 'node:module'
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

export class SqliteDatabase {
  readonly #db: DatabaseSync
  #depth = 0
  #begin: Statement
  #commit: Statement
  #rollback: Statement

  constructor (path: string, opts: OpenOptions = {}) {
    // Foreign keys stay a per-store choice (PRAGMA foreign_keys), as in SQLite itself.
    this.#db = new sqlite.DatabaseSync(path, { readOnly: opts.readOnly ?? false, enableForeignKeyConstraints: false })
    this.#begin = this.prepare('BEGIN')
    this.#commit = this.prepare('COMMIT')
    this.#rollback = this.prepare('ROLLBACK')
  }

  prepare (sql: string): Statement {
    return this.#db.prepare(sql) as unknown as Statement
  }

  exec (sql: string): void {
    this.#db.exec(sql)
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
      const depth = this.#depth
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
          this.#db.exec(`ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`)
        } else {
          // Some errors (a full disk, a busy database) end the transaction in SQLite itself;
          // then there is nothing to roll back. (isTransaction would tell, but only from Node 22.16.)
          try { this.#rollback.run() } catch {}
        }
        throw err
      } finally {
        this.#depth = depth
      }
    }
  }

  close (): void {
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
