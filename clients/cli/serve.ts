// `mqchat serve`: validate configuration, start the profile (local, or a
// cluster role), stop
// gracefully on SIGTERM/SIGINT (stop accepting, close clients, flush stores);
// SIGHUP reloads the TLS certificate; SIGUSR2 logs the server's counters.
import { ConfigError, loadConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/log.js'
import { startLocal } from '../../server/local.js'
import { startCluster } from '../../server/cluster.js'
import { EXIT } from './errors.js'

export async function serve (flags: Record<string, string | undefined>): Promise<number> {
  let cfg
  try {
    cfg = loadConfig(process.env, flags)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mqchat: ${err.message}\n`)
      return EXIT.usage
    }
    throw err
  }
  const log = createLogger(cfg)
  // A SIGTERM or SIGINT while the server starts (ports.json is written before
  // start-up ends) is kept and acted on once it has started, so it still stops
  // gracefully instead of being killed by the signal's default action. The
  // same listeners stay installed from here to the stop: had the count of
  // listeners dropped to zero in between, even for a moment, Node would have
  // stopped watching the signal and lost one that had arrived but was not yet
  // handled (seen under load: a SIGTERM right after start-up did nothing).
  let early: string | undefined
  let act = (signal: string): void => { early ??= signal }
  const onTerm = (): void => { act('SIGTERM') }
  const onInt = (): void => { act('SIGINT') }
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  let server
  try {
    server = cfg.profile === 'cluster' ? await startCluster(cfg, log) : await startLocal(cfg, log)
  } catch (err) {
    process.removeListener('SIGTERM', onTerm)
    process.removeListener('SIGINT', onInt)
    throw err
  }
  const running = server
  // SIGHUP: read the TLS certificate files again (new connections get the new one; open ones go on).
  const onHup = (): void => { running.reload() }
  process.on('SIGHUP', onHup)
  // SIGUSR2: the server's counters in the log (the bench reads MongoDB commands per message from them).
  // Asked for, so logged whatever MQCHAT_LOG_LEVEL is.
  const onUsr2 = (): void => { log.child({}, { level: 'info' }).info({ counters: running.counters?.() ?? {} }, 'counters') }
  process.on('SIGUSR2', onUsr2)
  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      // A second signal now gets its default action: a way out of a shutdown that hangs.
      process.removeListener('SIGTERM', onTerm)
      process.removeListener('SIGINT', onInt)
      process.removeListener('SIGHUP', onHup)
      process.removeListener('SIGUSR2', onUsr2)
      log.info({ signal }, 'shutting down')
      const timer = setTimeout(() => {
        log.error('graceful shutdown timed out; exiting')
        process.exit(EXIT.failure)
      }, cfg.shutdownTimeoutMs)
      timer.unref()
      running.close().then(() => {
        log.info('stopped')
        resolve(EXIT.ok)
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve(EXIT.failure)
      })
    }
    if (early !== undefined) { stop(early); return }
    act = stop
  })
}
