// The chat message envelope a device publishes to chat/<chatId>/msg:
//   {"id": "<client message id>", "type": "text", "body": <any JSON>, "ts": <client ms>}
// `body` is opaque (ciphertext for E2EE clients): it is stored and forwarded
// as the exact JSON text the client sent, never interpreted.
import { DomainError } from '../core/errors.js'

export interface Envelope {
  id: string
  type: MessageType
  body: string
  ts: number | null
  /** reply_to of a reply; ref of an edit, delete or reaction. */
  ref: number | null
  forwarded: boolean
  /** The media id of a `media` message. */
  media: string | null
}

/** Message types: content (text, reply) and operations on earlier messages (edit, delete, reaction). */
export const MESSAGE_TYPES = ['text', 'media', 'reply', 'edit', 'delete', 'reaction'] as const
export type MessageType = typeof MESSAGE_TYPES[number]
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/
const MAX_EMOJI_LENGTH = 16
/** How deeply arrays and objects may nest in a body (a top-level object or array is depth 1). */
export const MAX_BODY_DEPTH = 32

/** The deepest nesting of arrays and objects in JSON text, read without recursion. */
export function jsonDepth (text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // a backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) { if (++depth > max) max = depth } else if (c === 0x5d || c === 0x7d) depth--
  }
  return max
}

export function parseEnvelope (payload: Buffer, maxBytes: number): Envelope {
  if (payload.length > maxBytes) throw new DomainError('too_large', `message is ${payload.length} bytes; the limit is ${maxBytes}`, 413)
  const text = payload.toString('utf8')
  // Checked on the text, before anything recursive (JSON.stringify overflows its stack at about 10,000 levels) reads it.
  // The envelope itself is the first level, so its body may nest MAX_BODY_DEPTH deep.
  if (jsonDepth(text) > MAX_BODY_DEPTH + 1) throw new DomainError('bad_request', `body nests arrays and objects more than ${MAX_BODY_DEPTH} deep`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new DomainError('bad_request', 'the envelope is not valid JSON')
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DomainError('bad_request', 'the envelope must be a JSON object')
  const e = v as Record<string, unknown>
  if (typeof e.id !== 'string' || !CLIENT_ID.test(e.id)) throw new DomainError('bad_request', 'id must be 1-64 characters of A-Z a-z 0-9 . _ : -')
  const type = e.type ?? 'text'
  if (typeof type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    throw new DomainError('bad_request', `type must be one of ${MESSAGE_TYPES.join(', ')}`, 400)
  }
  if (e.ts !== undefined && (typeof e.ts !== 'number' || !Number.isFinite(e.ts))) throw new DomainError('bad_request', 'ts must be a number (milliseconds since the epoch)')
  if (e.forwarded !== undefined && typeof e.forwarded !== 'boolean') throw new DomainError('bad_request', 'forwarded must be true or false')
  const refField = type === 'reply' ? 'reply_to' : 'ref'
  const refValue = e[refField]
  const needsRef = type !== 'text' && type !== 'media'
  if (type === 'media' && (typeof e.media !== 'string' || !/^m_[0-9a-f]{20}$/.test(e.media))) {
    throw new DomainError('bad_request', 'a media message needs "media": the id of an upload (POST /v1/media)')
  }
  if (needsRef && (typeof refValue !== 'number' || !Number.isSafeInteger(refValue) || refValue < 1)) {
    throw new DomainError('bad_request', `a ${type} needs "${refField}": the seq of a message in this chat`)
  }
  let body: string
  if (type === 'delete') {
    body = 'null'
  } else if (type === 'reaction') {
    if (e.body !== null && (typeof e.body !== 'string' || e.body.length === 0 || e.body.length > MAX_EMOJI_LENGTH)) {
      throw new DomainError('bad_request', `a reaction body is an emoji (1-${MAX_EMOJI_LENGTH} characters), or null to remove yours`)
    }
    body = JSON.stringify(e.body)
  } else if (type === 'media') {
    body = e.body === undefined ? 'null' : JSON.stringify(e.body)
  } else {
    if (e.body === undefined || e.body === null) throw new DomainError('bad_request', 'body is required')
    body = JSON.stringify(e.body)
  }
  return {
    id: e.id,
    type: type as MessageType,
    body,
    ts: typeof e.ts === 'number' ? Math.trunc(e.ts) : null,
    ref: needsRef ? refValue as number : null,
    forwarded: e.forwarded === true,
    media: type === 'media' ? e.media as string : null
  }
}

/** The client message id of a payload, if one can be read, for error events about unparseable messages. */
export function clientIdOf (payload: Buffer): string | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as { id?: unknown }
    return typeof v?.id === 'string' && CLIENT_ID.test(v.id) ? v.id : undefined
  } catch {
    return undefined
  }
}

/**
 * The client id of an envelope from the first bytes of its JSON text (an
 * oversize publish is not read whole): the top-level "id", if it comes whole
 * within them.
 */
export function leadingClientId (prefix: Buffer): string | undefined {
  const text = prefix.toString('utf8')
  let depth = 0
  let i = 0
  /** Reads the string starting at text[i] (a quote); undefined if it does not end in the prefix. */
  const str = (): string | undefined => {
    const start = i
    for (i++; i < text.length; i++) {
      if (text[i] === '\\') i++
      else if (text[i] === '"') { i++; try { return JSON.parse(text.slice(start, i)) as string } catch { return undefined } }
    }
    return undefined
  }
  while (i < text.length) {
    const c = text[i]
    if (c === '"') {
      const key = str()
      if (key === undefined) return undefined
      if (depth !== 1 || key !== 'id') continue
      while (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t') i++
      if (text[i] !== ':') continue
      i++
      while (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t') i++
      if (text[i] !== '"') continue
      const id = str()
      return id !== undefined && CLIENT_ID.test(id) ? id : undefined
    }
    if (c === '{' || c === '[') depth++
    else if (c === '}' || c === ']') depth--
    i++
  }
  return undefined
}
