// The server's log as people and collectors read it: JSON lines when standard
// output is not a terminal, readable lines on a real terminal (a pty from
// util-linux's script), and MQCHAT_LOG_FORMAT to choose either.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI, TestServer, tempDir, waitFor } from '../helpers/server.js'

const PRETTY_READY = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: mqchat ready: MQTT tcp \d+/m

/**
 * Starts a server and stops it as soon as ports.json is there: that file is
 * written just before start-up ends, and a SIGTERM then must still end in a
 * graceful stop with every line written.
 */
async function startAndStop (env: Record<string, string> = {}): Promise<string> {
  const server = new TestServer(env)
  await server.start()
  await server.dispose()
  return server.log
}

test('not a terminal: one JSON object per line, with level, time and message', async () => {
  const log = await startAndStop()
  const lines = log.split('\n').filter((l) => l !== '')
  assert.ok(lines.length >= 3, log)
  for (const line of lines) {
    const entry = JSON.parse(line) as { level: number, time: number, msg: string, pid: number }
    assert.equal(typeof entry.level, 'number')
    assert.equal(typeof entry.time, 'number')
    assert.equal(typeof entry.msg, 'string')
  }
  const ready = lines.map((l) => JSON.parse(l) as { msg: string, node?: string }).find((e) => e.msg.startsWith('mqchat ready'))
  assert.equal(ready?.node, process.version, 'the ready line names the Node that runs the server')
})

test('MQCHAT_LOG_FORMAT=pretty: readable lines (time, level, message; fields below), through to the last line at shutdown', async () => {
  const log = await startAndStop({ MQCHAT_LOG_FORMAT: 'pretty' })
  assert.match(log, PRETTY_READY)
  assert.match(log, /INFO: shutting down\n\s+signal: "SIGTERM"/)
  assert.match(log, /INFO: stopped\n?$/)
  assert.ok(!log.split('\n').some((l) => l.startsWith('{')), 'no JSON line')
})

test('on a terminal, auto is readable and coloured; MQCHAT_LOG_FORMAT=json keeps JSON there', async () => {
  const run = async (env: Record<string, string>): Promise<string> => {
    const dataDir = tempDir('mqchat-logs-')
    const script = spawn('script', ['-q', '-e', '-c', `'${process.execPath}' '${CLI}' serve`, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '', HOME: dataDir, TERM: 'xterm-256color', MQCHAT_DATA_DIR: dataDir, MQCHAT_HOST: '127.0.0.1', MQCHAT_MQTT_PORT: '0', MQCHAT_WS_PORT: '0', MQCHAT_HTTP_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    script.stdout.on('data', (d: Buffer) => { out += d.toString() })
    script.stderr.on('data', (d: Buffer) => { out += d.toString() })
    const exited = new Promise<void>((resolve) => script.once('exit', () => { resolve() }))
    try {
      // The server (a child of script, on the pty) names its pid in ports.json: it is stopped by that pid,
      // once its ready line has come through the terminal.
      const file = join(dataDir, 'ports.json')
      const { pid } = await waitFor('the server on a terminal to be ready', () => {
        if (script.exitCode !== null) throw new Error(`script exited with ${script.exitCode}: ${out}`)
        return existsSync(file) && out.includes('mqchat ready') ? JSON.parse(readFileSync(file, 'utf8')) as { pid: number } : undefined
      }, 20_000)
      process.kill(pid, 'SIGTERM')
      await waitFor('the server on a terminal to stop', () => script.exitCode !== null, 20_000)
      return out
    } finally {
      if (script.exitCode === null) script.kill('SIGKILL')
      await exited
    }
  }
  const auto = (await run({})).replaceAll('\r', '')
  assert.match(auto, /\u001b\[3\dmINFO/, 'the level is coloured')
  // eslint-disable-next-line no-control-regex
  const plain = auto.replace(/\u001b\[[0-9;]*m/g, '')
  assert.match(plain, PRETTY_READY)
  assert.match(plain, /INFO: stopped/)
  const json = (await run({ MQCHAT_LOG_FORMAT: 'json' })).replaceAll('\r', '')
  assert.match(json, /^\{"level":30,.*"msg":"mqchat ready/m)
})

test('a bad MQCHAT_LOG_FORMAT stops the start with a clear error (exit 2)', () => {
  const r = spawnSync(process.execPath, [CLI, 'serve'], { env: { PATH: process.env.PATH ?? '', MQCHAT_DATA_DIR: tempDir('mqchat-logs-'), MQCHAT_LOG_FORMAT: 'fancy' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /MQCHAT_LOG_FORMAT: must be one of auto, json, pretty, got "fancy"/)
})
