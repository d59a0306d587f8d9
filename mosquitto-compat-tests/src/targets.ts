// Brokers the suite starts for itself: Debian's Mosquitto (the reference) and
// mqchat, each on a free loopback port in a temporary directory, stopped by
// the process id we started. mqchat is started the way the e2e tests start it
// (test/helpers/server.ts).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Wire } from './wire.js'
import { TestServer, freePort } from '../../test/helpers/server.js'

export { freePort }

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..')
/** This suite's source directory (deviations.txt, README.md). */
export const HERE = join(ROOT, 'mosquitto-compat-tests')
/** Mosquitto's vectors, beside the checkout. */
export const DEFAULT_VECTORS = join(ROOT, '..', 'shared', 'mqtt-vectors', 'mosquitto')

/** Credentials of a device the auth cases act as, and topics it may and may not use. */
export interface AuthFixture {
  clientId: string
  username: string
  password: string
  /** A topic this device may subscribe to. */
  allowedSub: string
  /** A topic it may not subscribe to (another device's). */
  deniedSub: string
  /** A topic it may not publish to. */
  deniedPub: string
}

export interface RunningTarget {
  /** Target name used in deviations.txt and the report. */
  name: string
  host: string
  port: number
  /** What the broker is: reference or ours. */
  kind: 'reference' | 'mqchat'
  /** open = anonymous, any topic; auth = credentials and an ACL required. */
  access: 'open' | 'auth'
  /** Largest packet the broker accepts, in bytes (what the oversize case tests). */
  maxPacketSize: number
  /** Most topic levels the broker accepts (what the deep-topic case tests). */
  maxTopicLevels: number
  auth?: AuthFixture
  version: string
  /** Process id of the broker, when this suite started it. */
  pid?: number
  /** mqchat's HTTP API, when this suite started it. */
  httpUrl?: string
  stop: () => Promise<void>
}

async function waitListening (host: string, port: number, proc: ChildProcess, log: () => string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`broker exited with ${proc.exitCode}:\n${log()}`)
    try { const w = await Wire.open(host, port, 1000); w.destroy(); return } catch { /* not yet */ }
    if (Date.now() > until) throw new Error(`broker did not listen on ${host}:${port} within ${timeoutMs} ms:\n${log()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** SIGTERM, SIGKILL after 10 s, and wait for the exit: a process we started, by its pid. */
export async function stopProcess (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

function stopper (proc: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    await stopProcess(proc)
    rmSync(dir, { recursive: true, force: true })
  }
}

export const MOSQUITTO_MAX_PACKET = 1024 * 1024

/** Debian's mosquitto on a free port. `auth`: a password file and an ACL shaped like mqchat's. */
export async function startMosquitto (access: 'open' | 'auth'): Promise<RunningTarget> {
  const dir = mkdtempSync(join(tmpdir(), 'compat-mosquitto-'))
  // Started as root, mosquitto drops to its own user, which must still read its files here.
  chmodSync(dir, 0o755)
  const port = await freePort()
  const conf = [
    `listener ${port} 127.0.0.1`,
    'persistence false',
    `max_packet_size ${MOSQUITTO_MAX_PACKET}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning'
  ]
  let auth: AuthFixture | undefined
  if (access === 'open') {
    conf.push('allow_anonymous true')
  } else {
    auth = { clientId: 'dev-a', username: 'dev-a', password: 'secret-a', allowedSub: 'dev/dev-a/inbox', deniedSub: 'dev/dev-b/inbox', deniedPub: 'chat/not-a-member/msg' }
    const pw = join(dir, 'passwd')
    writeFileSync(pw, '', { mode: 0o644 })
    const r = spawnSync('mosquitto_passwd', ['-b', pw, auth.username, auth.password], { encoding: 'utf8', timeout: 10_000 })
    if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`)
    const acl = join(dir, 'acl')
    writeFileSync(acl, `user ${auth.username}\ntopic read dev/${auth.username}/inbox\ntopic write chat/member-chat/msg\n`)
    conf.push('allow_anonymous false', `password_file ${pw}`, `acl_file ${acl}`)
  }
  const confFile = join(dir, 'mosquitto.conf')
  writeFileSync(confFile, conf.join('\n') + '\n')
  let log = ''
  const proc = spawn('mosquitto', ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  proc.stdout?.on('data', (d: Buffer) => { log += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { log += d.toString() })
  const stop = stopper(proc, dir)
  try {
    await waitListening('127.0.0.1', port, proc, () => log)
  } catch (err) { await stop(); throw err }
  const v = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' })
  const version = /mosquitto version (\S+)/.exec(v.stdout + v.stderr)?.[1] ?? 'unknown'
  return { name: access === 'open' ? 'mosquitto' : 'mosquitto-auth', host: '127.0.0.1', port, kind: 'reference', access, maxPacketSize: MOSQUITTO_MAX_PACKET, maxTopicLevels: 201, auth, version: `Mosquitto ${version} (Debian)`, pid: proc.pid, stop }
}

export const MQCHAT_MAX_PACKET = 262144

/** mqchat's local profile on free ports: open access, or the chat ACL with a registered device. */
export async function startMqchat (access: 'open' | 'auth', env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<RunningTarget> {
  const server = new TestServer({
    MQCHAT_LOG_LEVEL: 'warn',
    MQCHAT_MAX_PACKET_BYTES: String(MQCHAT_MAX_PACKET),
    MQCHAT_MAX_TOPIC_LEVELS: '16',
    MQCHAT_MQTT_ACCESS: access === 'open' ? 'open' : 'chat',
    ...env
  }, undefined, nodeArgs)
  const stop = (): Promise<void> => server.dispose()
  try {
    await server.start()
    let auth: AuthFixture | undefined
    if (access === 'auth') auth = await mqchatFixture(server.url)
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, dependencies: Record<string, string> }
    return { name: access === 'open' ? 'mqchat-open' : 'mqchat-chat', host: '127.0.0.1', port: server.ports.mqtt, kind: 'mqchat', access, maxPacketSize: MQCHAT_MAX_PACKET, maxTopicLevels: 16, auth, version: `mqchat ${pkg.version} (aedes ${pkg.dependencies.aedes})`, pid: server.proc?.pid, httpUrl: server.url, stop }
  } catch (err) { await stop(); throw err }
}

/** Two registered users; the fixture acts as the first one's device. */
async function mqchatFixture (base: string): Promise<AuthFixture> {
  const call = async (path: string, body: unknown): Promise<any> => {
    const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
    const json = await res.json() as any
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  const register = async (phone: string): Promise<{ device_id: string, token: string }> => {
    const { code } = await call('/v1/register/code', { phone }) as { code: string }
    return call('/v1/register/verify', { phone, code, device_name: 'compat' })
  }
  const a = await register('+15550000001')
  const b = await register('+15550000002')
  return { clientId: a.device_id, username: a.device_id, password: a.token, allowedSub: `dev/${a.device_id}/inbox`, deniedSub: `dev/${b.device_id}/inbox`, deniedPub: 'chat/not-a-member/msg' }
}
