// Runs aedes-persistence's own abstract suite (the abstract.js shipped in that
// package, unmodified) against mqchat's durable SQLite persistence, each case
// on a fresh database file.
import { test } from 'node:test'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqlitePersistence } from '../../broker/persistence/sqlite.js'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: object) => void

const dir = mkdtempSync(join(tmpdir(), 'mqchat-persist-'))
let n = 0
// A checkpoint thread may still be closing its file as the process exits: the removal retries.
process.on('exit', () => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }))

abstractPersistence({
  test,
  testAsync: true,
  persistence: () => new SqlitePersistence({ path: join(dir, `case-${++n}.db`) })
})
