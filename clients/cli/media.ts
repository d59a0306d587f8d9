// `mqchat send --file` and `mqchat fetch`: files go straight to and from the
// presigned URLs, streamed (never read whole into memory) and hash-checked.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { stat, unlink } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CliError, EXIT } from './errors.js'
import { call } from './http.js'

const TYPES: Record<string, string> = {
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif', '.webp': 'image/webp', '.heic': 'image/heic',
  '.mp3': 'audio/mpeg', '.m4a': 'audio/mp4', '.ogg': 'audio/ogg', '.opus': 'audio/opus', '.wav': 'audio/wav',
  '.mp4': 'video/mp4', '.mov': 'video/quicktime', '.webm': 'video/webm',
  '.pdf': 'application/pdf', '.txt': 'text/plain', '.zip': 'application/zip'
}

export const contentTypeOf = (path: string): string => TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'

/**
 * Counts what goes through a stream (bytes, or what `count` finds in each
 * chunk) and draws a progress bar on a terminal; `unit` says what is counted.
 */
export function progress (label: string, total: number, count: (chunk: Buffer) => number = (c) => c.length, unit: (n: number) => string = (n) => `${(n / 1048576).toFixed(1)}`, suffix = ' MiB'): Transform {
  let done = 0
  let last = -1
  const tty = process.stderr.isTTY
  return new Transform({
    transform (chunk: Buffer, _enc, cb) {
      done += count(chunk)
      const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100
      if (tty && pct !== last) {
        last = pct
        const bar = '#'.repeat(Math.floor(pct / 4)).padEnd(25, '.')
        process.stderr.write(`\r${label} [${bar}] ${pct}% ${unit(done)}/${unit(total)}${suffix}`)
        if (pct === 100) process.stderr.write('\n')
      }
      cb(null, chunk)
    }
  })
}

async function sha256File (path: string, size: number): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(path), progress('hashing  ', size), async function * (source) { for await (const c of source) h.update(c as Buffer) })
  return h.digest('hex')
}

export interface Uploaded { mediaId: string, existing: boolean, size: number, contentType: string, name: string, sha256: string }

/** Uploads a file for a chat, or (`chatId` undefined) an image of the user's own, such as an avatar. */
export async function uploadFile (server: string, token: string, chatId: string | undefined, path: string): Promise<Uploaded> {
  const info = await stat(path).catch(() => { throw new CliError(`cannot read ${path}`, EXIT.usage) })
  if (!info.isFile()) throw new CliError(`${path} is not a file`, EXIT.usage)
  const size = info.size
  const contentType = contentTypeOf(path)
  const sha256 = await sha256File(path, size)
  const slot = await call<{ media_id: string, existing: boolean, upload?: { url: string, method: string, headers: Record<string, string> } }>(
    server, 'POST', '/v1/media', { token, body: { ...(chatId !== undefined ? { chat: chatId } : {}), size, content_type: contentType, sha256 } })
  if (!slot.existing && slot.upload) {
    const body = Readable.toWeb(createReadStream(path).pipe(progress('uploading', size))) as ReadableStream
    let res: Response
    try {
      res = await fetch(slot.upload.url, { method: slot.upload.method, headers: slot.upload.headers, body, duplex: 'half' } as RequestInit)
    } catch (err) {
      throw new CliError(`upload failed: ${(err as Error).message}`, EXIT.unreachable)
    }
    if (!res.ok) {
      const e = (await res.json().catch(() => ({}))) as { error?: { code?: string, message?: string } }
      throw new CliError(`${e.error?.code ?? res.status}: ${e.error?.message ?? 'upload refused'}`, EXIT.refused, e.error?.code)
    }
  }
  return { mediaId: slot.media_id, existing: slot.existing, size, contentType, name: basename(path), sha256 }
}

export async function fetchMedia (server: string, token: string, mediaId: string, out: string): Promise<{ size: number, sha256: string }> {
  const dl = await call<{ url: string, size: number, sha256: string }>(server, 'POST', `/v1/media/${encodeURIComponent(mediaId)}/download`, { token })
  let res: Response
  try {
    res = await fetch(dl.url)
  } catch (err) {
    throw new CliError(`download failed: ${(err as Error).message}`, EXIT.unreachable)
  }
  if (!res.ok || !res.body) throw new CliError(`download failed: HTTP ${res.status}`, EXIT.refused)
  const h = createHash('sha256')
  const hashing = new Transform({ transform (chunk: Buffer, _e, cb) { h.update(chunk); cb(null, chunk) } })
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), progress('fetching ', dl.size), hashing, createWriteStream(out))
  if (h.digest('hex') !== dl.sha256) {
    await unlink(out).catch(() => {})
    throw new CliError('the downloaded bytes do not match the media hash; nothing was kept', EXIT.failure)
  }
  return { size: dl.size, sha256: dl.sha256 }
}
