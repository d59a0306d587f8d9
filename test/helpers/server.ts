// Test harness: the real server as a child process on free loopback ports in
// a temporary data directory; devices as real MQTT clients (mqtt.js) and real
// HTTP calls. Every wait is bounded; every process is stopped by its pid.
import { spawn, type ChildProcess, execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..')
export const CLI = join(ROOT, 'dist/clients/cli/main.js')

export async function waitFor<T> (what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/**
 * Waits for work whose speed depends on the machine (a backlog draining):
 * `probe` returns the value when done, else how far the work has got. Fails
 * when that figure has not moved for `stallMs`, or after `capMs` in all; so a
 * slow machine passes and a stall fails.
 */
export async function waitWhileProgressing<T> (what: string, probe: () => Promise<{ done?: T, progress: number }>, stallMs: number, capMs: number): Promise<T> {
  const start = Date.now()
  let last = -1
  let movedAt = start
  for (;;) {
    const { done, progress } = await probe()
    if (done !== undefined) return done
    const now = Date.now()
    if (progress !== last) { last = progress; movedAt = now }
    if (now - movedAt > stallMs) throw new Error(`no progress for ${stallMs} ms waiting for ${what} (stuck at ${progress})`)
    if (now - start > capMs) throw new Error(`timed out after ${capMs} ms waiting for ${what} (at ${progress}, still moving)`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** A TCP port free on loopback right now (for servers that need a fixed port across restarts). */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()))
  const port = (s.address() as { port: number }).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

/** Resolves like `promise`, or fails after `timeoutMs`: every wait in the tests is bounded. */
export async function within<T> (what: string, promise: Promise<T>, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs) })])
  } finally {
    clearTimeout(timer)
  }
}

export interface Ports { mqtt: number, ws: number, http: number, xmpp: number, xmppWs: number, mqttTls: number, wss: number, https: number, admin?: number }

export class TestServer {
  proc: ChildProcess | undefined
  ports!: Ports
  log = ''
  readonly dataDir: string

  /** `nodeArgs`: flags for node itself (the benchmarks' --cpu-prof). */
  constructor (readonly env: Record<string, string> = {}, dataDir?: string, readonly nodeArgs: string[] = []) {
    this.dataDir = dataDir ?? mkdtempSync(join(tmpdir(), 'mqchat-test-'))
  }

  get url (): string { return `http://127.0.0.1:${this.ports.http}` }

  async start (): Promise<this> {
    const portsFile = join(this.dataDir, 'ports.json')
    if (existsSync(portsFile)) unlinkSync(portsFile)
    this.proc = spawn(process.execPath, [...this.nodeArgs, CLI, 'serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        MQCHAT_DATA_DIR: this.dataDir,
        MQCHAT_HOST: '127.0.0.1',
        MQCHAT_MQTT_PORT: '0',
        MQCHAT_WS_PORT: '0',
        MQCHAT_HTTP_PORT: '0',
        // The TLS listeners open only with a certificate (MQCHAT_TLS_CERT).
        MQCHAT_MQTT_TLS_PORT: '0',
        MQCHAT_WSS_PORT: '0',
        MQCHAT_HTTPS_PORT: '0',
        MQCHAT_DEV_RETURN_CODES: 'true',
        MQCHAT_LOG_LEVEL: 'info',
        MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR: '10000',
        // Every test client connects from 127.0.0.1, many at once (storms, reconnects): the per-address caps on
        // connections not yet signed in are tested on their own (attacks.test.ts), and raised here.
        MQCHAT_MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS: '100000',
        MQCHAT_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '100000',
        ...this.env
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const proc = this.proc
    proc.stdout?.on('data', (d: Buffer) => { this.log += d.toString() })
    proc.stderr?.on('data', (d: Buffer) => { this.log += d.toString() })
    const pid = proc.pid
    this.ports = await waitFor('the server to write ports.json', () => {
      if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}:\n${this.log}`)
      if (!existsSync(portsFile)) return undefined
      const p = JSON.parse(readFileSync(portsFile, 'utf8')) as Ports & { pid: number }
      return p.pid === pid ? p : undefined
    }, 20_000)
    return this
  }

  /** SIGTERM, and wait for the exit; returns the exit code. */
  async stop (): Promise<number | null> {
    const p = this.proc
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)))
    p.kill('SIGTERM')
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000)
    const code = await exited
    clearTimeout(timer)
    return code
  }

  /** SIGKILL: a crash, nothing flushed. */
  async kill (): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
  }

  async dispose (): Promise<void> {
    await this.stop()
    rmSync(this.dataDir, { recursive: true, force: true })
  }

  async api<T = any> (method: string, path: string, token?: string, body?: unknown): Promise<{ status: number, body: T }> {
    const headers: Record<string, string> = {}
    if (token) headers.authorization = `Bearer ${token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
    const text = await res.text()
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T }
  }

  /** A metric's value from /metrics (0 when absent); `labels` as Prometheus writes them, e.g. 'reason="muted"'. */
  async metric (name: string, labels?: string): Promise<number> {
    const res = await fetch(this.url + '/metrics', { signal: AbortSignal.timeout(10_000) })
    const head = labels === undefined ? `${name} ` : `${name}{${labels}} `
    const line = (await res.text()).split('\n').find((l) => l.startsWith(head))
    return line ? Number(line.slice(head.length)) : 0
  }

  /** The mqchat_connections gauge from /metrics. */
  async connections (): Promise<number> { return await this.metric('mqchat_connections') }

  /** Registers a phone number (with the development code switch) and returns its first device. */
  async register (phone: string, name = 'phone'): Promise<DeviceCreds> {
    const code = await this.api('POST', '/v1/register/code', undefined, { phone })
    if (code.status !== 202) throw new Error(`register ${phone}: ${JSON.stringify(code)}`)
    const v = await this.api('POST', '/v1/register/verify', undefined, { phone, code: code.body.code, device_name: name })
    if (v.status !== 201) throw new Error(`verify ${phone}: ${JSON.stringify(v)}`)
    return { userId: v.body.user_id, deviceId: v.body.device_id, token: v.body.token, phone }
  }

  async link (owner: DeviceCreds, name = 'laptop'): Promise<DeviceCreds> {
    const r = await this.api('POST', '/v1/devices', owner.token, { name })
    if (r.status !== 201) throw new Error(`link: ${JSON.stringify(r)}`)
    return { userId: owner.userId, deviceId: r.body.device_id, token: r.body.token, phone: owner.phone }
  }
}

export interface DeviceCreds { userId: string, deviceId: string, token: string, phone: string }

export interface InboxEvent { type: string, chat?: string, seq?: number, id?: string, code?: string, [k: string]: unknown }

/** A device's persistent MQTT session, collecting its inbox events. */
export class Device {
  client!: MqttClient
  /** The CONNACK of the last connect. */
  connack: IConnackPacket | undefined
  events: InboxEvent[] = []
  /** Events on dev/<id>/live (typing, …). */
  live: InboxEvent[] = []
  /** presence/<userId> messages, with the time they arrived. */
  presence: Array<InboxEvent & { at: number, retained: boolean }> = []
  constructor (readonly server: TestServer, readonly creds: DeviceCreds) {}

  /** `clean`: connect with clean session = true (the default of most MQTT libraries); persistent otherwise. */
  /** `sessionExpiry` (MQTT 5): seconds the session outlives the connection. */
  async connect (opts: { subscribe?: boolean, live?: boolean, clean?: boolean, protocolVersion?: 4 | 5, sessionExpiry?: number } = {}): Promise<this> {
    this.client = mqtt.connect(`mqtt://127.0.0.1:${this.server.ports.mqtt}`, {
      clientId: this.creds.deviceId,
      username: this.creds.deviceId,
      password: this.creds.token,
      clean: opts.clean === true,
      protocolVersion: opts.protocolVersion ?? 4,
      ...(opts.sessionExpiry !== undefined ? { properties: { sessionExpiryInterval: opts.sessionExpiry } } : {}),
      reconnectPeriod: 0,
      connectTimeout: 5000
    })
    this.client.on('message', (topic, payload, packet) => {
      if (topic.startsWith('presence/')) this.presence.push({ ...(JSON.parse(payload.toString()) as InboxEvent), at: Date.now(), retained: packet.retain })
      if (topic === `dev/${this.creds.deviceId}/inbox`) this.events.push(JSON.parse(payload.toString()) as InboxEvent)
      else if (topic === `dev/${this.creds.deviceId}/live`) this.live.push(JSON.parse(payload.toString()) as InboxEvent)
    })
    await new Promise<void>((resolve, reject) => {
      this.client.once('connect', (p) => { this.connack = p; resolve() })
      this.client.once('error', reject)
    })
    if (opts.subscribe !== false) await this.client.subscribeAsync(`dev/${this.creds.deviceId}/inbox`, { qos: 1 })
    if (opts.live) await this.client.subscribeAsync(`dev/${this.creds.deviceId}/live`, { qos: 0 })
    return this
  }

  publish (chatId: string, envelope: unknown, kind = 'msg', qos: 0 | 1 = 1): Promise<unknown> {
    const payload = typeof envelope === 'string' || Buffer.isBuffer(envelope) ? envelope : JSON.stringify(envelope)
    return this.client.publishAsync(`chat/${chatId}/${kind}`, payload, { qos })
  }

  of (type: string, chat?: string): InboxEvent[] {
    return this.events.filter((e) => e.type === type && (chat === undefined || e.chat === chat))
  }

  waitEvent (what: string, pred: (e: InboxEvent) => boolean, timeoutMs = 10_000): Promise<InboxEvent> {
    return waitFor(`${this.creds.deviceId}: ${what}`, () => this.events.find(pred), timeoutMs)
  }

  waitCount (type: string, chat: string, n: number, timeoutMs = 10_000): Promise<InboxEvent[]> {
    return waitFor(`${this.creds.deviceId}: ${n} ${type} events in ${chat}`, () => {
      const found = this.of(type, chat)
      return found.length >= n ? found : undefined
    }, timeoutMs)
  }

  async close (): Promise<void> {
    if (!this.client) return
    // A clean end waits for what is in flight; a broker that never answers must not hold the test up.
    await within('a clean MQTT disconnect', this.client.endAsync(), 5000).catch(async () => { await this.client.endAsync(true) })
  }
}

/** Runs the CLI with its own profile directory; resolves with exit code and output (bounded). */
export function cli (home: string, args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', MQCHAT_CLI_HOME: home, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

/** A temporary directory, removed when the test process exits. */
export function tempDir (prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A started server (pushed to `servers` for disposal) with two registered users and their direct chat. */
export async function serverWithPair (servers: TestServer[], phones: [string, string], env: Record<string, string> = {}, opts: { group?: string } = {}): Promise<{ server: TestServer, a: DeviceCreds, b: DeviceCreds, chatId: string }> {
  const server = new TestServer(env)
  servers.push(server)
  await server.start()
  const a = await server.register(phones[0])
  const b = await server.register(phones[1])
  // A direct chat, or with `group` a group of that name that a creates with b in it.
  const chat = await server.api('POST', '/v1/chats', a.token, opts.group === undefined ? { kind: 'direct', user: b.userId } : { kind: 'group', name: opts.group, members: [b.userId] })
  // An existing direct chat answers 200; a group is always new (201).
  if (!(opts.group === undefined ? [200, 201] : [201]).includes(chat.status)) throw new Error(`chat: ${JSON.stringify(chat)}`)
  return { server, a, b, chatId: chat.body.chat_id as string }
}

/**
 * Two users in a direct chat, both connected over MQTT for the whole test
 * file: `stillServing()` has one write to the other and waits for it, the
 * check after every attack or limit that the server still serves others.
 */
export class Bystanders {
  a!: Device
  b!: Device
  chat = ''
  #probes = 0
  constructor (private readonly server: TestServer, private readonly phones: [string, string]) {}

  async start (): Promise<void> {
    const a = await this.server.register(this.phones[0])
    const b = await this.server.register(this.phones[1])
    this.chat = (await this.server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
    this.a = await new Device(this.server, a).connect()
    this.b = await new Device(this.server, b).connect()
  }

  async stillServing (): Promise<void> {
    const id = `probe-${++this.#probes}`
    await within('the bystander publish', this.a.publish(this.chat, { id, body: 'still there?' }), 10_000)
    await this.b.waitEvent(`the bystander message ${id}`, (e) => e.type === 'msg' && e.id === id)
  }

  async close (): Promise<void> {
    await this.a?.close()
    await this.b?.close()
  }
}
