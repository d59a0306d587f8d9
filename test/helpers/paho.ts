// Runs test/clients/paho_publish.py (paho-mqtt, Debian's python3-paho-mqtt) as a device, bounded in time.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { within } from './server.js'

export interface PahoResult { connects: number, acked: boolean[], events: Array<{ type: string, id?: string, code?: string }> }

/** The script's settings (see its docstring): HOST, PORT, DEVICE, TOKEN, CHAT, ENVELOPES, and TLS ones. */
export async function runPaho (env: Record<string, string>): Promise<PahoResult> {
  const script = fileURLToPath(new URL('../../../test/clients/paho_publish.py', import.meta.url))
  const py = spawn('/usr/bin/python3', [script], { env: { ...process.env, SECONDS: '20', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  py.stdout.on('data', (d: Buffer) => { out += d.toString() })
  py.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await within('paho to finish', new Promise<number | null>((resolve) => py.once('exit', resolve)), 40_000).finally(() => { if (py.exitCode === null) py.kill() })
  assert.equal(code, 0, err)
  return JSON.parse(out) as PahoResult
}
