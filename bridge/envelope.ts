// The chat message envelope a device publishes to chat/<chatId>/msg:
//   {"id": "<client message id>", "type": "text", "body": <any JSON>, "ts": <client ms>}
// `body` is opaque (ciphertext for E2EE clients): it is stored and forwarded
// as the exact JSON text the client sent, never interpreted.
import { DomainError } from '../core/errors.js'
import { isKey } from '../core/keys.js'

/**
 * An end-to-end encrypted message's ciphertexts (docs/protocol.md, "End-to-end
 * encryption"): one per recipient device (Olm, pairwise), or one for every
 * member (Megolm, a group sender key). `senderKey` is the sending device's
 * identity key.
 */
export type E2ee =
  | { kind: 'olm', senderKey: string, devices: Record<string, { type: 0 | 1, body: string }> }
  | { kind: 'megolm', senderKey: string, session: string, body: string }

export interface Envelope {
  id: string
  type: MessageType
  /** The stored body: the client's JSON, or for an encrypted message {"e2ee": …} (its ciphertexts). */
  body: string
  /** An encrypted message's ciphertexts; null for plaintext. */
  e2ee: E2ee | null
  ts: number | null
  /** reply_to of a reply; ref of an edit, delete or reaction. */
  ref: number | null
  forwarded: boolean
  /** The media id of a `media` message. */
  media: string | null
}

/**
 * Message types: content (text, reply), operations on earlier messages (edit,
 * delete, reaction), `session`: a group sender key sent pairwise to the
 * members' devices (always end-to-end encrypted; shown to no one, pushed to
 * no one), and `timer`: the chat's disappearing-messages timer, body
 * {"seconds": N} (0: off).
 */
export const MESSAGE_TYPES = ['text', 'media', 'reply', 'edit', 'delete', 'reaction', 'session', 'timer'] as const
/** Types that may carry ciphertexts instead of a body. */
const ENCRYPTABLE = new Set(['text', 'media', 'reply', 'edit', 'session'])
const DEVICE_ID = /^dv_[0-9a-f]{16}$/
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
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
  const needsRef = type !== 'text' && type !== 'media' && type !== 'session' && type !== 'timer'
  if (type === 'media' && (typeof e.media !== 'string' || !/^m_[0-9a-f]{20}$/.test(e.media))) {
    throw new DomainError('bad_request', 'a media message needs "media": the id of an upload (POST /v1/media)')
  }
  if (needsRef && (typeof refValue !== 'number' || !Number.isSafeInteger(refValue) || refValue < 1)) {
    throw new DomainError('bad_request', `a ${type} needs "${refField}": the seq of a message in this chat`)
  }
  const e2ee = e.e2ee === undefined ? null : parseE2ee(e.e2ee, type)
  if (e2ee === null && type === 'session') throw new DomainError('bad_request', 'a session message is end-to-end encrypted: it needs "e2ee" with "olm"')
  let body: string
  if (e2ee !== null) {
    if (e.body !== undefined) throw new DomainError('bad_request', 'an encrypted message carries its content in "e2ee", not in "body"')
    body = JSON.stringify({ e2ee: e2ee.kind === 'olm' ? { olm: e2ee.devices, sender_key: e2ee.senderKey } : { megolm: { session: e2ee.session, body: e2ee.body }, sender_key: e2ee.senderKey } })
  } else if (type === 'delete') {
    body = 'null'
  } else if (type === 'reaction') {
    if (e.body !== null && (typeof e.body !== 'string' || e.body.length === 0 || e.body.length > MAX_EMOJI_LENGTH)) {
      throw new DomainError('bad_request', `a reaction body is an emoji (1-${MAX_EMOJI_LENGTH} characters), or null to remove yours`)
    }
    body = JSON.stringify(e.body)
  } else if (type === 'timer') {
    const b = e.body as { seconds?: unknown } | null
    if (b === null || typeof b !== 'object' || Array.isArray(b) || !Number.isSafeInteger(b.seconds) || (b.seconds as number) < 0 || Object.keys(b).length !== 1) {
      throw new DomainError('bad_request', 'a timer body is {"seconds": N}: the disappearing-messages timer, 0 to turn it off')
    }
    body = JSON.stringify({ seconds: b.seconds })
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
    e2ee,
    ts: typeof e.ts === 'number' ? Math.trunc(e.ts) : null,
    ref: needsRef ? refValue as number : null,
    forwarded: e.forwarded === true,
    media: type === 'media' ? e.media as string : null
  }
}

/** The "e2ee" field of an envelope: {"sender_key", "olm": {deviceId: {"type": 0|1, "body"}}} or {"sender_key", "megolm": {"session", "body"}}. */
function parseE2ee (raw: unknown, type: string): E2ee {
  const bad = (why: string): DomainError => new DomainError('bad_request', `e2ee: ${why}`)
  if (!ENCRYPTABLE.has(type)) throw bad(`a ${type} is not encrypted`)
  const x = raw as { sender_key?: unknown, olm?: unknown, megolm?: unknown } | null
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw bad('must be an object')
  const extra = Object.keys(x).filter((k) => k !== 'sender_key' && k !== 'olm' && k !== 'megolm')
  if (extra.length > 0) throw bad(`unknown fields ${extra.join(', ')}`)
  if (!isKey(x.sender_key)) throw bad('"sender_key" is the sending device\'s identity key (32 bytes, base64)')
  const isCiphertext = (b: unknown): b is string => typeof b === 'string' && b.length > 0 && BASE64.test(b)
  if ((x.olm === undefined) === (x.megolm === undefined)) throw bad('needs exactly one of "olm" (a ciphertext per device) and "megolm" (a group ciphertext)')
  if (x.olm !== undefined) {
    const o = x.olm as Record<string, { type?: unknown, body?: unknown }> | null
    if (o === null || typeof o !== 'object' || Array.isArray(o) || Object.keys(o).length === 0) throw bad('"olm" maps each recipient device id to its ciphertext')
    const devices: Record<string, { type: 0 | 1, body: string }> = {}
    for (const [deviceId, c] of Object.entries(o)) {
      if (!DEVICE_ID.test(deviceId)) throw bad(`"${deviceId}" is not a device id`)
      if (c === null || typeof c !== 'object' || (c.type !== 0 && c.type !== 1) || !isCiphertext(c.body) || Object.keys(c).length !== 2) throw bad(`the ciphertext for ${deviceId} must be {"type": 0|1, "body": base64}`)
      devices[deviceId] = { type: c.type, body: c.body }
    }
    return { kind: 'olm', senderKey: x.sender_key, devices }
  }
  if (type === 'session') throw bad('a session message goes pairwise ("olm")')
  const m = x.megolm as { session?: unknown, body?: unknown } | null
  if (m === null || typeof m !== 'object' || typeof m.session !== 'string' || m.session.length === 0 || m.session.length > 64 || !isCiphertext(m.body) || Object.keys(m).length !== 2) {
    throw bad('"megolm" must be {"session": its id, "body": base64}')
  }
  return { kind: 'megolm', senderKey: x.sender_key, session: m.session, body: m.body }
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
