// The restricted-XML guard finds DTDs, comments and processing instructions
// however the input is split, and lets the XML declaration and ordinary
// markup through.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RestrictedXml } from '../../xmpp/restricted.js'

const OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"

function firstProblem (input: string, chunk: number): string | undefined {
  const g = new RestrictedXml()
  for (let i = 0; i < input.length; i += chunk) {
    const found = g.check(input.slice(i, i + chunk))
    if (found) return found
  }
  return undefined
}

test('forbidden constructs are found in whole input and byte by byte', () => {
  const cases: Array<[string, string | undefined]> = [
    [`<?xml version='1.0'?>${OPEN}<message><body>a &amp; b &lt; c</body></message>`, undefined],
    [`  <?xml version="1.0" encoding="UTF-8"?>${OPEN}`, undefined],
    [`<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>${OPEN}`, 'a DTD or entity declaration'],
    [`${OPEN}<!-- note -->`, 'a comment'],
    [`${OPEN}<?php echo 1 ?>`, 'a processing instruction'],
    [`${OPEN}<?xml version='1.0'?>`, 'a processing instruction'],
    [`${OPEN}<body><![CDATA[x]]></body>`, 'a CDATA section']
  ]
  for (const [input, expected] of cases) {
    for (const chunk of [input.length, 7, 1]) assert.equal(firstProblem(input, chunk), expected, `${input} in chunks of ${chunk}`)
  }
})

test('after a restart (STARTTLS, SASL) a new stream may begin with its own declaration', () => {
  const g = new RestrictedXml()
  assert.equal(g.check(`<?xml version='1.0'?>${OPEN}`), undefined)
  assert.equal(g.check("<?xml version='1.0'?>"), 'a processing instruction')
  g.restart()
  assert.equal(g.check(`<?xml version='1.0'?>${OPEN}`), undefined)
})
