// The cluster profile, all real: Redis (Debian; one server, or a 3-master
// Redis Cluster), FerretDB (MongoDB wire), MinIO (S3), two brokers (with the
// XMPP gateway), two bridge workers and the API, each its own process. Run
// by cluster.test.ts (one Redis) and cluster-redis-cluster.test.ts.
import { after, afterEach, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, connect, type Server } from 'node:net'
import { xml, type Element } from '@xmpp/client'
import { announce, xmppClient } from '../helpers/xmpp-client.js'
import { TestCluster } from '../helpers/cluster.js'
import { Device, freePort, waitFor, within, type DeviceCreds } from '../helpers/server.js'

/** Every case below, against a cluster on one Redis server or on a Redis Cluster. */
export function clusterSuite (redisCluster: boolean): void {
  const cluster = new TestCluster()
  const devices: Device[] = []
  let alice: DeviceCreds, bob: DeviceCreds, carol: DeviceCreds
  // Clients reach S3 through this TCP relay (a stand-in for a load balancer), as
  // MQCHAT_S3_PUBLIC_ENDPOINT; the nodes use MinIO's own address.
  let s3Relay: Server
  let s3PublicPort = 0

  before(async () => {
    s3PublicPort = await freePort()
    s3Relay = relay(() => cluster.minio?.port ?? 0)
    await new Promise<void>((resolve) => s3Relay.listen(s3PublicPort, '127.0.0.1', resolve))
    // A low publish limit (shared across nodes) and a short presence coalescing window for the cases below;
    // XMPP on the brokers, without TLS (loopback only) to keep certificates out of this file.
    await within('the cluster to start', cluster.start({
      s3: true,
      redisCluster,
      env: {
        MQCHAT_S3_PUBLIC_ENDPOINT: `http://127.0.0.1:${s3PublicPort}`,
        MQCHAT_PUBLISH_RATE: '1',
        MQCHAT_PUBLISH_BURST: '40',
        MQCHAT_PRESENCE_COALESCE_MS: '300',
        MQCHAT_XMPP_ENABLED: 'true',
        MQCHAT_XMPP_PORT: '0',
        MQCHAT_XMPP_WS_PORT: '0',
        MQCHAT_XMPP_DOMAIN: 'localhost',
        MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true'
      }
    }), 120_000)
    alice = await cluster.api.register('+15550100001', 'alice-phone')
    bob = await cluster.api.register('+15550100002', 'bob-phone')
    carol = await cluster.api.register('+15550100003', 'carol-phone')
  })

  // Each test's devices go offline at its end, so the next test's connections start clean.
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((d) => d.close().catch(() => {})))
  })

  after(async () => {
    await cluster.stop()
    s3Relay?.close()
  })

  /** A TCP relay on loopback (a stand-in for a load balancer): each connection goes to the port `target` names then. */
  function relay (target: () => number): Server {
    return createServer((inbound) => {
      const out = connect(target(), '127.0.0.1')
      inbound.pipe(out).pipe(inbound)
      out.on('error', () => inbound.destroy())
      inbound.on('error', () => out.destroy())
      out.on('close', () => inbound.destroy())
      inbound.on('close', () => out.destroy())
    })
  }

  async function online (creds: DeviceCreds, broker: number): Promise<Device> {
    const d = await new Device(cluster.brokers[broker], creds).connect()
    devices.push(d)
    return d
  }

  function seqs (d: Device, chat: string): number[] {
    return d.of('msg', chat).map((e) => e.seq as number)
  }

  /** The distinct seqs in arrival order: repeats (same seq again) are what a client drops. */
  function shown (d: Device, chat: string): number[] {
    const seen = new Set<number>()
    return seqs(d, chat).filter((s) => !seen.has(s) && seen.add(s) !== undefined)
  }

  test('devices on both brokers: group and direct messages reach every member device in seq order', async () => {
    const a = await online(alice, 0)
    const b = await online(bob, 1)
    const c = await online(carol, 1)
    const group = await cluster.api.api('POST', '/v1/chats', alice.token, { kind: 'group', name: 'spread', members: [bob.userId, carol.userId] })
    assert.equal(group.status, 201, JSON.stringify(group.body))
    const g = group.body.chat_id as string
    const direct = await cluster.api.api('POST', '/v1/chats', bob.token, { kind: 'direct', user: alice.userId })
    const dm = direct.body.chat_id as string

    for (let i = 0; i < 10; i++) {
      await a.publish(g, { id: `ga${i}`, type: 'text', body: `from alice ${i}` })
      await b.publish(g, { id: `gb${i}`, type: 'text', body: `from bob ${i}` })
      await b.publish(dm, { id: `d${i}`, type: 'text', body: `dm ${i}` })
    }
    const expected = Array.from({ length: 20 }, (_, i) => i + 1)
    await c.waitCount('msg', g, 20, 20_000).catch((err: Error) => { throw new Error(`${err.message}\n${cluster.logs()}`) })
    assert.deepEqual(shown(c, g), expected, 'carol (broker 2) sees the group in seq order')
    await a.waitCount('msg', g, 10, 20_000)
    await b.waitCount('msg', g, 10, 20_000)
    // Each sees the others' messages, in increasing seq order.
    for (const d of [a, b]) {
      const s = shown(d, g)
      assert.deepEqual(s, [...s].sort((x, y) => x - y))
      assert.equal(s.length, 10)
    }
    await a.waitCount('msg', dm, 10, 20_000)
    assert.deepEqual(shown(a, dm), Array.from({ length: 10 }, (_, i) => i + 1), 'alice (broker 1) gets the direct chat in order')
    // Every publish was acknowledged with its seq.
    await b.waitCount('ack', dm, 10, 20_000)
    const history = await cluster.api.api('GET', `/v1/chats/${g}/messages?after=0&limit=100`, carol.token)
    assert.equal(history.status, 200)
    assert.deepEqual(history.body.messages.map((m: { seq: number }) => m.seq), expected, 'history in MongoDB holds all 20, gapless')
  })

  test('MQTT 5 devices on both brokers: messages cross, a refused publish gets PUBACK 0x87, and a session with an expiry moves to the other broker with its events', async () => {
    const dave = await cluster.api.register('+15550100009', 'dave-v5')
    const a = new Device(cluster.brokers[0], alice)
    devices.push(a)
    await a.connect({ protocolVersion: 5 })
    const d1 = new Device(cluster.brokers[1], dave)
    await d1.connect({ protocolVersion: 5, sessionExpiry: 3600 })
    const g = (await cluster.api.api('POST', '/v1/chats', alice.token, { kind: 'group', name: 'v5 spread', members: [dave.userId] })).body.chat_id as string
    await a.publish(g, { id: 'v5-cross', body: 'broker 1 to broker 2' })
    await d1.waitEvent('the message from the other broker', (e) => e.type === 'msg' && e.id === 'v5-cross', 20_000)
    const other = (await cluster.api.api('POST', '/v1/chats', bob.token, { kind: 'group', name: 'not dave\'s', members: [] })).body.chat_id as string
    const refused = await d1.client.publishAsync(`chat/${other}/msg`, JSON.stringify({ id: 'v5-nm', body: 'x' }), { qos: 1 }).then(() => 0, (err: Error & { code?: number }) => err.code)
    assert.equal(refused, 0x87)
    await d1.close()
    // Away: a message and a chat change (an event queued in the session, not a message).
    await a.publish(g, { id: 'v5-away', body: 'while dave was away' })
    assert.equal((await cluster.api.api('PATCH', `/v1/chats/${g}`, alice.token, { name: 'renamed while away' })).status, 200)
    const d2 = new Device(cluster.brokers[0], dave)
    devices.push(d2)
    await d2.connect({ protocolVersion: 5, sessionExpiry: 3600 })
    await d2.waitEvent('the message sent while away', (e) => e.type === 'msg' && e.id === 'v5-away', 20_000)
    await d2.waitEvent('the rename', (e) => e.type === 'chat' && e.chat === g && e.name === 'renamed while away', 20_000)
  })

  test('a device that reconnects to the other broker keeps its session and gets what was queued', async () => {
    const a = await online(alice, 0)
    const group = await cluster.api.api('POST', '/v1/chats', alice.token, { kind: 'group', name: 'away', members: [carol.userId] })
    const g = group.body.chat_id as string
    const c1 = await online(carol, 0)
    await c1.waitEvent('the group was created', (e) => e.type === 'chat' && e.chat === g)
    await c1.close()
    for (let i = 0; i < 15; i++) await a.publish(g, { id: `q${i}`, type: 'text', body: `queued ${i}` })
    await a.waitCount('ack', g, 15, 20_000)
    // Back, on the other broker: no new SUBSCRIBE, the session (and its queue) is in Redis.
    const c2 = await new Device(cluster.brokers[1], carol).connect({ subscribe: false })
    devices.push(c2)
    await c2.waitCount('msg', g, 15, 20_000)
    assert.deepEqual(shown(c2, g), Array.from({ length: 15 }, (_, i) => i + 1))
    assert.equal(c2.client.connected, true)
  })

  test('a clean-session device that reconnects to the other broker gets what it missed, from where it was', async () => {
    // Bob sends: the suite's publish budget is small (MQCHAT_PUBLISH_RATE 1, burst 40) and Alice's is spent elsewhere.
    const a = await online(bob, 0)
    const group = await cluster.api.api('POST', '/v1/chats', bob.token, { kind: 'group', name: 'clean', members: [carol.userId] })
    const g = group.body.chat_id as string
    // Clean session = true, as paho, mqtt.js and most libraries connect by default: nothing is kept in the MQTT session.
    const c1 = await new Device(cluster.brokers[0], carol).connect({ clean: true })
    devices.push(c1)
    for (let i = 0; i < 5; i++) await a.publish(g, { id: `seen${i}`, type: 'text', body: `seen ${i}` })
    await c1.waitCount('msg', g, 5, 20_000)
    await c1.close()
    for (let i = 0; i < 10; i++) await a.publish(g, { id: `missed${i}`, type: 'text', body: `missed ${i}` })
    await a.waitCount('ack', g, 15, 20_000)
    const c2 = await new Device(cluster.brokers[1], carol).connect({ clean: true })
    devices.push(c2)
    await c2.waitCount('msg', g, 10, 20_000)
    // Its positions followed it: what it acknowledged on broker 1 is not sent again.
    assert.deepEqual(shown(c2, g), Array.from({ length: 10 }, (_, i) => i + 6))
    assert.deepEqual(c2.of('msg', g).map((e) => e.id), Array.from({ length: 10 }, (_, i) => `missed${i}`))
  })

  test('one SUBSCRIBE with several filters is answered on a persistent session (the Redis store\'s per-filter waits do not collide)', async () => {
    const d = await new Device(cluster.brokers[0], carol).connect({ subscribe: false })
    devices.push(d)
    const inbox = `dev/${carol.deviceId}/inbox`
    const live = `dev/${carol.deviceId}/live`
    const granted = await within('the SUBACK', d.client.subscribeAsync({ [inbox]: { qos: 1 }, [live]: { qos: 0 } }), 10_000)
    assert.deepEqual(granted.map((g) => [g.topic, g.qos]).sort(), [[inbox, 1], [live, 0]].sort())
  })

  test('a member removed through the API while on the other broker can no longer publish to the chat, immediately', async () => {
    const a = await online(alice, 0)
    const b = await online(bob, 1)
    const group = await cluster.api.api('POST', '/v1/chats', alice.token, { kind: 'group', name: 'kick', members: [bob.userId] })
    const g = group.body.chat_id as string
    await b.waitEvent('the group was created', (e) => e.type === 'chat' && e.chat === g)
    await b.publish(g, { id: 'before', type: 'text', body: 'still in' })
    await a.waitEvent('bob\'s message', (e) => e.type === 'msg' && e.chat === g && e.id === 'before')
    const removed = await cluster.api.api('DELETE', `/v1/chats/${g}/members/${bob.userId}`, alice.token)
    assert.equal(removed.status, 204, JSON.stringify(removed.body))
    // No pause: the removal is in force on broker 2 when the API answers.
    await b.publish(g, { id: 'after', type: 'text', body: 'sneaking in' })
    const refusal = await b.waitEvent('the refusal', (e) => e.type === 'error' && e.id === 'after')
    assert.equal(refusal.code, 'not_member')
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(a.events.some((e) => e.type === 'msg' && e.id === 'after'), false, 'nothing reached the group')
    const history = await cluster.api.api('GET', `/v1/chats/${g}/messages?after=0&limit=100`, alice.token)
    assert.deepEqual(history.body.messages.map((m: { id: string }) => m.id), ['before'])
    await waitFor('bob to hear of the removal', () => b.events.find((e) => e.type === 'chat' && e.change === 'member_removed'))
  })

  test('media on S3: uploaded through the public endpoint, sent over MQTT on one broker, fetched byte-identical by a member on the other', async () => {
    const a = await online(alice, 0)
    const c = await online(carol, 1)
    const group = await cluster.api.api('POST', '/v1/chats', alice.token, { kind: 'group', name: 'photos', members: [carol.userId] })
    const g = group.body.chat_id as string
    await c.waitEvent('the group was created', (e) => e.type === 'chat' && e.chat === g)
    const file = randomBytes(2 * 1024 * 1024)
    const sha256 = createHash('sha256').update(file).digest('hex')
    const slot = await cluster.api.api('POST', '/v1/media', alice.token, { chat: g, size: file.length, content_type: 'image/jpeg', sha256 })
    assert.equal(slot.status, 201, JSON.stringify(slot.body))
    assert.ok(String(slot.body.upload.url).startsWith(`http://127.0.0.1:${s3PublicPort}/`), `the upload URL names the public endpoint: ${slot.body.upload.url as string}`)
    const headers = { ...slot.body.upload.headers }
    delete headers['content-length']
    const put = await fetch(slot.body.upload.url, { method: 'PUT', body: new Uint8Array(file), headers })
    assert.equal(put.status, 200, await put.text())

    await a.publish(g, { id: 'pic-1', type: 'media', media: slot.body.media_id, body: { caption: 'sunset' } })
    const got = await c.waitEvent('the media message on broker 2', (e) => e.type === 'msg' && e.chat === g && e.id === 'pic-1', 20_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${cluster.logs()}`) })
    assert.equal(got.media, slot.body.media_id)
    const dl = await cluster.api.api('POST', `/v1/media/${slot.body.media_id as string}/download`, carol.token)
    assert.equal(dl.status, 200, JSON.stringify(dl.body))
    assert.ok(String(dl.body.url).startsWith(`http://127.0.0.1:${s3PublicPort}/`))
    const res = await fetch(dl.body.url)
    assert.equal(res.status, 200)
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(file), 'byte-identical')

    // Media the sender never uploaded is refused by the bridge worker, with nothing stored.
    await a.publish(g, { id: 'pic-2', type: 'media', media: 'm_00000000000000000000' })
    const refusal = await a.waitEvent('the refusal', (e) => e.type === 'error' && e.id === 'pic-2', 20_000)
    assert.equal(refusal.code, 'unknown_media')
    const history = await cluster.api.api('GET', `/v1/chats/${g}/messages?after=0&limit=10`, carol.token)
    assert.deepEqual(history.body.messages.map((m: { id: string }) => m.id), ['pic-1'])
  })

  test('presence counts devices on every broker: online while any is connected, offline once, with last seen, when the last leaves', async () => {
    const erin = await cluster.api.register('+15550100005', 'erin-phone')
    const erin2 = await cluster.api.link(erin, 'erin-laptop')
    const frank = await cluster.api.register('+15550100006', 'frank-phone')
    // Erin opens the chat, which makes Frank her contact: he may watch her presence.
    await cluster.api.api('POST', '/v1/chats', erin.token, { kind: 'direct', user: frank.userId })
    const f = await online(frank, 0)
    await f.client.subscribeAsync(`presence/${erin.userId}`, { qos: 0 })
    const states = (): string[] => f.presence.filter((p) => p.user === erin.userId).map((p) => p.state as string)

    const e1 = await online(erin, 0)
    const e2 = await online(erin2, 1)
    await waitFor('erin online', () => states().includes('online'), 10_000)
    // One device leaves (broker 1); the other is still connected to broker 2.
    await e1.close()
    await new Promise((r) => setTimeout(r, 1500))
    assert.deepEqual(states(), ['online'], 'no offline while a device on the other broker is connected')
    assert.equal((await cluster.api.api('GET', `/v1/users/${erin.userId}/presence`, frank.token)).body.state, 'online', 'the API node sees the cluster-wide state')
    const t = Date.now()
    await e2.close()
    await waitFor('erin offline', () => states().includes('offline'), 10_000)
    const offline = f.presence.filter((p) => p.user === erin.userId && p.state === 'offline')
    assert.equal(offline.length, 1, 'published once')
    assert.ok(typeof offline[0]?.last_seen === 'number' && offline[0].last_seen >= t - 100, 'with last seen')
    const http = await cluster.api.api('GET', `/v1/users/${erin.userId}/presence`, frank.token)
    assert.deepEqual([http.body.state, http.body.last_seen], ['offline', offline[0]?.last_seen])

    // A broker killed (-9) with erin's only device: the others reap it and erin goes offline.
    const extra = await cluster.node('broker', 'broker-x').start()
    try {
      const e3 = new Device(extra, erin)
      await e3.connect()
      await waitFor('erin online again', () => states().filter((s) => s === 'online').length === 2, 10_000)
      await extra.kill()
      e3.client.end(true)
      await waitFor('erin offline after the broker died', () => states().length === 4, 20_000)
      assert.deepEqual(states(), ['online', 'offline', 'online', 'offline'])
    } finally {
      await extra.dispose()
    }
  })

  test('the publish limit is one budget per device across nodes: HTTP sends through the API use up MQTT publishes on a broker', async () => {
    const gina = await cluster.api.register('+15550100007', 'gina-phone')
    const chat = (await cluster.api.api('POST', '/v1/chats', gina.token, { kind: 'direct', user: alice.userId })).body.chat_id as string
    // The budget here: a burst of 40, then 1 per second.
    let sent = 0
    let status = 201
    for (let i = 0; i < 60 && status !== 429; i++) {
      const r = await cluster.api.api('POST', `/v1/chats/${chat}/messages`, gina.token, { id: `h${i}`, type: 'text', body: 'over http' })
      status = r.status
      if (r.status === 201) sent++
    }
    assert.equal(status, 429, 'the API refuses once the budget is spent')
    assert.ok(sent >= 40, `the burst was granted (${sent})`)
    const g = await online(gina, 1)
    for (let i = 0; i < 3; i++) await g.publish(chat, { id: `m${i}`, type: 'text', body: 'over mqtt' })
    await waitFor('a refusal', () => g.events.find((e) => e.type === 'error' && e.code === 'rate_limited'), 10_000)
  })

  test('HTTP sends go through the chat stream: mixed with MQTT publishes, one gapless order; repeats, refusals and forwards answered with the worker\'s outcome', async () => {
    const hank = await cluster.api.register('+15550100011', 'hank-phone')
    const ivy = await cluster.api.register('+15550100012', 'ivy-phone')
    const g = (await cluster.api.api('POST', '/v1/chats', hank.token, { kind: 'group', name: 'mixed', members: [ivy.userId] })).body.chat_id as string
    const g2 = (await cluster.api.api('POST', '/v1/chats', hank.token, { kind: 'group', name: 'forwarded into', members: [ivy.userId] })).body.chat_id as string
    const h = await online(hank, 0)
    const i = await online(ivy, 1)
    const overHttp = Promise.all(Array.from({ length: 15 }, async (_, n) => await cluster.api.api('POST', `/v1/chats/${g}/messages`, hank.token, { id: `hh${n}`, type: 'text', body: `http ${n}` })))
    await Promise.all(Array.from({ length: 15 }, async (_, n) => { await i.publish(g, { id: `iv${n}`, type: 'text', body: `mqtt ${n}` }) }))
    const answers = await overHttp
    for (const a of answers) assert.equal(a.status, 201, JSON.stringify(a.body))
    const stored = await waitFor('history to hold all 30', async () => {
      const r = await cluster.api.api('GET', `/v1/chats/${g}/messages?after=0&limit=100`, hank.token)
      const m = r.body.messages as Array<{ seq: number, id: string }>
      return m.length >= 30 ? m : undefined
    }, 20_000)
    assert.deepEqual(stored.map((m) => m.seq), Array.from({ length: 30 }, (_, n) => n + 1), 'one gapless order')
    const seqOf = new Map(stored.map((m) => [m.id, m.seq]))
    for (const a of answers) assert.equal(a.body.seq, seqOf.get(a.body.id as string), `the HTTP answer's seq is history's for ${String(a.body.id)}`)
    // The sender's device gets its acks; the other member gets the HTTP sends.
    await h.waitCount('ack', g, 15, 20_000)
    await waitFor('ivy to get every HTTP send', () => i.of('msg', g).filter((e) => String(e.id).startsWith('hh')).length >= 15 ? true : undefined, 20_000)

    const again = await cluster.api.api('POST', `/v1/chats/${g}/messages`, hank.token, { id: 'hh0', type: 'text', body: 'http 0' })
    assert.equal(again.status, 200)
    assert.deepEqual([again.body.duplicate, again.body.seq], [true, seqOf.get('hh0')])
    // Only the worker can refuse this one (it needs history): its refusal is the HTTP answer.
    const edit = await cluster.api.api('POST', `/v1/chats/${g}/messages`, hank.token, { id: 'e1', type: 'edit', ref: seqOf.get('iv0'), body: 'not mine' })
    assert.equal(edit.status, 403, JSON.stringify(edit.body))
    assert.equal(edit.body.error.code, 'not_sender')
    const fwd = await cluster.api.api('POST', `/v1/chats/${g}/messages/${seqOf.get('iv3')}/forward`, hank.token, { to: [g2], id: 'f1' })
    assert.equal(fwd.status, 201, JSON.stringify(fwd.body))
    assert.deepEqual(fwd.body.forwarded, [{ chat: g2, id: 'f1.0', seq: 1 }])
    const copy = (await cluster.api.api('GET', `/v1/chats/${g2}/messages?after=0`, ivy.token)).body.messages as Array<{ id: string, forwarded?: boolean, body: string }>
    assert.deepEqual(copy.map((m) => [m.id, m.forwarded, m.body]), [['f1.0', true, 'mqtt 3']])
  })

  test('an HTTP send whose seq comes late is answered 202 queued; its ack follows, and a refusal found late is an error event', async () => {
    const jay = await cluster.api.register('+15550100013', 'jay-phone')
    const kim = await cluster.api.register('+15550100014', 'kim-phone')
    const chat = (await cluster.api.api('POST', '/v1/chats', jay.token, { kind: 'direct', user: kim.userId })).body.chat_id as string
    const j = await online(jay, 0)
    const impatient = await cluster.node('api', 'api-impatient', { MQCHAT_HTTP_SEND_WAIT_MS: '300' }).start()
    try {
      const workers = cluster.workers.map((w) => w.proc).filter((p) => p !== undefined)
      assert.equal(workers.length, 2)
      let queued, late
      // No worker runs for a while (a backlog): nothing can get its seq in 300 ms.
      for (const w of workers) w.kill('SIGSTOP')
      try {
        queued = await impatient.api('POST', `/v1/chats/${chat}/messages`, jay.token, { id: 'q1', type: 'text', body: 'later' })
        late = await impatient.api('POST', `/v1/chats/${chat}/messages`, jay.token, { id: 'q2', type: 'edit', ref: 99, body: 'no such message' })
      } finally {
        for (const w of workers) w.kill('SIGCONT')
      }
      assert.equal(queued.status, 202, JSON.stringify(queued.body))
      assert.deepEqual(queued.body, { chat, id: 'q1', queued: true })
      assert.equal(late.status, 202, JSON.stringify(late.body))
      const ack = await waitFor('the ack of the queued send', () => j.events.find((e) => e.type === 'ack' && e.id === 'q1'), 20_000)
      assert.equal(ack.seq, 1)
      const refused = await waitFor('the late refusal', () => j.events.find((e) => e.type === 'error' && e.id === 'q2'), 20_000)
      assert.equal(refused.code, 'unknown_message')
      const history = await cluster.api.api('GET', `/v1/chats/${chat}/messages?after=0`, kim.token)
      assert.deepEqual(history.body.messages.map((m: { id: string }) => m.id), ['q1'])
    } finally {
      await impatient.dispose()
    }
  })

  test('XMPP: a stream management resume that lands on the other broker is refused there, and the new session gets every message once it is bound, in order', async () => {
    const dave = await cluster.api.register('+15550100011', 'dave-xmpp')
    const erin = await cluster.api.register('+15550100012', 'erin-phone')
    // A stand-in for the load balancer: connections go to broker 1 until the test cuts the stream, then to broker 2
    // (a sign-in attempt that failed under load and was retried still lands on broker 1).
    let killed = false
    let afterCut = 0
    const lb = relay(() => {
      if (killed) afterCut++
      return (cluster.brokers[killed ? 1 : 0] as (typeof cluster.brokers)[number]).ports.xmpp
    })
    await new Promise<void>((resolve) => lb.listen(0, '127.0.0.1', resolve))
    const x = xmppClient({ service: `xmpp://127.0.0.1:${(lb.address() as { port: number }).port}`, domain: 'localhost', username: dave.userId, password: dave.token })
    x.on('error', () => {})
    const got: Element[] = []
    x.on('stanza', (st: Element) => { if (st.is('message') && st.getChild('body')) got.push(st) })
    let resumed = 0
    const trace: string[] = []
    const t0 = Date.now()
    x.on('status', (st: string) => { trace.push(`+${Date.now() - t0} ms ${st}${killed ? ' (after the cut)' : ''}`) })
    x.on('error', (err: Error) => { trace.push(`+${Date.now() - t0} ms error ${err.message}`) })
    x.streamManagement.on('resumed', () => { resumed++; trace.push(`+${Date.now() - t0} ms resumed${killed ? ' (after the cut)' : ''}`) })
    // A client announces itself after every new binding (RFC 6121 §4.2); until then the gateway holds its events.
    x.on('online', () => { announce(x).catch(() => {}) })
    try {
      await x.start()
      await waitFor('stream management enabled', () => x.streamManagement.id !== '' ? true : undefined)
      const e = await online(erin, 1)
      const dm = (await cluster.api.api('POST', '/v1/chats', erin.token, { kind: 'direct', user: dave.userId })).body.chat_id as string
      x.on('stanza', () => {
        if (!killed && got.length >= 10) { killed = true; x.socket?.destroy() }
      })
      for (let i = 0; i < 30; i++) await e.publish(dm, { id: `r${i}`, type: 'text', body: `r${i}` })
      await e.waitCount('ack', dm, 30, 30_000)
      const seqOf = (m: Element): number => Number(m.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id?.split(':')[1])
      const distinct = (): number[] => [...new Set(got.filter((m) => m.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id?.startsWith(`${dm}:`)).map(seqOf))]
      await waitFor('all 30 at the XMPP device', () => distinct().length >= 30 ? true : undefined, 60_000)
        .catch((err: Error) => { throw new Error(`${err.message}; got ${distinct().join(',')}\n${cluster.logs()}`) })
      assert.ok(killed, 'the connection was killed mid-stream')
      assert.ok(afterCut >= 1, 'the client came back through the load balancer, to broker 2')
      assert.equal(resumed, 0, `broker 2 has no resumption state of broker 1: the resume is refused and the client binds anew\n${trace.join('\n')}`)
      assert.deepEqual(distinct(), Array.from({ length: 30 }, (_, i) => i + 1), 'every message, first seen in seq order (a repeat is one not acknowledged before the cut, under its id)')
      assert.match(cluster.brokers[1]?.log ?? '', new RegExp(`"jid":"${dave.userId}@localhost/${dave.deviceId}","mechanism":"SCRAM-SHA-1","msg":"xmpp sign-in"`), 'the new session is on broker 2')
    } finally {
      // stop() leaves @xmpp/client reconnecting: once the load balancer is gone, that loop would keep this process alive.
      x.reconnect.stop()
      await x.stop().catch(() => {})
      lb.close()
    }
  })

  test('a subscription the session store does not confirm fails that SUBSCRIBE after a bound, and the device\'s next SUBSCRIBE goes through', async () => {
    const frank = await cluster.api.register('+15550100013', 'frank-phone')
    const broker = cluster.brokers[0] as (typeof cluster.brokers)[number]
    const d = await new Device(broker, frank).connect({ subscribe: false })
    devices.push(d)
    const live = `dev/${frank.deviceId}/live`
    const redis = cluster.redisProcesses()
    assert.ok(redis.length > 0, 'Redis runs')
    // Redis stops answering (SIGSTOP; every node of a Redis Cluster): the store's write cannot be confirmed.
    for (const r of redis) r.kill('SIGSTOP')
    let first: Promise<string>
    try {
      first = d.client.subscribeAsync(live, { qos: 0 }).then(() => 'granted', (err: Error) => `refused: ${err.message}`)
      await waitFor('the bound to pass', () => broker.log.includes('the session store did not confirm a subscription in time') ? true : undefined, 20_000)
    } finally {
      for (const r of redis) r.kill('SIGCONT')
    }
    assert.match(await within('the first SUBSCRIBE to end', first, 15_000), /^refused/, 'that SUBSCRIBE failed (aedes closed the connection)')
    const again = await new Device(broker, frank).connect({ subscribe: false })
    devices.push(again)
    const granted = await within('the SUBACK once the store answers', again.client.subscribeAsync(live, { qos: 0 }), 15_000)
    assert.deepEqual(granted.map((g) => [g.topic, g.qos]), [[live, 0]])
  })

  test('the device limit holds across API nodes: links racing through two of them never make more than 4 active devices', async () => {
    const api2 = await cluster.node('api', 'api-2').start()
    try {
      const owner = await cluster.api.register('+15550100040', 'owner-phone')
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? cluster.api : api2).api('POST', '/v1/devices', owner.token, { name: `laptop-${i}` })))
      const statuses = results.map((r) => r.status)
      assert.equal(statuses.filter((s) => s === 201).length, 3, statuses.join(','))
      assert.ok(statuses.every((s) => s === 201 || s === 409), statuses.join(','))
      assert.equal((await cluster.api.api('GET', '/v1/devices', owner.token)).body.devices.length, 4)
      assert.equal((await api2.api('GET', '/v1/devices', owner.token)).body.devices.length, 4)
    } finally {
      await api2.dispose()
    }
  })

  test('membership periods in the cluster: a member added later reads and gets only what follows, an edit of an earlier message included', async () => {
    const [p, q, r] = [await cluster.api.register('+15550100050'), await cluster.api.register('+15550100051'), await cluster.api.register('+15550100052')]
    const group = (await cluster.api.api('POST', '/v1/chats', p.token, { kind: 'group', name: 'periods', members: [q.userId] })).body.chat_id as string
    const send = async (envelope: Record<string, unknown>): Promise<number> => {
      const res = await cluster.api.api('POST', `/v1/chats/${group}/messages`, p.token, envelope)
      assert.equal(res.status, 201, JSON.stringify(res.body))
      return res.body.seq as number
    }
    await send({ id: 'early-1', body: 'before R' })
    await send({ id: 'early-2', body: 'before R too' })
    assert.equal((await cluster.api.api('POST', `/v1/chats/${group}/members`, p.token, { users: [r.userId] })).status, 200)
    const R = await online(r, 1)
    await send({ id: 'edit-early', type: 'edit', ref: 1, body: 'before R, edited' })
    const welcome = await send({ id: 'welcome', body: 'welcome R' })
    await R.waitEvent('the welcome', (e) => e.type === 'msg' && e.seq === welcome)
    assert.deepEqual(seqs(R, group), [welcome])
    const page = await cluster.api.api('GET', `/v1/chats/${group}/messages?after=0`, r.token)
    assert.deepEqual(page.body.messages.map((m: { id: string }) => m.id), ['welcome'])
    assert.equal((await cluster.api.api('GET', `/v1/chats/${group}/messages/1/receipts`, r.token)).status, 404)
  })
}
