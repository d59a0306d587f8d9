// Media bytes on local disk under <data>/media. Uploads stream into a
// temporary file while being counted and hashed; only a file with the declared
// size and SHA-256 is renamed into place. Nothing is ever held whole in memory.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, rmSync } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DomainError } from '../core/errors.js'
import type { BlobStore, ByteRange } from './blob.js'

export class LocalBlobStore implements BlobStore {
  #dir: string
  #tmp: string

  constructor (dataDir: string) {
    this.#dir = join(dataDir, 'media')
    this.#tmp = join(this.#dir, 'tmp')
    // Partial uploads from an earlier run are garbage.
    rmSync(this.#tmp, { recursive: true, force: true })
    mkdirSync(this.#tmp, { recursive: true })
  }

  private path (key: string): string {
    if (!/^[A-Za-z0-9_]+$/.test(key)) throw new Error(`bad media key ${key}`)
    return join(this.#dir, key.slice(-2), key)
  }

  async put (key: string, source: Readable, expect: { size: number, sha256: string }): Promise<void> {
    const tmp = join(this.#tmp, `${key}.${randomBytes(6).toString('hex')}`)
    const hash = createHash('sha256')
    let count = 0
    const verify = new Transform({
      transform (chunk: Buffer, _enc, done) {
        count += chunk.length
        if (count > expect.size) return done(new DomainError('size_mismatch', `more than the declared ${expect.size} bytes were sent`, 400))
        hash.update(chunk)
        done(null, chunk)
      }
    })
    try {
      await pipeline(source, verify, createWriteStream(tmp, { flags: 'wx' }))
      if (count !== expect.size) throw new DomainError('size_mismatch', `${count} bytes were sent, ${expect.size} were declared`, 400)
      if (hash.digest('hex') !== expect.sha256) throw new DomainError('hash_mismatch', 'the bytes do not have the declared SHA-256', 400)
      const final = this.path(key)
      mkdirSync(join(final, '..'), { recursive: true })
      await rename(tmp, final)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  get (key: string, range?: ByteRange): Readable {
    return createReadStream(this.path(key), range ? { start: range.start, end: range.end } : {})
  }

  async exists (key: string): Promise<boolean> {
    return stat(this.path(key)).then(() => true, () => false)
  }

  async delete (key: string): Promise<void> {
    await unlink(this.path(key)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
  }
}
