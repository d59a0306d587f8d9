// HMAC-signed, expiring URLs for the local media backend: a signature covers
// the method, the media id and the expiry, so a URL is good for exactly one
// object, one direction, until it expires.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export class UrlSigner {
  constructor (private readonly secret: Buffer) {}

  /** The configured secret, or one generated once and kept in <data>/media.key (mode 0600). */
  static fromDataDir (dataDir: string, configured: string): UrlSigner {
    if (configured) return new UrlSigner(Buffer.from(configured, 'utf8'))
    const file = join(dataDir, 'media.key')
    if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' })
    return new UrlSigner(Buffer.from(readFileSync(file, 'utf8').trim(), 'hex'))
  }

  sign (method: 'GET' | 'PUT', mediaId: string, expiresAt: number): string {
    return createHmac('sha256', this.secret).update(`${method}\n${mediaId}\n${expiresAt}`).digest('base64url')
  }

  /** 'ok', 'expired' or 'bad_signature'. */
  check (method: 'GET' | 'PUT', mediaId: string, expiresAt: number, signature: string, now = Date.now()): 'ok' | 'expired' | 'bad_signature' {
    const want = Buffer.from(this.sign(method, mediaId, expiresAt))
    const got = Buffer.from(signature)
    if (want.length !== got.length || !timingSafeEqual(want, got)) return 'bad_signature'
    return expiresAt > now ? 'ok' : 'expired'
  }
}
