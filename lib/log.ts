// The server's logger: pino, JSON lines for collectors, or readable lines for
// a person at a terminal (pino-pretty, formatted in this process so nothing
// is lost at exit). MQCHAT_LOG_FORMAT picks; auto looks at standard output.
import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from './config.js'

export function logFormat (cfg: Pick<Config, 'logFormat'>, stdoutIsTerminal = process.stdout.isTTY === true): 'json' | 'pretty' {
  if (cfg.logFormat !== 'auto') return cfg.logFormat
  return stdoutIsTerminal ? 'pretty' : 'json'
}

export function createLogger (cfg: Pick<Config, 'logLevel' | 'logFormat'>): Logger {
  const options = { level: cfg.logLevel, base: { pid: process.pid } }
  if (logFormat(cfg) === 'json') return pino(options)
  return pino(options, pretty({
    sync: true,
    colorize: process.stdout.isTTY === true && pretty.isColorSupported,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname'
  }))
}
