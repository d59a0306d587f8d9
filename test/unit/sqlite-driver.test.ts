// lib/sqlite.ts on real node:sqlite: transactions (commit, rollback, nested
// savepoints), plain rows, and a quiet load on Node 22.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { SqliteDatabase, plainRow, plainRows } from '../../lib/sqlite.js'
import { tempDir, waitFor } from '../helpers/server.js'

function open (file = join(tempDir('mqchat-sqlite-'), 't.db')): SqliteDatabase {
  const db = new SqliteDatabase(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)')
  return db
}
const keys = (db: SqliteDatabase): string[] => (db.prepare('SELECT k FROM t ORDER BY k').all() as Array<{ k: string }>).map((r) => r.k)

test('a transaction commits when its function returns, with the function\'s result and arguments', () => {
  const db = open()
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const both = db.transaction((a: string, b: string) => { put.run(a, 1); put.run(b, 2); return `${a}+${b}` })
  assert.equal(both('a', 'b'), 'a+b')
  assert.deepEqual(keys(db), ['a', 'b'])
  db.close()
})

test('a transaction whose function throws is rolled back whole, the error reaches the caller, and the next one works', () => {
  const db = open()
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const failing = db.transaction(() => { put.run('x', 1); put.run('x', 2) })
  assert.throws(failing, /UNIQUE constraint failed/)
  assert.deepEqual(keys(db), [], 'the first insert was rolled back')
  assert.throws(db.transaction(() => { put.run('y', 1); throw new Error('no') }), /no/)
  assert.deepEqual(keys(db), [])
  db.transaction(() => { put.run('z', 1) })()
  assert.deepEqual(keys(db), ['z'])
  db.close()
})

test('a transaction inside another is a savepoint: its failure undoes only its own writes when the outer one goes on', () => {
  const db = open()
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const inner = db.transaction((k: string) => { put.run(k, 1); throw new Error('inner') })
  const outer = db.transaction(() => {
    put.run('outer', 1)
    assert.throws(() => inner('inner'), /inner/)
    db.transaction(() => { put.run('inner-ok', 1) })()
  })
  outer()
  assert.deepEqual(keys(db), ['inner-ok', 'outer'])
  // An outer failure undoes its committed savepoints too.
  assert.throws(db.transaction(() => { db.transaction(() => { put.run('gone', 1) })(); throw new Error('outer') }), /outer/)
  assert.deepEqual(keys(db), ['inner-ok', 'outer'])
  db.close()
})

test('rows: node:sqlite gives objects without a prototype; plainRow and plainRows give plain ones, equal to literals', () => {
  const db = open()
  db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('a', 7)
  const raw = db.prepare('SELECT k, v FROM t').get()
  assert.equal(Object.getPrototypeOf(raw), null)
  assert.notDeepStrictEqual(raw, { k: 'a', v: 7 })
  assert.deepStrictEqual(plainRow(raw), { k: 'a', v: 7 })
  assert.equal(plainRow(db.prepare('SELECT k, v FROM t WHERE k = ?').get('none')), undefined)
  assert.deepStrictEqual(plainRows(db.prepare('SELECT k, v FROM t').all()), [{ k: 'a', v: 7 }])
  db.close()
})

test('loading it writes no warning (node:sqlite is experimental on Node 22 and would say so on every start)', () => {
  const module = pathToFileURL(resolve(fileURLToPath(import.meta.url), '../../../lib/sqlite.js')).href
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { SqliteDatabase } = await import(${JSON.stringify(module)}); new SqliteDatabase(':memory:').close(); process.emitWarning('still reported', 'ExperimentalWarning')`], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.doesNotMatch(r.stderr, /SQLite/, 'no SQLite warning')
  assert.match(r.stderr, /ExperimentalWarning: still reported/, 'other warnings are still written')
})

test('group commit: the grouped writes of one turn commit together at its end; each caller learns once its write is committed', async () => {
  const file = join(tempDir('mqchat-sqlite-'), 't.db')
  const db = open(file)
  const other = open(file)
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const settled: string[] = []
  const a = db.grouped(() => { put.run('a', 1); return 'A' }).then((v) => { settled.push(v); return v })
  const b = db.grouped(() => { put.run('b', 2); return 'B' }).then((v) => { settled.push(v); return v })
  // Same turn: this connection sees its own writes, another one nothing yet, and no caller has been told.
  assert.deepEqual(keys(db), ['a', 'b'])
  assert.deepEqual(keys(other), [], 'not committed before the end of the turn')
  await Promise.resolve()
  assert.deepEqual(settled, [], 'nobody is told before the commit')
  assert.deepEqual(await Promise.all([a, b]), ['A', 'B'])
  assert.deepEqual(keys(other), ['a', 'b'], 'committed once the callers are told')
  other.close()
  db.close()
})

test('group commit: a grouped call that throws is rejected and undoes only its own writes', async () => {
  const db = open()
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const ok = db.grouped(() => put.run('kept', 1))
  const failing = db.grouped(() => { put.run('gone', 1); put.run('gone', 2) })
  await assert.rejects(failing, /UNIQUE constraint failed/)
  await ok
  assert.deepEqual(keys(db), ['kept'])
  db.close()
})

test('group commit: a write outside the group, or a transaction of its own, commits the group first', async () => {
  const file = join(tempDir('mqchat-sqlite-'), 't.db')
  const db = open(file)
  const other = open(file)
  const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
  const grouped = db.grouped(() => put.run('grouped', 1))
  put.run('plain', 1)
  assert.deepEqual(keys(other), ['grouped', 'plain'], 'a plain write returns committed, and the group before it')
  await grouped
  const again = db.grouped(() => put.run('grouped-2', 1))
  db.transaction(() => put.run('own', 1))()
  assert.deepEqual(keys(other), ['grouped', 'grouped-2', 'own', 'plain'])
  await again
  other.close()
  db.close()
})

test('a background checkpoint copies the WAL into the database file off the writer\'s thread; without it, nothing does', async () => {
  const size = (f: string): number => statSync(f).size
  const write = (db: SqliteDatabase): void => {
    const put = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)')
    db.transaction(() => { for (let i = 0; i < 3000; i++) put.run(`k${i}-${'x'.repeat(200)}`, i) })()
  }
  const plain = join(tempDir('mqchat-sqlite-'), 't.db')
  const without = open(plain)
  without.pragma('wal_autocheckpoint = 0')
  const plainStart = size(plain)
  write(without)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(size(plain), plainStart, 'no checkpoint: the rows are only in the WAL')
  without.close()

  const file = join(tempDir('mqchat-sqlite-'), 't.db')
  const db = open(file)
  db.checkpointInBackground(20)
  const start = size(file)
  write(db)
  await waitFor('the database file to take the WAL\'s pages', () => size(file) > start + 500_000 || undefined)
  assert.equal(keys(db).length, 3000)
  db.close()
})
