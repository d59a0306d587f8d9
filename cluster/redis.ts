// Redis connections for the cluster profile, from configuration: one server
// (MQCHAT_REDIS_URL), a Sentinel-managed master (MQCHAT_REDIS_SENTINELS), or
// Redis Cluster (MQCHAT_REDIS_CLUSTER_NODES). Password and database number
// come from the URL in every case.
import { Redis, Cluster, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../lib/config.js'

export type RedisConnection = Redis | Cluster

const hostPorts = (list: string): Array<{ host: string, port: number }> =>
  list.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    const i = x.lastIndexOf(':')
    return { host: x.slice(0, i), port: Number(x.slice(i + 1)) }
  })

type RedisConfig = Pick<Config, 'redisUrl' | 'redisSentinels' | 'redisSentinelName' | 'redisClusterNodes' | 'nodeId'>

/** Options shared by every connection: never give up reconnecting, never drop queued commands. */
function baseOptions (cfg: RedisConfig, name: string): RedisOptions {
  const u = new URL(cfg.redisUrl)
  return {
    connectionName: `mqchat:${cfg.nodeId}:${name}`,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // Commands wait through a Redis restart instead of failing after 20 retries.
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 100, 2000)
  }
}

/** Sent with callBuffer (for Buffer replies), which automatic pipelining breaks. */
const CALL_BUFFER_COMMANDS = ['XAUTOCLAIM', 'XREADGROUP']

type Scripted = Record<string, (...args: Array<string | number>) => Promise<unknown>>

/**
 * A Lua script as a function of its keys and arguments, sent as EVALSHA
 * (ioredis falls back to EVAL once when Redis does not know it yet), so
 * neither the script's text nor its hashing by Redis is paid per call.
 * Without `numberOfKeys`, the call's first argument is the number of keys.
 */
export function luaScript (redis: RedisConnection, name: string, lua: string, numberOfKeys?: number): (...args: Array<string | number>) => Promise<unknown> {
  const command = `mqchat${name}`
  const r = redis as unknown as Scripted
  if (typeof r[command] !== 'function') redis.defineCommand(command, { lua, numberOfKeys })
  return (...args) => r[command]!(...args)
}

/** Commands this process sent to Redis, by name (scripts count once: EVALSHA or EVAL), over every connection. */
const sent: Record<string, number> = {}
export const redisCommandCounts = (): Record<string, number> => ({ ...sent })

export function redisConnection (cfg: RedisConfig, name: string, log: Logger, how: { pipelined?: boolean } = {}): RedisConnection {
  // Pipelined: the commands of one event-loop turn leave as one write instead of one write each.
  // Not for a connection that subscribes or blocks (XREADGROUP BLOCK).
  // callBuffer loses its command name in an automatic pipeline (redis/ioredis#1923, open in 5.9):
  // the commands this code sends with callBuffer go out on their own.
  const opts = { ...baseOptions(cfg, name), enableAutoPipelining: how.pipelined === true, autoPipeliningIgnoredCommands: CALL_BUFFER_COMMANDS }
  let conn: RedisConnection
  if (cfg.redisClusterNodes !== '') {
    conn = new Cluster(hostPorts(cfg.redisClusterNodes), { redisOptions: opts, clusterRetryStrategy: opts.retryStrategy })
  } else if (cfg.redisSentinels !== '') {
    conn = new Redis({ ...opts, sentinels: hostPorts(cfg.redisSentinels), name: cfg.redisSentinelName })
  } else {
    const u = new URL(cfg.redisUrl)
    conn = new Redis({ ...opts, host: u.hostname, port: u.port ? Number(u.port) : 6379 })
  }
  // Counted for the round trips per message the bench reports per process (SIGUSR2 logs them).
  const send = conn.sendCommand.bind(conn) as (...args: unknown[]) => unknown
  ;(conn as unknown as { sendCommand: (...args: unknown[]) => unknown }).sendCommand = (...args: unknown[]) => {
    const command = (args[0] as { name?: string } | undefined)?.name ?? 'unknown'
    sent[command] = (sent[command] ?? 0) + 1
    return send(...args)
  }
  let down = false
  conn.on('error', (err: Error) => { if (!down) log.warn({ err: err.message, conn: name }, 'redis connection error') })
  conn.on('close', () => { if (!down) { down = true; log.warn({ conn: name }, 'redis connection lost; reconnecting') } })
  conn.on('ready', () => { if (down) { down = false; log.info({ conn: name }, 'redis connection restored') } })
  return conn
}
