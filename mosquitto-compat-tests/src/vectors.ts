// Mosquitto's scripted packet exchanges (../shared/mqtt-vectors/mosquitto/),
// read as data. See ../shared/mqtt-vectors/README.md for the format.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export type Protocol = '3.1' | '3.1.1' | '5'

export type Step =
  | { type: 'send', payload: string, comment?: string }
  | { type: 'recv', payload: string, comment?: string }
  | { type: 'publish', topic: string, qos: 0 | 1 | 2, payload: string, comment?: string }

export interface VectorCase {
  /** `<file> / <group> / <name>`: unique, stable, used in deviations.txt. */
  id: string
  file: string
  group: string
  name: string
  /** Protocol level of the default CONNECT (3, 4 or 5). */
  ver: 3 | 4 | 5
  /** The protocol the case is about, for the report: from the group's name (`v5.0 …`), else from ver. */
  protocol: Protocol
  connect: boolean
  expectDisconnect: boolean
  msgs: Step[]
}

interface RawGroup { group: string, disable?: boolean, tests: Array<{ name: string, ver?: number, connect?: boolean, expect_disconnect?: boolean, msgs: Step[] }> }

function protocolOf (group: string, ver: number): Protocol {
  if (/^v5\.0\b/.test(group)) return '5'
  if (/^v3\.1\.1\b/.test(group)) return '3.1.1'
  if (/^v3\.1\b/.test(group)) return '3.1'
  return ver === 5 ? '5' : ver === 3 ? '3.1' : '3.1.1'
}

export function loadVectors (dir: string): VectorCase[] {
  const out: VectorCase[] = []
  const seen = new Set<string>()
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const groups = JSON.parse(readFileSync(join(dir, file), 'utf8')) as RawGroup[]
    for (const g of groups) {
      if (g.disable === true) continue
      for (const t of g.tests) {
        const ver = (t.ver ?? 4) as 3 | 4 | 5
        if (![3, 4, 5].includes(ver)) throw new Error(`${file}: ${g.group} / ${t.name}: unknown ver ${String(t.ver)}`)
        let id = `${file.replace(/\.json$/, '')} / ${g.group.trim()} / ${t.name.trim()}`
        // A few names repeat inside a group; number the repeats so ids stay unique.
        for (let n = 2; seen.has(id); n++) id = `${id.replace(/ #\d+$/, '')} #${n}`
        seen.add(id)
        out.push({
          id,
          file,
          group: g.group,
          name: t.name,
          ver,
          protocol: protocolOf(g.group, ver),
          connect: t.connect ?? true,
          expectDisconnect: t.expect_disconnect ?? true,
          msgs: t.msgs
        })
      }
    }
  }
  return out
}
