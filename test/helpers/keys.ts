// A device's end-to-end encryption keys as a client library makes them, for
// tests of the key directory and of encrypted envelopes: an Ed25519 signing
// key (node:crypto) and Curve25519-sized public keys it signs over the texts
// docs/protocol.md names. The server never sees the private halves; these
// keys encrypt nothing (the CLI's vodozemac does that).
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import type { TestServer } from './server.js'

export /** A device's keys as a client makes them: an Ed25519 signing key, and Curve25519-sized public keys it signs. */
class Keys {
  readonly signing = generateKeyPairSync('ed25519')
  readonly identityKey = randomBytes(32).toString('base64')
  constructor (readonly deviceId: string) {}
  get signingKey (): string { return (this.signing.publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(12).toString('base64') }
  sign (text: string, key: KeyObject = this.signing.privateKey): string { return sign(null, Buffer.from(text), key).toString('base64') }
  identity (): object {
    return { identity_key: this.identityKey, signing_key: this.signingKey, identity_signature: this.sign(`mqchat-identity\n${this.deviceId}\n${this.identityKey}`) }
  }

  prekey (keyId: string, forDevice = this.deviceId): { key_id: string, key: string, signature: string } {
    const key = randomBytes(32).toString('base64')
    return { key_id: keyId, key, signature: this.sign(`mqchat-prekey\n${forDevice}\n${keyId}\n${key}`) }
  }

  /** Publishes this device's identity, a fallback key and `oneTime` one-time keys; returns the keys. */
  async publish (server: TestServer, token: string, oneTime = 3): Promise<this> {
    const r = await server.api('PUT', '/v1/keys', token, { ...this.identity(), fallback_key: this.prekey('fallback'), one_time_keys: Array.from({ length: oneTime }, (_, i) => this.prekey(`otk${i}`)) })
    if (r.status !== 200) throw new Error(`publishing keys: ${JSON.stringify(r.body)}`)
    return this
  }
}
