// `mqchat account export`: the server's export (GET /v1/me/export), streamed
// to a file with a progress bar counted in chats, then checked to be whole JSON.
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CliError, EXIT } from './errors.js'
import { progress } from './media.js'

/** Each chat of an export starts on a line of its own with this. */
const CHAT_START = Buffer.from('\n{"chat_id":')

export async function exportAccount (p: { server: string, token: string, user_id: string }, output: string | undefined, json: boolean): Promise<number> {
  const file = output ?? `mqchat-export-${p.user_id}.json`
  let res: Response
  try {
    res = await fetch(new URL('/v1/me/export', p.server), { headers: { authorization: `Bearer ${p.token}` } })
  } catch (err) {
    throw new CliError(`cannot reach ${p.server}: ${(err as Error).message}`, EXIT.unreachable)
  }
  if (!res.ok || res.body === null) {
    const e = (await res.json().catch(() => ({}))) as { error?: { code?: string, message?: string } }
    throw new CliError(`${e.error?.code ?? res.status}: ${e.error?.message ?? 'export refused'}`, res.status === 401 ? EXIT.auth : EXIT.refused, e.error?.code)
  }
  const chats = Number(res.headers.get('x-mqchat-export-chats') ?? 0)
  // A chat's start may fall across two chunks: the end of the last one is kept to look across.
  let tail = Buffer.alloc(0)
  const countChats = (chunk: Buffer): number => {
    const seen = Buffer.concat([tail, chunk])
    let n = 0
    for (let i = seen.indexOf(CHAT_START); i >= 0; i = seen.indexOf(CHAT_START, i + 1)) if (i + CHAT_START.length > tail.length) n++
    tail = seen.subarray(Math.max(0, seen.length - CHAT_START.length + 1))
    return n
  }
  try {
    await pipeline(Readable.fromWeb(res.body as never), progress('exporting', chats, countChats, String, ' chats'), createWriteStream(file, { mode: 0o600 }))
  } catch (err) {
    throw new CliError(`the export was cut off: ${(err as Error).message}`, EXIT.unreachable)
  }
  let doc: { chats: Array<{ messages: unknown[] }> }
  try {
    doc = JSON.parse(await readFile(file, 'utf8')) as typeof doc
  } catch {
    throw new CliError(`the export in ${file} is not whole (the server stopped sending); try again`, EXIT.failure)
  }
  const messages = doc.chats.reduce((n, c) => n + c.messages.length, 0)
  process.stdout.write((json ? JSON.stringify({ file, chats: doc.chats.length, messages }) : `exported ${doc.chats.length} chats and ${messages} messages you sent to ${file}`) + '\n')
  return EXIT.ok
}
