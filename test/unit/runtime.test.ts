import { test } from 'node:test'
import assert from 'node:assert/strict'
import { unsupportedNode } from '../../clients/cli/runtime.js'

test('mqchat serve runs on Node 22.13 and later, and says why not on anything older', () => {
  for (const ok of ['22.13.0', '22.23.5', '23.0.0', '24.0.0', '24.22.3', '26.1.0']) assert.equal(unsupportedNode(ok), undefined, ok)
  for (const old of ['20.20.2', '21.7.3', '22.0.0', '22.12.9', '18.20.0']) {
    const why = unsupportedNode(old)
    assert.match(why ?? '', new RegExp(`needs Node 22\\.13 or later .*this is Node ${old.replaceAll('.', '\\.')}`), old)
    assert.match(why ?? '', /npm start/)
  }
  assert.equal(unsupportedNode(), undefined, 'the Node running the tests is supported')
})
