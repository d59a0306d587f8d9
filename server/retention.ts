// The retention purge and media lifecycle, once at start and then
// periodically: history older than its retention period is deleted (sync
// reports purged ranges as missing), and so is media past its retention or
// never sent in any chat. And, every MQCHAT_EXPIRY_SWEEP_SECONDS, expired
// disappearing messages (never read once expired) are deleted.
import type { Logger } from 'pino'
import type { MediaService } from '../core/media.js'
import type { HistoryStore } from '../store/types.js'

export interface RetentionPolicy { historyDays: number, mediaDays: number, mediaUnreferencedHours: number, intervalMinutes: number, expirySweepSeconds: number }

export async function startRetention (history: HistoryStore, media: MediaService, policy: RetentionPolicy, log: Logger, onPurged: () => void = () => {}, onExpired: (chats: string[]) => void = () => {}): Promise<{ stop (): void }> {
  const sweep = async (): Promise<void> => {
    const chats = await history.purgeExpired(Date.now())
    if (chats.length > 0) {
      onExpired(chats)
      log.debug({ chats: chats.length }, 'expired disappearing messages deleted')
    }
  }
  const purge = async (): Promise<void> => {
    const before = Date.now() - policy.historyDays * 86_400_000
    const n = await history.purgeBefore(before)
    if (n > 0) {
      onPurged()
      log.info({ purged: n, before: new Date(before).toISOString() }, 'retention purge')
    }
    const gone = await media.expire(policy.mediaDays * 86_400_000, policy.mediaUnreferencedHours * 3_600_000)
    if (gone.length > 0) log.info({ media: gone.length }, 'media lifecycle: expired and unreferenced media deleted')
  }
  await purge()
  await sweep()
  const timer = setInterval(() => { purge().catch((err: unknown) => log.error({ err }, 'retention purge failed')) }, policy.intervalMinutes * 60_000)
  timer.unref()
  const sweeper = setInterval(() => { sweep().catch((err: unknown) => log.error({ err }, 'deleting expired messages failed')) }, policy.expirySweepSeconds * 1000)
  sweeper.unref()
  return { stop: () => { clearInterval(timer); clearInterval(sweeper) } }
}
