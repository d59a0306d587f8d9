// Runs the paho-mqtt device scripts in test/clients (paho-mqtt from PyPI, in the
// virtual environment scripts/python-clients.mjs makes), bounded in time.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { within } from './server.js'

export interface PahoResult { connects: number, acked: boolean[], events: Array<{ type: string, id?: string, code?: string }> }
export interface PahoInboxResult { connected: boolean, events: Array<{ type: string, chat?: string, seq?: number, id?: string, [k: string]: unknown }> }

/** The virtual environment's python: `npm test` names it; a test file run on its own makes it (once) here. */
async function python (): Promise<string> {
  if (process.env.MQCHAT_TEST_PYTHON) return process.env.MQCHAT_TEST_PYTHON
  const m = await import(new URL('../../../scripts/python-clients.mjs', import.meta.url).href) as { ensurePythonClients (say: (s: string) => void): string }
  process.env.MQCHAT_TEST_PYTHON = m.ensurePythonClients((s) => process.stderr.write(`[paho] ${s}\n`))
  return process.env.MQCHAT_TEST_PYTHON
}

async function runScript<T> (name: string, env: Record<string, string>): Promise<T> {
  const script = fileURLToPath(new URL(`../../../test/clients/${name}`, import.meta.url))
  const py = spawn(await python(), [script], { env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', SECONDS: '20', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  py.stdout.on('data', (d: Buffer) => { out += d.toString() })
  py.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await within('paho to finish', new Promise<number | null>((resolve) => py.once('exit', resolve)), 40_000).finally(() => { if (py.exitCode === null) py.kill() })
  assert.equal(code, 0, err)
  return JSON.parse(out) as T
}

/** paho_publish.py's settings (see its docstring): HOST, PORT, DEVICE, TOKEN, CHAT, ENVELOPES, and TLS ones. */
export const runPaho = (env: Record<string, string>): Promise<PahoResult> => runScript('paho_publish.py', env)

/** paho_inbox.py: a device on paho's default settings (clean session) collecting COUNT msg events; HOST, PORT, DEVICE, TOKEN, COUNT, SECONDS. */
export const runPahoInbox = (env: Record<string, string>): Promise<PahoInboxResult> => runScript('paho_inbox.py', env)

export interface PahoV5Result { connack: number | null, properties: Record<string, number>, published: number, pubacks: Array<{ code: number, reason: string | null } | null>, events: Array<{ type: string, id?: string, body?: string, code?: string }> }
/** paho_v5.py: an MQTT 5 device; HOST, PORT, DEVICE, TOKEN, CHAT, ENVELOPES, COUNT, SECONDS. */
export const runPahoV5 = (env: Record<string, string>): Promise<PahoV5Result> => runScript('paho_v5.py', env)
