// Commands each cluster process sends to MongoDB and to Redis, per delivered
// message (issue 19 asks the bench to count round trips per role). Each node
// counts what it sends (the MongoDB driver's command monitoring,
// store/mongo/database.ts; a count per Redis command, cluster/redis.ts, where
// a script is one EVALSHA) and logs the counts on SIGUSR2; the bench reads
// them before and after a run.
import type { BenchTarget } from './targets.js'

type Counts = Record<string, number>
export interface NodeCounts { mongo: Counts, redis: Counts }
export type CountsByNode = Map<string, NodeCounts>

/** The latest `counters` line of a log, and how many such lines there are. */
export function lastCounters (log: string): { lines: number, counts: NodeCounts | undefined } {
  let lines = 0
  let counts: NodeCounts | undefined
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"counters"')) continue
    try {
      const parsed = JSON.parse(line) as { counters?: { mongoCommands?: Counts, redisCommands?: Counts } }
      lines++
      counts = { mongo: parsed.counters?.mongoCommands ?? {}, redis: parsed.counters?.redisCommands ?? {} }
    } catch { /* a partial line */ }
  }
  return { lines, counts }
}

/** Every cluster node's command counts now (undefined for a target without per-process logs). */
export async function nodeCommandCounts (t: BenchTarget): Promise<CountsByNode | undefined> {
  const nodes = t.processes?.filter((p) => p.log !== undefined)
  if (!nodes || nodes.length === 0) return undefined
  const out: CountsByNode = new Map()
  await Promise.all(nodes.map(async (p) => {
    const before = lastCounters(p.log!()).lines
    process.kill(p.pid, 'SIGUSR2')
    const until = Date.now() + 5000
    for (;;) {
      const now = lastCounters(p.log!())
      if (now.lines > before && now.counts) { out.set(p.name, now.counts); return }
      if (Date.now() > until) throw new Error(`${p.name} did not log its counters within 5 s of SIGUSR2`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }))
  return out
}

export interface ProcessCommands { name: string, perMessage: number, byCommand: Array<{ command: string, perMessage: number }> }
export interface CommandsByProcess { total: number, byProcess: ProcessCommands[] }

/** One store's commands between two readings, per delivered message, per process. */
export function perMessageByProcess (before: CountsByNode, after: CountsByNode, store: keyof NodeCounts, messages: number): CommandsByProcess {
  const byProcess: ProcessCommands[] = []
  for (const [name, counts] of after) {
    const was = before.get(name)?.[store] ?? {}
    const byCommand = Object.entries(counts[store])
      .map(([command, n]) => ({ command, perMessage: (n - (was[command] ?? 0)) / Math.max(1, messages) }))
      .filter((c) => c.perMessage > 0)
      .sort((a, b) => b.perMessage - a.perMessage)
    byProcess.push({ name, perMessage: byCommand.reduce((a, c) => a + c.perMessage, 0), byCommand })
  }
  byProcess.sort((a, b) => a.name.localeCompare(b.name))
  return { total: byProcess.reduce((a, p) => a + p.perMessage, 0), byProcess }
}

/** "api-1 0.01, broker-1 1.00 (xadd 1.00), …" */
export function describeByProcess (c: CommandsByProcess, top = 3): string {
  return c.byProcess.map((p) => `${p.name} ${p.perMessage.toFixed(2)}${p.byCommand.length > 0 ? ` (${p.byCommand.slice(0, top).map((x) => `${x.command} ${x.perMessage.toFixed(2)}`).join(', ')})` : ''}`).join('; ')
}
