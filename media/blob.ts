// Where media bytes live. One interface, one implementation per backend
// (local disk now; S3 next), the same behaviour on each.
import type { Readable } from 'node:stream'

export interface ByteRange { start: number, end: number }

export interface BlobStore {
  /**
   * Streams an object in. It is stored only if exactly `size` bytes with the
   * given SHA-256 (hex) arrive; otherwise nothing remains and a DomainError
   * (size_mismatch, hash_mismatch) is thrown.
   */
  put (key: string, source: Readable, expect: { size: number, sha256: string }): Promise<void>
  /** Streams an object out, or the inclusive byte range of it. */
  get (key: string, range?: ByteRange): Readable
  exists (key: string): Promise<boolean>
  delete (key: string): Promise<void>
}
