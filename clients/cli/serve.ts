// `mqchat serve`: validate configuration, start the profile (local, or a
// cluster role), stop
// gracefully on SIGTERM/SIGINT (stop accepting, close clients, flush stores).
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
  const server = cfg.profile === 'cluster' ? await startCluster(cfg, log) : await startLocal(cfg, log)
  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down')
      const timer = setTimeout(() => {
        log.error('graceful shutdown timed out; exiting')
        process.exit(EXIT.failure)
      }, cfg.shutdownTimeoutMs)
      timer.unref()
      server.close().then(() => {
        log.info('stopped')
        resolve(EXIT.ok)
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve(EXIT.failure)
      })
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
