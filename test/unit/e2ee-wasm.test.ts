// The committed WebAssembly build of vodozemac the CLI encrypts with
// (clients/cli/e2ee): the flows the CLI relies on, between two accounts in
// one process. scripts/build-e2ee.mjs --check (in .ci/run) proves the
// committed build is what the source makes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { vodozemac } from '../../clients/cli/vodozemac.js'
import { verifyEd25519 } from '../../core/keys.js'

const v = vodozemac()

function pair (): { alice: InstanceType<typeof v.Account>, bob: InstanceType<typeof v.Account>, otk: string } {
  const alice = new v.Account()
  const bob = new v.Account()
  bob.generate_one_time_keys(3)
  const otk = Object.values(JSON.parse(bob.one_time_keys()) as Record<string, string>)[0]!
  bob.mark_keys_as_published()
  return { alice, bob, otk }
}

test('Olm: a pre-key message starts the session, both sides talk, a one-time key serves once', () => {
  const { alice, bob, otk } = pair()
  const a = alice.create_outbound_session(bob.curve25519_key, otk)
  const first = a.encrypt('hello bob')
  assert.equal(first.message_type, 0, 'a pre-key message')
  assert.equal(v.prekey_session_id(first.body), a.session_id)
  const inbound = bob.create_inbound_session(alice.curve25519_key, first.body)
  assert.equal(inbound.plaintext, 'hello bob')
  const b = inbound.take_session()
  const reply = b.encrypt('hi alice')
  assert.equal(reply.message_type, 1)
  assert.equal(a.decrypt(reply.message_type, reply.body), 'hi alice')
  // The one-time key was used up: a second session from it is refused.
  const again = alice.create_outbound_session(bob.curve25519_key, otk).encrypt('again')
  assert.throws(() => bob.create_inbound_session(alice.curve25519_key, again.body))
})

test('a tampered ciphertext is refused (its MAC), and the next message decrypts', () => {
  const { alice, bob, otk } = pair()
  const a = alice.create_outbound_session(bob.curve25519_key, otk)
  const b = bob.create_inbound_session(alice.curve25519_key, a.encrypt('one').body).take_session()
  const m = b.encrypt('two')
  const bytes = Buffer.from(m.body, 'base64')
  bytes[bytes.length - 10]! ^= 1
  assert.throws(() => a.decrypt(1, bytes.toString('base64').replace(/=+$/, '')), /MAC|decrypt/i)
  assert.equal(a.decrypt(m.message_type, m.body), 'two')
  assert.equal(a.decrypt(1, b.encrypt('three').body), 'three')
})

test('pickles: an account and a session come back whole under their key, and not under another', () => {
  const { alice, bob, otk } = pair()
  const key = randomBytes(32)
  const a = alice.create_outbound_session(bob.curve25519_key, otk)
  const back = v.Account.from_pickle(alice.pickle(key), key)
  assert.equal(back.curve25519_key, alice.curve25519_key)
  assert.equal(back.ed25519_key, alice.ed25519_key)
  const session = v.Session.from_pickle(a.pickle(key), key)
  const b = bob.create_inbound_session(alice.curve25519_key, session.encrypt('from the pickled session').body)
  assert.equal(b.plaintext, 'from the pickled session')
  assert.throws(() => v.Account.from_pickle(alice.pickle(key), randomBytes(32)))
  assert.throws(() => v.Account.from_pickle('x', Buffer.alloc(16)), /32 bytes/)
})

test('signatures: the account\'s Ed25519 key signs, verify_ed25519 tells a good one from a bad one', () => {
  const { alice } = pair()
  const sig = alice.sign('mqchat-identity\ndv_0000000000000000\nkey')
  assert.equal(v.verify_ed25519(alice.ed25519_key, 'mqchat-identity\ndv_0000000000000000\nkey', sig), true)
  // The server checks the same signature with node:crypto (unpadded base64 as vodozemac writes it).
  assert.equal(verifyEd25519(alice.ed25519_key, 'mqchat-identity\ndv_0000000000000000\nkey', sig), true)
  assert.equal(verifyEd25519(alice.ed25519_key, 'another text', sig), false)
  assert.equal(v.verify_ed25519(alice.ed25519_key, 'mqchat-identity\ndv_0000000000000001\nkey', sig), false)
})

test('Megolm: one ciphertext for every holder of the session key; a key shared later reads only what follows', () => {
  const g = new v.OutboundGroupSession()
  const early = new v.InboundGroupSessionKey(g.session_key)
  const c0 = g.encrypt('zero')
  const late = new v.InboundGroupSessionKey(g.session_key)
  const c1 = g.encrypt('one')
  assert.equal(early.decrypt(c0).plaintext, 'zero')
  assert.equal(early.decrypt(c1).plaintext, 'one')
  assert.equal(late.decrypt(c1).plaintext, 'one')
  assert.equal(late.first_known_index, 1)
  assert.throws(() => late.decrypt(c0), 'a member given the key later cannot read earlier messages')
  // A new session (rotation after a membership change): the old key reads none of it.
  const rotated = new v.OutboundGroupSession()
  assert.notEqual(rotated.session_id, g.session_id)
  assert.throws(() => early.decrypt(rotated.encrypt('after the removal')))
})
