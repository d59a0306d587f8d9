// xmpp/stream.ts's StreamParser: whitespace between stanzas is dropped, not
// kept on the stream's root element for the life of the stream (@xmpp/xml's
// own Parser keeps it: the audit grew a server by 109 MB that way).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Parser, type Element } from '@xmpp/xml'
import { StreamParser } from '../../xmpp/stream.js'

const OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

function feed (p: Parser, chunks: string[]): { stanzas: Element[], errors: string[] } {
  const stanzas: Element[] = []
  const errors: string[] = []
  p.on('element', (el: Element) => stanzas.push(el))
  p.on('error', (err: Error) => errors.push(err.message))
  for (const c of chunks) p.write(c)
  return { stanzas, errors }
}

test('whitespace between stanzas leaves nothing on the root; whitespace inside a stanza is kept', () => {
  const p = new StreamParser()
  const chunks = [OPEN]
  for (let i = 0; i < 1000; i++) chunks.push(' \n'.repeat(500), `<message id='m${i}'><body> a  b </body></message>`)
  const { stanzas, errors } = feed(p, chunks)
  assert.deepEqual(errors, [])
  assert.equal(stanzas.length, 1000)
  assert.equal(stanzas[999]?.getChildText('body'), ' a  b ')
  assert.equal(p.root?.children.length, 0, 'the root holds no text')
  // The reference: @xmpp/xml's own parser keeps every gap.
  const ref = new Parser()
  feed(ref, chunks)
  assert.equal(ref.root?.children.length, 1000)
})

test('text other than whitespace between stanzas is an error', () => {
  const { errors } = feed(new StreamParser(), [OPEN, "hello<message id='x'/>"])
  assert.equal(errors.length, 1)
  assert.match(errors[0] ?? '', /only whitespace/)
})
