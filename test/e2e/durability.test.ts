// "PUBACK means durable", pinned from outside (issue 18's guarantee tests):
// a PUBACK never comes before the history write commits, none comes when the
// write fails, and a SIGKILL in the middle of a full-rate load loses nothing
// that was acknowledged. Sending the PUBACK before the write (a mutation of
// plugins/authorize-publish.ts) turns the first test red.
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { Device, TestServer, serverWithPair, waitFor, within, type DeviceCreds } from '../helpers/server.js'
import { SqliteDatabase } from '../../lib/sqlite.js'

const servers: TestServer[] = []
after(async () => { await Promise.all(servers.map((s) => s.dispose())) })

/** Every message of a chat in history, oldest first, as (seq, client id). */
async function history (server: TestServer, token: string, chat: string): Promise<Array<{ seq: number, id: string }>> {
  const out: Array<{ seq: number, id: string }> = []
  let after = 0
  for (;;) {
    const page = (await server.api('GET', `/v1/chats/${chat}/messages?after=${after}&limit=500`, token)).body as { messages: Array<{ seq: number, id: string }>, next_after: number, has_more: boolean }
    out.push(...page.messages.map((m) => ({ seq: m.seq, id: m.id })))
    if (!page.has_more) return out
    after = page.next_after
  }
}

test('no PUBACK while the history write waits on a locked database; none when the write fails, and the resend is stored once', async () => {
  const { server, a, chatId: chat } = await serverWithPair(servers, ['+15552000001', '+15552000002'])
  // The sender resends what was not acknowledged when it reconnects, as MQTT clients do.
  const client = mqtt.connect(`mqtt://127.0.0.1:${server.ports.mqtt}`, { clientId: a.deviceId, username: a.deviceId, password: a.token, clean: false, protocolVersion: 4, reconnectPeriod: 300 })
  const closes: number[] = []
  client.on('close', () => closes.push(Date.now()))
  await within('the sender to connect', new Promise<void>((resolve) => client.once('connect', () => resolve())), 10_000)
  // Another process holds the database's write lock: the server's history write has to wait for it.
  const lock = new SqliteDatabase(join(server.dataDir, 'mqchat.db'))
  try {
    lock.exec('BEGIN IMMEDIATE')
    let acked = false
    const first = client.publishAsync(`chat/${chat}/msg`, JSON.stringify({ id: 'while-locked', body: 'waits for the lock' }), { qos: 1 }).then(() => { acked = true })
    await new Promise((resolve) => setTimeout(resolve, 1500))
    assert.equal(acked, false, 'a PUBACK before the message was committed')
    lock.exec('COMMIT')
    await within('the PUBACK once the write commits', first, 15_000)
    assert.deepEqual((await history(server, a.token, chat)).map((m) => m.id), ['while-locked'])

    // Held past the server's busy timeout (5 s): the write fails, no PUBACK, the connection closes.
    lock.exec('BEGIN IMMEDIATE')
    let failedAcked = false
    const second = client.publishAsync(`chat/${chat}/msg`, JSON.stringify({ id: 'write-fails', body: 'the store is unavailable' }), { qos: 1 }).then(() => { failedAcked = true })
    await waitFor('the failed write to close the connection', () => closes.length > 0 || undefined, 30_000)
    assert.equal(failedAcked, false, 'a PUBACK for a message that was not stored')
    assert.match(server.log, /storing a chat message failed/)
    lock.exec('COMMIT')
    // The client reconnects and resends; this time it is stored, once.
    await within('the PUBACK of the resend', second, 20_000)
    assert.deepEqual((await history(server, a.token, chat)).map((m) => [m.seq, m.id]), [[1, 'while-locked'], [2, 'write-fails']])
  } finally {
    try { lock.exec('ROLLBACK') } catch { /* not in a transaction */ }
    lock.close()
    await client.endAsync(true)
  }
})

test('a SIGKILL in the middle of a full-rate load: every PUBACKed message is in history exactly once with gapless seqs, and reaches its receiver', async () => {
  const server = new TestServer({ MQCHAT_PUBLISH_RATE: '100000', MQCHAT_PUBLISH_BURST: '100000' })
  servers.push(server)
  await server.start()
  const PAIRS = 8
  const pairs: Array<{ sender: DeviceCreds, receiver: DeviceCreds, chat: string }> = []
  for (let i = 0; i < PAIRS; i++) {
    const sender = await server.register(`+155520101${String(i).padStart(2, '0')}`)
    const receiver = await server.register(`+155520102${String(i).padStart(2, '0')}`)
    const chat = (await server.api('POST', '/v1/chats', sender.token, { kind: 'direct', user: receiver.userId })).body.chat_id as string
    pairs.push({ sender, receiver, chat })
  }
  const receivers = await Promise.all(pairs.map(async (p) => await new Device(server, p.receiver).connect()))
  const acked = pairs.map(() => new Set<string>())
  let stop = false
  // Every sender is connected before the load starts (a connect cut short by the kill would never settle).
  const connections = await Promise.all(pairs.map(async (p) => await mqtt.connectAsync(`mqtt://127.0.0.1:${server.ports.mqtt}`, { clientId: p.sender.deviceId, username: p.sender.deviceId, password: p.sender.token, clean: false, protocolVersion: 4, reconnectPeriod: 0 })))
  // Each sender keeps 20 publishes in flight until the server dies.
  const senders = pairs.map(async (p, i) => {
    const c = connections[i]!
    c.on('error', () => {})
    // A publish in flight when the server dies is never acknowledged (mqtt.js would resend it on a reconnect).
    const closed = new Promise<false>((resolve) => c.once('close', () => resolve(false)))
    let n = 0
    const lane = async (): Promise<void> => {
      while (!stop && c.connected) {
        const id = `m${i}-${n++}`
        const ok = await Promise.race([c.publishAsync(`chat/${p.chat}/msg`, JSON.stringify({ id, body: id }), { qos: 1 }).then(() => true, () => false), closed])
        if (!ok) return
        acked[i]!.add(id)
      }
    }
    await Promise.all(Array.from({ length: 20 }, lane))
    c.end(true)
  })
  const total = (): number => acked.reduce((s, x) => s + x.size, 0)
  await waitFor('500 acknowledged messages', () => total() >= 500 || undefined, 60_000)
  await server.kill()
  stop = true
  await within('the senders to stop', Promise.all(senders), 20_000)
  const ackedAtKill = total()

  await server.start()
  const again = await Promise.all(pairs.map(async (p) => await new Device(server, p.receiver).connect()))
  for (const [i, p] of pairs.entries()) {
    const stored = await history(server, p.sender.token, p.chat)
    assert.deepEqual(stored.map((m) => m.seq), stored.map((_, k) => k + 1), `chat ${i}: seqs are gapless from 1`)
    const ids = stored.map((m) => m.id)
    assert.equal(new Set(ids).size, ids.length, `chat ${i}: no message stored twice`)
    for (const id of acked[i]!) assert.ok(ids.includes(id), `chat ${i}: acknowledged ${id} is in history`)
    // Delivered: live before the kill, or queued (or fanned out again) after the restart.
    await waitFor(`chat ${i}: every acknowledged message at the receiver`, () => {
      const got = new Set([...receivers[i]!.of('msg', p.chat), ...again[i]!.of('msg', p.chat)].map((e) => e.id))
      return [...acked[i]!].every((id) => got.has(id)) || undefined
    }, 30_000)
  }
  assert.ok(ackedAtKill >= 500)
  await Promise.all([...receivers, ...again].map(async (d) => await d.close().catch(() => {})))
})
