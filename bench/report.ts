// bench/README.md's results section and its SVG charts, from one results
// file. The section sits between two marker comments; the prose around it
// (method, profiling notes) is written by hand.
import { describeByProcess, type CommandsByProcess } from './store-commands.js'
import { replaceMarked } from '../mosquitto-compat-tests/src/report.js'

export const START = '<!-- bench:start (written by `npm run bench`; do not edit by hand) -->'
export const END = '<!-- bench:end -->'

interface Target { version: string, [k: string]: unknown }
interface Scenario { options: Record<string, unknown>, targets: Record<string, Target> }
export interface BenchOutput { started: string, size: string, machine: Record<string, unknown>, results: Record<string, Scenario | Record<string, unknown>> }

const REFS = ['mosquitto', 'aedes'] as const
const num = (v: unknown, digits = 0): string => typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–'
/** mqchat's figure as a multiple of a reference's (higher is better when `higherBetter`). */
function ratio (ours: unknown, ref: unknown, higherBetter: boolean): string {
  if (typeof ours !== 'number' || typeof ref !== 'number' || ours <= 0 || ref <= 0) return '–'
  const r = ours / ref
  return `${r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}×${higherBetter ? '' : ' (lower is better)'}`
}

function table (rows: string[][]): string {
  return [rows[0]!.join(' | '), rows[0]!.map(() => '---').join(' | '), ...rows.slice(1).map((r) => r.join(' | '))].map((l) => `| ${l} |`).join('\n')
}

/** A bar chart as SVG: one group per label, one bar per series. */
export function barChart (title: string, unit: string, labels: string[], series: Array<{ name: string, values: number[] }>): string {
  const W = 640
  const H = 300
  const left = 70
  const bottom = 40
  const top = 40
  const colors = ['#2a7ab0', '#e07b39', '#5aa469', '#8d6cab']
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values.filter(Number.isFinite)))
  const groupW = (W - left - 20) / labels.length
  const barW = Math.min(40, (groupW - 10) / series.length)
  const y = (v: number): number => top + (H - top - bottom) * (1 - v / max)
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
    `<line x1="${left}" y1="${H - bottom}" x2="${W - 10}" y2="${H - bottom}" stroke="#333"/>`,
    `<text x="12" y="${top - 10}">${unit}</text>`
  ]
  for (let k = 0; k <= 4; k++) {
    const v = max * k / 4
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)}</text>`, `<line x1="${left}" y1="${y(v)}" x2="${W - 10}" y2="${y(v)}" stroke="#ddd"/>`)
  }
  labels.forEach((label, i) => {
    const x0 = left + i * groupW + (groupW - barW * series.length) / 2
    series.forEach((s, j) => {
      const v = s.values[i] ?? NaN
      if (!Number.isFinite(v)) return
      parts.push(`<rect x="${x0 + j * barW}" y="${y(v)}" width="${barW - 2}" height="${H - bottom - y(v)}" fill="${colors[j % colors.length]}"><title>${s.name} ${label}: ${v}</title></rect>`)
    })
    parts.push(`<text x="${left + i * groupW + groupW / 2}" y="${H - bottom + 16}" text-anchor="middle">${label}</text>`)
  })
  series.forEach((s, j) => parts.push(`<rect x="${left + j * 130}" y="${H - 14}" width="10" height="10" fill="${colors[j % colors.length]}"/><text x="${left + j * 130 + 14}" y="${H - 5}">${s.name}</text>`))
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

export function render (out: BenchOutput, resultsFile: string): { markdown: string, charts: Record<string, string> } {
  const m = out.machine
  const charts: Record<string, string> = {}
  const lines: string[] = []
  lines.push(`Run ${out.started} (${out.size} sizes), commit \`${String(m.commit).slice(0, 12)}\`, results in [\`${resultsFile}\`](${resultsFile}).`)
  lines.push(`Machine: ${String(m.cpu)}, ${String(m.cores)} cores, ${num(Number(m.memoryBytes) / 2 ** 30, 1)} GiB, Node ${String(m.node)}.`)
  lines.push('')
  const r = out.results as Record<string, Scenario>
  const names = (s: Scenario): string[] => ['mqchat', 'mqchat-cluster', ...REFS].filter((n) => s.targets[n] !== undefined)
  const version = (s: Scenario, n: string): string => {
    const own = s.targets[n]!.options as Record<string, unknown> | undefined
    const differs = Object.entries(own ?? {}).filter(([k, v]) => s.options[k] !== v).map(([k, v]) => `${k} ${String(v)}`)
    const sizes = differs.length > 0 ? `; ${differs.join(', ')}` : ''
    return `${n} (${s.targets[n]!.version}${sizes})`
  }

  const pairs = r['chat-pairs']
  if (pairs) {
    const o = pairs.options
    lines.push(`### 1. 1:1 chat throughput — ${String(o.pairs)} sender → receiver pairs, QoS 1, ${String(o.payloadBytes)}-byte envelopes, ${String(o.window)} undelivered per sender`)
    lines.push('')
    // Server CPU per delivered message: every message of the run reaches one receiver, so it is the server's cores over the rate.
    const rows = [['target', 'max msg/s', 'vs Mosquitto', 'vs bare aedes', 'server CPU (cores)', 'server CPU per delivered message', 'generator CPU (cores)']]
    for (const n of names(pairs)) {
      const t = pairs.targets[n]!
      rows.push([version(pairs, n), num(t.maxRate), ratio(t.maxRate, pairs.targets.mosquitto?.maxRate, true), ratio(t.maxRate, pairs.targets.aedes?.maxRate, true), num(t.serverCores, 2), `${num(1e6 * Number(t.serverCores) / Number(t.maxRate))} µs`, num(t.generatorCores, 2)])
    }
    lines.push(table(rows), '')
    const byProcess = pairs.targets['mqchat-cluster']?.cpuByProcess as Array<{ name: string, cores: number }> | undefined
    if (byProcess) lines.push(`Cluster CPU by process during the maximum-rate run (cores): ${byProcess.map((p) => `${p.name} ${num(p.cores, 2)}`).join(', ')}.`, '')
    const redis = pairs.targets['mqchat-cluster']?.redisCommands as { total: number, byCommand: Array<{ command: string, perMessage: number }> } | undefined
    if (redis) lines.push(`Cluster Redis commands per delivered message during the maximum-rate run (\`INFO commandstats\`, all clients): ${num(redis.total, 1)} — ${redis.byCommand.slice(0, 10).map((c) => `${c.command} ${num(c.perMessage, 2)}`).join(', ')}.`, '')
    // Counted by each process itself (bench/store-commands.ts); results from before that have none.
    const sent = (key: 'mongoByProcess' | 'redisByProcess', what: string): void => {
      const c = pairs.targets['mqchat-cluster']?.[key] as CommandsByProcess | undefined
      if (c) lines.push(`${what} per delivered message during the maximum-rate run, by process: ${num(c.total, 2)} — ${describeByProcess(c)}.`, '')
    }
    sent('redisByProcess', 'Cluster Redis commands sent (a script is one call; `INFO commandstats` above also counts the commands run inside scripts)')
    sent('mongoByProcess', 'Cluster MongoDB commands sent (the driver\'s command monitoring)')
    lines.push('### 2. Latency under load — publish → receiver, at 25 / 50 / 75 % of each target\'s own maximum')
    lines.push('')
    const lrows = [['target', 'load', 'msg/s', 'p50 ms', 'p99 ms', 'p99.9 ms']]
    for (const n of names(pairs)) {
      for (const p of (pairs.targets[n]!.latency as Array<Record<string, number>>)) lrows.push([n, `${p.load! * 100} %`, num(p.achievedRate), num(p.p50Ms, 2), num(p.p99Ms, 2), num(p.p999Ms, 2)])
    }
    lines.push(table(lrows), '')
    charts['throughput.svg'] = barChart('1:1 chat: maximum sustained rate', 'msg/s', ['max'], names(pairs).map((n) => ({ name: n, values: [pairs.targets[n]!.maxRate as number] })))
    charts['latency.svg'] = barChart('Latency p99 at 25 / 50 / 75 % of each maximum', 'ms', ['25 %', '50 %', '75 %'], names(pairs).map((n) => ({ name: n, values: (pairs.targets[n]!.latency as Array<{ p99Ms: number }>).map((p) => p.p99Ms) })))
    lines.push('![throughput](charts/throughput.svg) ![latency](charts/latency.svg)', '')
  }
  const fanout = r['group-fanout']
  if (fanout) {
    const o = fanout.options
    lines.push(`### 3. Group fan-out — ${num(o.members)} members online, ${num(o.messages)} messages (mqchat only)`)
    lines.push('')
    const rows = [['target', 'all devices have it: p50 ms', 'p99 ms', 'max ms', 'single delivery p50 ms', 'p99 ms', 'lost']]
    for (const n of names(fanout)) {
      const f = fanout.targets[n]!
      rows.push([version(fanout, n), num(f.completionP50Ms, 1), num(f.completionP99Ms, 1), num(f.completionMaxMs, 1), num(f.deliveryP50Ms, 1), num(f.deliveryP99Ms, 1), num(f.lost)])
    }
    lines.push(table(rows), '')
  }
  const conns = r.connections
  if (conns) {
    lines.push(`### 4. Connections — ${num(conns.options.count)} persistent sessions (authenticated on mqchat), each subscribed to its inbox at QoS 1`)
    lines.push('')
    // Results since the inspector reading hold the heap after a forced GC; older ones read /metrics, garbage included.
    const afterGc = names(conns).some((n) => conns.targets[n]!.heapAfterGc === true)
    const rows = [['target', 'connected', 'connects/s', 'vs Mosquitto', 'vs bare aedes', 'RSS per connection', afterGc ? 'heap in use per connection (after a forced GC)' : 'heap in use per connection (no forced GC)']]
    for (const n of names(conns)) {
      const t = conns.targets[n]!
      rows.push([version(conns, n), num(t.connected), num(t.connectPerSec), ratio(t.connectPerSec, conns.targets.mosquitto?.connectPerSec, true), ratio(t.connectPerSec, conns.targets.aedes?.connectPerSec, true), `${num((t.rssPerConnBytes as number) / 1024, 1)} KiB`, t.heapPerConnBytes === null ? '–' : `${num((t.heapPerConnBytes as number) / 1024, 1)} KiB`])
    }
    lines.push(table(rows), '')
    if (typeof conns.targets.mqchat?.heapPerConnBytes === 'number') {
      lines.push(afterGc
        ? 'The heap column is V8\'s heap in use (Node processes only), read over the server\'s inspector after two forced full collections, before the connects and after them.'
        : 'The heap column is V8\'s heap in use read from `/metrics`, without a forced GC, so it includes garbage. After a GC (heap snapshots of 10,000 idle sessions) see the profiling notes above.', '')
    }
    const cl = conns.targets['mqchat-cluster']?.brokers as Array<{ name: string, rssPerConnBytes: number, heapPerConnBytes?: number }> | undefined
    if (cl) lines.push(`Cluster, every session on broker-1: growth per session of the cluster on ${cl.map((b) => `${b.name} ${num(b.rssPerConnBytes / 1024, 1)} KiB RSS${b.heapPerConnBytes !== undefined ? `, ${num(b.heapPerConnBytes / 1024, 1)} KiB heap` : ''}`).join('; ')} (aedes' Redis persistence keeps every persistent subscription of the cluster in every broker's memory).`, '')
    charts['connections.svg'] = barChart('Memory per connection (RSS)', 'KiB', ['RSS'], names(conns).map((n) => ({ name: n, values: [(conns.targets[n]!.rssPerConnBytes as number) / 1024] })))
    lines.push('![connections](charts/connections.svg)', '')
  }
  const catchup = r['offline-catchup']
  if (catchup) {
    lines.push(`### 5. Offline catch-up — ${num(catchup.options.messages)} messages queued for one offline device (mqchat only)`)
    lines.push('')
    const rows = [['target', 'reconnect → last message ms', 'msg/s', 'first message ms', 'missing', 'duplicates', 'last PUBACK → all committed ms']]
    for (const n of names(catchup)) {
      const c = catchup.targets[n]!
      // Results from before the drain was measured have no figure for it.
      rows.push([version(catchup, n), num(c.catchupMs), num(c.msgPerSec), num(c.firstMessageMs, 1), num(c.missing), num(c.duplicates), c.drainMs === undefined ? '—' : num(c.drainMs)])
    }
    lines.push(table(rows), '')
    lines.push('The device reconnects once the sender has the `ack` of every message, i.e. once all are committed (in the cluster: the chat stream drained); the last column is that wait, from the last PUBACK.', '')
  }
  const storm = r['reconnect-storm']
  if (storm) {
    const o = storm.options
    lines.push(`### 6. Reconnect storm — ${num(o.devices)} offline devices with ${String(o.perDevice)} queued messages each reconnect at once`)
    lines.push('')
    const rows = [['target', 'all connected ms', 'all drained ms', 'vs Mosquitto', 'vs bare aedes', 'lost', 'duplicates']]
    for (const n of names(storm)) {
      const t = storm.targets[n]!
      rows.push([version(storm, n), num(t.allConnectedMs), num(t.drainedMs), ratio(t.drainedMs, storm.targets.mosquitto?.drainedMs, false), ratio(t.drainedMs, storm.targets.aedes?.drainedMs, false), num(t.lost), num(t.duplicates)])
    }
    lines.push(table(rows), '')
    charts['storm.svg'] = barChart('Reconnect storm: time until every queued message arrived', 'ms', ['drained'], names(storm).map((n) => ({ name: n, values: [storm.targets[n]!.drainedMs as number] })))
    lines.push('![storm](charts/storm.svg)', '')
  }
  for (const [key, title] of [['profile', 'mqchat'], ['profile broker-1', 'the cluster\'s broker-1'], ['profile bridge-1', 'the cluster\'s bridge-1']] as const) {
    const prof = out.results[key] as { byArea?: Array<{ area: string, pct: number }>, topFunctions?: Array<{ fn: string, where: string, pct: number }> } | undefined
    if (!prof?.byArea) continue
    lines.push(`### CPU profile of ${title} during scenario 1 (self time)`)
    lines.push('')
    lines.push(table([['where', 'share of busy CPU'], ...prof.byArea.slice(0, 10).map((a) => [a.area, `${a.pct} %`])]), '')
    lines.push(table([['function', 'where', 'share'], ...(prof.topFunctions ?? []).slice(0, 10).map((f) => [`\`${f.fn}\``, f.where, `${f.pct} %`])]), '')
  }
  return { markdown: lines.join('\n').trimEnd(), charts }
}

export function writeSection (readmePath: string, section: string): void {
  replaceMarked(readmePath, START, END, section)
}

/** Results that would make the numbers meaningless: a scenario without figures, or messages lost. */
export function problems (out: BenchOutput): string[] {
  const bad: string[] = []
  for (const [scenario, s] of Object.entries(out.results)) {
    if (scenario.startsWith('profile')) continue
    for (const [name, t] of Object.entries((s as Scenario).targets)) {
      for (const key of ['maxRate', 'connectPerSec', 'drainedMs', 'catchupMs', 'completionP50Ms']) {
        if (key in t && !(typeof t[key] === 'number' && Number.isFinite(t[key]) && (t[key] as number) > 0)) bad.push(`${scenario} on ${name}: no ${key}`)
      }
      // Duplicates are reported, not refused: delivery is at least once (DESIGN), clients dedupe by seq.
      for (const key of ['lost', 'missing']) if (typeof t[key] === 'number' && t[key] !== 0) bad.push(`${scenario} on ${name}: ${key} ${String(t[key])}`)
      if (typeof t.connected === 'number' && typeof t.count === 'number' && t.connected !== t.count) bad.push(`${scenario} on ${name}: ${String(t.connected)} of ${String(t.count)} connected`)
    }
  }
  return bad
}
