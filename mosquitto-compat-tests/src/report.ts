// The results table in mosquitto-compat-tests/README.md, between two marker
// comments. Only counts and listed reasons: no timings, so the same outcome
// renders the same text and CI can check that the README matches its run.
import { readFileSync, writeFileSync } from 'node:fs'
import { KINDS, matches, type Deviation, type Kind } from './deviations.js'
import type { TargetRun } from './suite.js'

export const START = '<!-- results:start (written by `npm run compat`; do not edit by hand) -->'
export const END = '<!-- results:end -->'

const SUITES = ['vectors MQTT 3.1', 'vectors MQTT 3.1.1', 'vectors MQTT 5', 'behaviour']

function kinds (rs: TargetRun['results']): string {
  const by = new Map<Kind, number>()
  for (const r of rs) if (r.outcome === 'deviation' && r.kind) by.set(r.kind, (by.get(r.kind) ?? 0) + 1)
  const total = [...by.values()].reduce((a, b) => a + b, 0)
  if (total === 0) return '0'
  return `${total} (${[...by].sort().map(([k, n]) => `${k} ${n}`).join(', ')})`
}

export function renderResults (runs: TargetRun[], deviations: Deviation[]): string {
  const lines: string[] = []
  lines.push('| Target | Broker | Suite | Cases | Passed | Expected deviations | Unexpected failures |')
  lines.push('|---|---|---|---:|---:|---|---:|')
  for (const run of runs) {
    for (const suite of SUITES) {
      const rs = run.results.filter((r) => r.suite === suite)
      if (rs.length === 0) continue
      const passed = rs.filter((r) => r.outcome === 'pass').length
      const failed = rs.filter((r) => r.outcome === 'fail').length
      lines.push(`| ${run.target} | ${run.version} | ${suite} | ${rs.length} | ${passed} | ${kinds(rs)} | ${failed} |`)
    }
  }
  lines.push('')
  const alive = runs.map((r) => `${r.target}: ${r.alive ? 'answered' : '**did not answer**'}`).join('; ')
  lines.push(`Liveness check after the run (CONNECT + PINGREQ): ${alive}.`)
  lines.push('')
  lines.push('### Expected deviations in this run')
  lines.push('')
  lines.push('Kinds: ' + Object.entries(KINDS).map(([k, v]) => `**${k}**: ${v}`).join('; ') + '.')
  lines.push('')
  for (const run of runs) {
    const hits = deviations
      .map((d) => ({ d, n: run.results.filter((r) => r.outcome === 'deviation' && matches(d, run.target, r.id, r.protocol)).length }))
      .filter((x) => x.n > 0)
    if (hits.length === 0) continue
    lines.push(`**${run.target}**`)
    lines.push('')
    for (const { d, n } of hits) lines.push(`- \`${d.selector}\`${n > 1 ? ` (${n} cases)` : ''}: ${d.kind}: ${d.reason}`)
    lines.push('')
  }
  const failures = runs.flatMap((run) => run.results.filter((r) => r.outcome === 'fail').map((r) => `- ${run.target}: \`${r.id}\`: ${r.detail ?? ''}`))
  if (failures.length > 0) lines.push('### Unexpected failures', '', ...failures, '')
  const stale = runs.flatMap((run) => run.stale.map((d) => `- ${run.target}: \`${d.selector}\` (deviations.txt line ${d.line}) now passes`))
  if (stale.length > 0) lines.push('### Listed deviations that no longer happen', '', ...stale, '')
  return lines.join('\n').trimEnd()
}

export function readmeSection (readme: string): string | undefined {
  const a = readme.indexOf(START)
  const b = readme.indexOf(END)
  if (a < 0 || b < a) return undefined
  return readme.slice(a + START.length, b).trim()
}

/** Replaces what lies between two marker lines of a file (kept) with `section`. */
export function replaceMarked (path: string, start: string, end: string, section: string): void {
  const text = readFileSync(path, 'utf8')
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  if (a < 0 || b < a) throw new Error(`${path}: the markers ${start} … ${end} are missing`)
  writeFileSync(path, `${text.slice(0, a + start.length)}\n\n${section}\n\n${text.slice(b)}`)
}

export function writeReadme (path: string, section: string): void {
  replaceMarked(path, START, END, section)
}
