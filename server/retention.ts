// The retention purge: history older than the retention period is deleted,
// once at start and then periodically. Sync reports purged ranges as missing.
import type { Logger } from 'pino'
import type { HistoryStore } from '../store/types.js'

export async function startRetention (history: HistoryStore, days: number, intervalMinutes: number, log: Logger): Promise<{ stop (): void }> {
  const purge = async (): Promise<void> => {
    const before = Date.now() - days * 86_400_000
    const n = await history.purgeBefore(before)
    if (n > 0) log.info({ purged: n, before: new Date(before).toISOString() }, 'retention purge')
  }
  await purge()
  const timer = setInterval(() => { purge().catch((err: unknown) => log.error({ err }, 'retention purge failed')) }, intervalMinutes * 60_000)
  timer.unref()
  return { stop: () => clearInterval(timer) }
}
