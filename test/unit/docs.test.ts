// The README's configuration table and the protocol's error codes stay current.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'
import { OPTIONS, configTable } from '../../lib/config.js'

const root = resolve(fileURLToPath(import.meta.url), '../../../..')
const readme = readFileSync(resolve(root, 'README.md'), 'utf8')
const protocol = readFileSync(resolve(root, 'docs/protocol.md'), 'utf8')

test('the README configuration table is the one lib/config.ts describes', () => {
  assert.ok(readme.includes(configTable()), 'the README table is stale: run npm run docs:config')
  assert.equal(OPTIONS.length, new Set(OPTIONS.map((o) => o.env)).size)
})

test('every refusal code the server emits is documented in docs/protocol.md', () => {
  const sources = ['plugins/authorize-publish.ts', 'bridge/index.ts', 'bridge/envelope.ts', 'bridge/receipts.ts', 'bridge/typing.ts', 'core/chats.ts', 'core/devices.ts',
    'core/registration.ts', 'core/errors.ts', 'core/message-rules.ts', 'core/blocks.ts', 'api/context.ts', 'api/app.ts', 'api/routes/chats.ts', 'api/routes/messages.ts', 'api/routes/receipts.ts',
    'core/media.ts', 'media/local-blob.ts', 'api/routes/media.ts', 'cluster/stream-sends.ts',
    'core/keys.ts', 'core/e2ee.ts', 'core/profiles.ts', 'core/contacts.ts', 'core/users.ts', 'core/chat-settings.ts', 'core/account.ts', 'api/routes/profiles.ts', 'api/routes/account.ts', 'api/routes/keys.ts', 'api/admin.ts']
  const codes = new Set<string>()
  for (const file of sources) {
    const text = readFileSync(resolve(root, file), 'utf8')
    for (const m of text.matchAll(/(?:DomainError\(|code: )'([a-z_]+)'/g)) codes.add(m[1])
  }
  assert.ok(codes.size >= 10, `found ${[...codes].join(', ')}`)
  for (const code of codes) assert.ok(protocol.includes(`\`${code}\``), `docs/protocol.md does not document ${code}`)
})
