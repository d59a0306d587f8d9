// Packets are stored as JSON. Plain JSON loses two things aedes relies on:
// Buffer payloads and keys whose value is `undefined` (aedes-packet sets
// `messageId: undefined` on purpose). Both are tagged on the way in and restored
// on the way out, so a packet reads back with exactly the shape it was written.

const BUF = '$b'
const UNDEF = '$u'

export function encodePacket (value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = key === '' ? v : this[key]
    if (raw instanceof Uint8Array) return { [BUF]: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') }
    if (raw === undefined) return { [UNDEF]: 1 }
    return v
  })
}

export function decodePacket<T = Record<string, unknown>> (text: string): T {
  return revive(JSON.parse(text)) as T
}

function revive (v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map(revive)
  const o = v as Record<string, unknown>
  if (typeof o[BUF] === 'string' && Object.keys(o).length === 1) return Buffer.from(o[BUF] as string, 'base64')
  if (o[UNDEF] === 1 && Object.keys(o).length === 1) return undefined
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(o)) out[k] = revive(o[k])
  return out
}
