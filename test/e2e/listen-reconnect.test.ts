// `mqchat listen` keeps its persistent session across a server restart: it
// reconnects by itself and gets what was sent while the server was down and back.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { TestServer, CLI, freePort, tempDir, waitFor } from '../helpers/server.js'

const home = tempDir('mqchat-cli-')
let server: TestServer
after(async () => {
  await server?.dispose()
  rmSync(home, { recursive: true, force: true })
})

test('listen reconnects after the server restarts and prints what arrived meanwhile', async () => {
  const [mqtt, ws, http] = [await freePort(), await freePort(), await freePort()]
  server = new TestServer({ MQCHAT_MQTT_PORT: String(mqtt), MQCHAT_WS_PORT: String(ws), MQCHAT_HTTP_PORT: String(http) })
  await server.start()
  const a = await server.register('+15550700001')
  const b = await server.register('+15550700002')
  const chat = (await server.api('POST', '/v1/chats', a.token, { kind: 'direct', user: b.userId })).body.chat_id as string
  mkdirSync(home, { recursive: true })
  writeFileSync(`${home}/b.json`, JSON.stringify({ server: server.url, user_id: b.userId, device_id: b.deviceId, token: b.token }))

  const listener = spawn(process.execPath, [CLI, 'listen', '--profile', 'b', '--json', '--timeout', '60'], {
    env: { PATH: process.env.PATH ?? '', MQCHAT_CLI_HOME: home }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  listener.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const lines = (): Array<Record<string, unknown>> => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
  try {
    await server.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: 'one', body: 'before restart' })
    await waitFor('the first message in listen', () => lines().some((e) => e.id === 'one'), 15_000)

    await server.stop()
    await server.start()
    await server.api('POST', `/v1/chats/${chat}/messages`, a.token, { id: 'two', body: 'after restart' })
    await waitFor('the message after the restart in listen', () => lines().some((e) => e.id === 'two'), 30_000)
    // At least once: a message in flight across the restart may come again, with the same seq.
    const seqs = lines().filter((e) => e.type === 'msg').map((e) => e.seq as number)
    assert.deepEqual([...new Set(seqs)], [1, 2])
  } finally {
    listener.kill('SIGTERM')
  }
  const code = await new Promise<number | null>((r) => listener.exitCode !== null ? r(listener.exitCode) : listener.once('exit', (c) => r(c)))
  assert.equal(code, 0, 'listen exits 0 on SIGTERM')
})
