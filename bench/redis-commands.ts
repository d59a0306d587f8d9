// Redis commands per delivered message (issue 19 asks the bench to count
// them): the calls of every command, from Redis' own `INFO commandstats`,
// read before and after a run. Redis does not say which client made a call,
// so the figure is the cluster's total, by command.
import { Redis } from 'ioredis'

/** `INFO commandstats` as command -> calls ("cmdstat_xadd:calls=3,usec=…" lines). */
export function parseCommandStats (info: string): Map<string, number> {
  const calls = new Map<string, number>()
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]))
  return calls
}

export async function commandCalls (url: string): Promise<Map<string, number>> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })
  try {
    await r.connect()
    return parseCommandStats(await r.info('commandstats'))
  } finally {
    r.disconnect()
  }
}

export interface CommandsPerMessage { total: number, byCommand: Array<{ command: string, perMessage: number }> }

/** The calls between two readings, per delivered message; the reading itself (`info`) is left out. */
export function perMessage (before: Map<string, number>, after: Map<string, number>, messages: number): CommandsPerMessage {
  const byCommand: Array<{ command: string, perMessage: number }> = []
  for (const [command, n] of after) {
    const d = n - (before.get(command) ?? 0)
    if (d > 0 && command !== 'info') byCommand.push({ command, perMessage: d / Math.max(1, messages) })
  }
  byCommand.sort((a, b) => b.perMessage - a.perMessage)
  return { total: byCommand.reduce((a, c) => a + c.perMessage, 0), byCommand }
}
