// SCRAM (RFC 5802, RFC 7677), the server's side: the keys kept for a
// password, and one authentication exchange (client-first, server-first,
// client-final, server-final). No channel binding: the -PLUS mechanisms are
// not offered. Written here because no maintained npm package implements
// the server side; it is node:crypto's PBKDF2, HMAC and hashes and nothing
// else.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const pbkdf2Async = promisify(pbkdf2)

export type ScramHash = 'sha1' | 'sha256'

/** The SASL mechanism names served, strongest first, and their hash. */
export const SCRAM_MECHANISMS: ReadonlyArray<readonly [string, ScramHash]> = [['SCRAM-SHA-256', 'sha256'], ['SCRAM-SHA-1', 'sha1']]

/** What the server keeps for one password and one hash (base64): enough to check a proof, not to log in. */
export interface ScramKeys { storedKey: string, serverKey: string }

/** The keys for both hashes, made with one salt and iteration count. */
export interface ScramCredentials { iterations: number, sha1: ScramKeys, sha256: ScramKeys }

const HASH_BYTES: Record<ScramHash, number> = { sha1: 20, sha256: 32 }

async function keysFor (hash: ScramHash, password: string, salt: Buffer, iterations: number): Promise<ScramKeys> {
  const salted = await pbkdf2Async(password, salt, iterations, HASH_BYTES[hash], hash)
  const clientKey = createHmac(hash, salted).update('Client Key').digest()
  return {
    storedKey: createHash(hash).update(clientKey).digest('base64'),
    serverKey: createHmac(hash, salted).update('Server Key').digest('base64')
  }
}

/** The stored keys for a password. The password is used as given (our passwords are ASCII tokens, so SASLprep changes nothing). */
export async function scramCredentials (password: string, salt: Buffer, iterations: number): Promise<ScramCredentials> {
  const [sha1, sha256] = await Promise.all([keysFor('sha1', password, salt, iterations), keysFor('sha256', password, salt, iterations)])
  return { iterations, sha1, sha256 }
}

/** A refusal: `malformed` for a message that breaks the grammar, `not-authorized` for a wrong proof. */
export class ScramError extends Error {
  constructor (readonly condition: 'malformed-request' | 'not-authorized', message: string) { super(message) }
}

/** RFC 5802 §5.1 saslname: "=2C" is ",", "=3D" is "=", any other "=" is an error. */
function saslName (raw: string): string {
  if (/=(?!2C|3D)/.test(raw)) throw new ScramError('malformed-request', 'a user name escapes "," and "=" only, as =2C and =3D')
  return raw.replace(/=2C/g, ',').replace(/=3D/g, '=')
}

/** "k=v" attributes of a SCRAM message, in order. */
function attributes (msg: string): Array<[string, string]> {
  return msg.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) throw new ScramError('malformed-request', `"${part.slice(0, 40)}" is not a SCRAM attribute`)
    return [part[0] as string, part.slice(2)]
  })
}

/** What a client-first message names: the user, and the identity to act as (if any). */
export interface ClientFirst { user: string, authzid: string | undefined }

/**
 * One exchange. `start` reads the client-first message and returns the
 * server-first message to send; `finish` reads the client-final message,
 * checks its proof against each candidate's keys (a user with several
 * devices has several passwords under one salt) and returns the index of
 * the candidate that matched and the server-final message.
 */
export class ScramExchange {
  #gs2Header = ''
  #clientFirstBare = ''
  #serverFirst = ''
  #nonce = ''

  /** `serverNonce` is for the RFCs' test vectors; by default 18 random bytes. */
  constructor (readonly hash: ScramHash, private readonly serverNonce: () => string = () => randomBytes(18).toString('base64')) {}

  static read (clientFirst: string): ClientFirst & { gs2Header: string, bare: string, clientNonce: string } {
    const m = /^([nyp])(=[^,]*)?,(a=[^,]*)?,(.*)$/s.exec(clientFirst)
    if (!m) throw new ScramError('malformed-request', 'a SCRAM client-first message starts with a GS2 header ("n,,")')
    if (m[1] === 'p') throw new ScramError('malformed-request', 'channel binding is not offered (no -PLUS mechanism)')
    if (m[2] !== undefined) throw new ScramError('malformed-request', 'a GS2 header carries a channel binding name only with "p"')
    const bare = m[4] as string
    const attrs = attributes(bare)
    if (attrs[0]?.[0] === 'm') throw new ScramError('malformed-request', 'mandatory SCRAM extensions are not supported')
    const [n, r] = attrs
    if (n?.[0] !== 'n' || r?.[0] !== 'r' || r[1] === '') throw new ScramError('malformed-request', 'a SCRAM client-first message is n=<user>,r=<nonce>')
    if (/[^\x21-\x2b\x2d-\x7e]/.test(r[1])) throw new ScramError('malformed-request', 'a SCRAM nonce is printable ASCII without ","')
    const gs2Header = clientFirst.slice(0, clientFirst.length - bare.length)
    return { user: saslName(n[1]), authzid: m[3] !== undefined ? saslName(m[3].slice(2)) : undefined, gs2Header, bare, clientNonce: r[1] }
  }

  /** Reads the client-first message; `params` gives the named user's salt and iteration count. Returns what the message names and the server-first message. */
  start (clientFirst: string, params: (user: string) => { salt: Buffer, iterations: number }): ClientFirst & { serverFirst: string } {
    const first = ScramExchange.read(clientFirst)
    const { salt, iterations } = params(first.user)
    this.#gs2Header = first.gs2Header
    this.#clientFirstBare = first.bare
    this.#nonce = first.clientNonce + this.serverNonce()
    this.#serverFirst = `r=${this.#nonce},s=${salt.toString('base64')},i=${iterations}`
    return { user: first.user, authzid: first.authzid, serverFirst: this.#serverFirst }
  }

  finish (clientFinal: string, candidates: readonly ScramKeys[]): { index: number, serverFinal: string } {
    if (this.#serverFirst === '') throw new ScramError('malformed-request', 'client-final before client-first')
    const proofAt = clientFinal.lastIndexOf(',p=')
    if (proofAt < 0) throw new ScramError('malformed-request', 'a SCRAM client-final message ends with p=<proof>')
    const withoutProof = clientFinal.slice(0, proofAt)
    const attrs = attributes(withoutProof)
    const [c, r] = attrs
    if (c?.[0] !== 'c' || r?.[0] !== 'r') throw new ScramError('malformed-request', 'a SCRAM client-final message is c=<binding>,r=<nonce>,p=<proof>')
    if (Buffer.from(c[1], 'base64').toString('latin1') !== this.#gs2Header) throw new ScramError('not-authorized', 'the channel binding does not repeat the GS2 header')
    if (r[1] !== this.#nonce) throw new ScramError('not-authorized', 'the nonce is not the one this exchange agreed')
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64')
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`
    for (const [index, keys] of candidates.entries()) {
      const storedKey = Buffer.from(keys.storedKey, 'base64')
      if (proof.length !== storedKey.length) continue
      const signature = createHmac(this.hash, storedKey).update(authMessage).digest()
      const clientKey = Buffer.alloc(proof.length)
      for (let i = 0; i < proof.length; i++) clientKey[i] = (proof[i] as number) ^ (signature[i] as number)
      if (timingSafeEqual(createHash(this.hash).update(clientKey).digest(), storedKey)) {
        const serverSignature = createHmac(this.hash, Buffer.from(keys.serverKey, 'base64')).update(authMessage).digest('base64')
        return { index, serverFinal: `v=${serverSignature}` }
      }
    }
    throw new ScramError('not-authorized', 'the proof matches no password of this user')
  }
}
