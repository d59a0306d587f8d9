// The SCRAM server side against the RFCs' own example exchanges, and the
// refusals a client can provoke.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ScramError, ScramExchange, scramCredentials, type ScramHash } from '../../lib/scram.js'

const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64')

interface Vector { hash: ScramHash, salt: string, clientFirst: string, serverNonce: string, serverFirst: string, clientFinal: string, serverFinal: string }

const VECTORS: Record<string, Vector> = {
  // RFC 5802 §5
  'SCRAM-SHA-1': {
    hash: 'sha1',
    salt: 'QSXCR+Q6sek8bf92',
    clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
    serverNonce: '3rfcNHYJY1ZVvWVs7j',
    serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
    clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
    serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ='
  },
  // RFC 7677 §3
  'SCRAM-SHA-256': {
    hash: 'sha256',
    salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='
  }
}

for (const [name, v] of Object.entries(VECTORS)) {
  test(`${name}: the RFC's exchange for user "user", password "pencil"`, async () => {
    const creds = await scramCredentials('pencil', Buffer.from(v.salt, 'base64'), 4096)
    const other = await scramCredentials('not pencil', Buffer.from(v.salt, 'base64'), 4096)
    const x = new ScramExchange(v.hash, () => v.serverNonce)
    const first = x.start(v.clientFirst, () => ({ salt: Buffer.from(v.salt, 'base64'), iterations: 4096 }))
    assert.equal(first.user, 'user')
    assert.equal(first.authzid, undefined)
    assert.equal(first.serverFirst, v.serverFirst)
    // The matching password is the second candidate: the index says which.
    assert.deepEqual(x.finish(v.clientFinal, [other[v.hash], creds[v.hash]]), { index: 1, serverFinal: v.serverFinal })
  })

  test(`${name}: a proof made with another password, or tampered with, is not-authorized`, async () => {
    const other = await scramCredentials('not pencil', Buffer.from(v.salt, 'base64'), 4096)
    const creds = await scramCredentials('pencil', Buffer.from(v.salt, 'base64'), 4096)
    const x = new ScramExchange(v.hash, () => v.serverNonce)
    x.start(v.clientFirst, () => ({ salt: Buffer.from(v.salt, 'base64'), iterations: 4096 }))
    assert.throws(() => x.finish(v.clientFinal, [other[v.hash]]), (e: unknown) => e instanceof ScramError && e.condition === 'not-authorized')
    assert.throws(() => x.finish(v.clientFinal, []), (e: unknown) => e instanceof ScramError && e.condition === 'not-authorized')
    const flipped = v.clientFinal.replace(/p=(.)/, (_m, c: string) => `p=${c === 'A' ? 'B' : 'A'}`)
    assert.throws(() => x.finish(flipped, [creds[v.hash]]), (e: unknown) => e instanceof ScramError && e.condition === 'not-authorized')
    const otherNonce = v.clientFinal.replace(v.serverNonce, 'x' + v.serverNonce.slice(1))
    assert.throws(() => x.finish(otherNonce, [creds[v.hash]]), /nonce/)
    const otherBinding = v.clientFinal.replace('c=biws', `c=${b64('y,,')}`)
    assert.throws(() => x.finish(otherBinding, [creds[v.hash]]), /GS2 header/)
  })
}

test('client-first: user name escapes, authzid, and what is refused', () => {
  const x = new ScramExchange('sha256', () => 'S')
  const r = x.start('n,a=u=2Cx@d,n=a=3Db=2Cc,r=abc', (user) => ({ salt: Buffer.from(`salt of ${user}`), iterations: 4096 }))
  assert.equal(r.user, 'a=b,c')
  assert.equal(r.authzid, 'u,x@d')
  assert.equal(r.serverFirst, `r=abcS,s=${b64('salt of a=b,c')},i=4096`)
  assert.equal(ScramExchange.read('y,,n=u,r=n1').user, 'u')
  const malformed = (msg: string, pattern: RegExp): void => {
    assert.throws(() => ScramExchange.read(msg), (e: unknown) => e instanceof ScramError && e.condition === 'malformed-request' && pattern.test(e.message), msg)
  }
  malformed('p=tls-unique,,n=u,r=n1', /channel binding/)
  malformed('n=x,,n=u,r=n1', /GS2 header/)
  malformed('n,,m=ext,n=u,r=n1', /mandatory/)
  malformed('n,,n=u', /n=<user>,r=<nonce>/)
  malformed('n,,r=n1,n=u', /n=<user>,r=<nonce>/)
  malformed('n,,n=u=41,r=n1', /=2C and =3D/)
  malformed('n,,n=u,r=', /n=<user>,r=<nonce>/)
  malformed('n,,n=u,r=a\u0001b', /printable/)
  malformed('hello', /GS2 header/)
  malformed('n,,n=u,,r=n1', /not a SCRAM attribute/)
  const y = new ScramExchange('sha1')
  assert.throws(() => y.finish('c=biws,r=x,p=AAAA', []), /before client-first/)
  y.start('n,,n=u,r=n1', () => ({ salt: Buffer.from('s'), iterations: 4096 }))
  assert.throws(() => y.finish('c=biws,r=n1', []), /p=<proof>/)
  assert.throws(() => y.finish('r=n1,c=biws,p=AAAA', []), /c=<binding>/)
})
