// Expected deviations: mosquitto-compat-tests/deviations.txt, one line per
// case (or per listed group) with its kind and reason. See that file's header.
import { readFileSync } from 'node:fs'

export const KINDS = {
  reference: 'fails on the reference broker itself (Mosquitto from Debian)',
  may: 'the specification leaves it to the server (MAY/SHOULD); the vector records Mosquitto\'s choice',
  config: 'a configured limit or option that differs from the vector\'s broker',
  bug: 'a broker defect, listed with its plan'
} as const
export type Kind = keyof typeof KINDS

export interface Deviation {
  line: number
  /** Target name, or a prefix ending in `*`. */
  target: string
  /** A case id, a prefix ending in `*`, or `protocol 5` (every case of that protocol). */
  selector: string
  kind: Kind
  reason: string
}

export function parseDeviations (text: string, file = 'deviations.txt'): Deviation[] {
  const out: Deviation[] = []
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const parts = line.split(' | ').map((s) => s.trim())
    if (parts.length !== 4 || parts.some((p) => p === '')) throw new Error(`${file}:${i + 1}: expected "target | case | kind | reason", got: ${line}`)
    const [target, selector, kind, reason] = parts as [string, string, string, string]
    if (!(kind in KINDS)) throw new Error(`${file}:${i + 1}: unknown kind "${kind}" (one of ${Object.keys(KINDS).join(', ')})`)
    out.push({ line: i + 1, target, selector, kind: kind as Kind, reason })
  })
  return out
}

export function loadDeviations (path: string): Deviation[] {
  return parseDeviations(readFileSync(path, 'utf8'), path)
}

const glob = (pattern: string, value: string): boolean =>
  pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value

export function appliesTo (d: Deviation, target: string): boolean {
  return glob(d.target, target)
}

export function matches (d: Deviation, target: string, caseId: string, protocol: string): boolean {
  if (!appliesTo(d, target)) return false
  const m = /^protocol (\S+)$/.exec(d.selector)
  return m ? m[1] === protocol : glob(d.selector, caseId)
}
