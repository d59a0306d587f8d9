// Which devices have a live connection somewhere in the cluster (MQTT, or
// XMPP through a broker's in-process link): what a push needs to know, since
// a device on any broker is not away.
//
//   mqchat:device-node:<deviceId>   the broker node it is connected to
//   mqchat:node-devices:<node>      set: devices a node recorded (to clear them)
//
// A device's key is set on connect and removed on disconnect only by the node
// that holds it (a takeover on another node has replaced it by then). A
// node's keys count only while the node heartbeats (cluster/presence.ts'
// node list): a crashed broker's devices read as away at once, and the node
// clears what it left when it starts again. One key per device, so Redis
// Cluster spreads them; no command touches keys of two slots.
import type { Logger } from 'pino'
import { NODES, NODE_TIMEOUT_MS } from './presence.js'
import { luaScript, type RedisConnection } from './redis.js'

const deviceKey = (deviceId: string): string => `mqchat:device-node:${deviceId}`
const nodeKey = (nodeId: string): string => `mqchat:node-devices:${nodeId}`

// KEYS[1] device key; ARGV[1] node: removes the key if this node holds it.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

export class DeviceSessions {
  readonly #release: (...args: Array<string | number>) => Promise<unknown>
  /** Changes of this node, in order. */
  #pending: Promise<unknown> = Promise.resolve()

  constructor (private readonly redis: RedisConnection, private readonly nodeId: string, private readonly log: Logger) {
    this.#release = luaScript(redis, 'DeviceRelease', RELEASE, 1)
  }

  /** For a broker node, before it accepts connections: clears what an earlier run under this id recorded. */
  async recover (): Promise<void> {
    const devices = await this.redis.smembers(nodeKey(this.nodeId))
    for (const deviceId of devices) await this.#release(deviceKey(deviceId), this.nodeId)
    await this.redis.del(nodeKey(this.nodeId))
  }

  connected (deviceId: string): void {
    this.step(deviceId, async () => {
      await this.redis.set(deviceKey(deviceId), this.nodeId)
      await this.redis.sadd(nodeKey(this.nodeId), deviceId)
    })
  }

  disconnected (deviceId: string): void {
    this.step(deviceId, async () => {
      await this.#release(deviceKey(deviceId), this.nodeId)
      await this.redis.srem(nodeKey(this.nodeId), deviceId)
    })
  }

  /** Whether the device is connected to a broker that is alive. */
  async isConnected (deviceId: string): Promise<boolean> {
    const node = await this.redis.get(deviceKey(deviceId))
    if (node === null) return false
    const [score, [sec, micro]] = await Promise.all([this.redis.zscore(NODES, node), this.redis.time() as Promise<[string | number, string | number]>])
    return score !== null && Number(score) >= Number(sec) * 1000 + Math.floor(Number(micro) / 1000) - NODE_TIMEOUT_MS
  }

  /** Waits for this node's changes so far (tests, shutdown). */
  async flush (): Promise<void> { await this.#pending }

  /** Devices connected to some broker now, cluster-wide (a SCAN: for operators, not the message path). */
  async count (): Promise<number> {
    let n = 0
    let cursor = '0'
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', 'mqchat:device-node:*', 'COUNT', 1000)
      cursor = next
      n += keys.length
    } while (cursor !== '0')
    return n
  }

  private step (deviceId: string, fn: () => Promise<void>): void {
    this.#pending = this.#pending.then(fn).catch((err: unknown) => this.log.warn({ err, deviceId }, 'recording a device connection failed'))
  }
}
