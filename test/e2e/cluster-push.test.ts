// Pushes in the cluster profile: two brokers, two bridge workers, the API,
// Redis and FerretDB, and a local push service (test/helpers/push-providers.ts)
// that decrypts Web Push payloads and takes UnifiedPush ones. A writes from
// broker-1 to B in chats spread over the stream partitions (both workers);
// B's phone is away (UnifiedPush), B's browser is connected to broker-2 (Web
// Push registered): the away device is pushed once per chat per window, the
// connected one never.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import webpush from 'web-push'
import { TestCluster } from '../helpers/cluster.js'
import { Device, waitFor, type DeviceCreds } from '../helpers/server.js'
import { startProviders, type Subscription } from '../helpers/push-providers.js'

const COALESCE_SECONDS = 4
const CHATS = 6
const dir = mkdtempSync(join(tmpdir(), 'mqchat-cluster-push-'))
const vapid = webpush.generateVAPIDKeys()
const cluster = new TestCluster()
let providers: Awaited<ReturnType<typeof startProviders>>
let a: DeviceCreds, bPhone: DeviceCreds, bBrowser: DeviceCreds
let A: Device, B: Device
let upSub: Subscription, webSub: Subscription
const chats: string[] = []

before(async () => {
  providers = await startProviders(dir, vapid.publicKey)
  await cluster.start({
    env: {
      NODE_EXTRA_CA_CERTS: providers.caFile,
      MQCHAT_PUSH_COALESCE_SECONDS: String(COALESCE_SECONDS),
      MQCHAT_PUSH_ALLOW_INSECURE_ENDPOINTS: 'true',
      MQCHAT_PUSH_VAPID_PUBLIC_KEY: vapid.publicKey,
      MQCHAT_PUSH_VAPID_PRIVATE_KEY: vapid.privateKey,
      MQCHAT_PUSH_VAPID_SUBJECT: 'mailto:ops@mqchat.test',
      MQCHAT_PUBLISH_BURST: '200'
    }
  })
  a = await cluster.api.register('+15552200001')
  bPhone = await cluster.api.register('+15552200002')
  bBrowser = await cluster.api.link(bPhone, 'browser')
  upSub = providers.push.subscribe(false)
  webSub = providers.push.subscribe(true)
  assert.equal((await cluster.api.api('POST', '/v1/push/targets', bPhone.token, { type: 'unifiedpush', endpoint: upSub.endpoint })).status, 201)
  assert.equal((await cluster.api.api('POST', '/v1/push/targets', bBrowser.token, { type: 'webpush', endpoint: webSub.endpoint, keys: webSub.keys })).status, 201)
  for (let i = 0; i < CHATS; i++) {
    const r = await cluster.api.api('POST', '/v1/chats', a.token, { kind: 'group', name: `spread ${i}`, members: [bPhone.userId] })
    assert.equal(r.status, 201)
    chats.push(r.body.chat_id as string)
  }
  A = await new Device(cluster.brokers[0]!, a).connect()
  B = await new Device(cluster.brokers[1]!, bBrowser).connect()
})

after(async () => {
  await A?.close()
  await B?.close()
  await cluster.stop()
  await providers?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const messagePushes = (sub: Subscription, chat: string): Array<Record<string, unknown>> =>
  providers.push.for(sub.id).map((r) => r.payload).filter((p) => p.chat === chat && p.type === 'message')

test('each away device is pushed once per chat per window, whichever worker commits; a device connected to another broker is not', async () => {
  await Promise.all(chats.flatMap((chat) => Array.from({ length: 10 }, (_, i) => A.publish(chat, { id: `first-${chat}-${i}`, body: 'not for a push' }))))
  // The connected browser gets every message over MQTT, through broker-2.
  try {
    for (const chat of chats) await B.waitCount('msg', chat, 10, 20_000)
  } catch (err) {
    throw new Error(`${(err as Error).message}; A got ${A.events.length} events (${A.of('ack').length} acks, errors ${JSON.stringify(A.of('error').slice(0, 2))}), B ${JSON.stringify(B.events.map((e) => [e.type, e.chat, e.seq]))}`)
  }
  await waitFor('a push per chat for the away phone', () => chats.every((c) => messagePushes(upSub, c).length >= 1), 20_000)
  const lastMessagePush = (): number => Math.max(...providers.push.for(upSub.id).filter((r) => r.payload.type === 'message').map((r) => r.at))
  // The window passes: at most one push per chat per window (a burst that a loaded machine stretches past a window
  // may take a second), and none to the connected browser.
  await waitFor('the window to pass', () => Date.now() > lastMessagePush() + COALESCE_SECONDS * 1000 + 200, (COALESCE_SECONDS * 3 + 5) * 1000)
  const windowMs = COALESCE_SECONDS * 1000
  for (const chat of chats) {
    const at = providers.push.for(upSub.id).filter((r) => r.payload.chat === chat && r.payload.type === 'message').map((r) => r.at).sort((x, y) => x - y)
    assert.ok(at.length >= 1 && at.every((t, i) => i === 0 || t - at[i - 1]! >= windowMs - 500), `one push per window for the burst in ${chat}: ${at.join(', ')}`)
    assert.ok(at.length <= 2, `a burst of 10 is one push, or two on a machine slow enough to stretch it past a window: ${at.length}`)
    assert.deepEqual(messagePushes(webSub, chat), [], 'no push to a device connected to another broker')
  }
  // After the window: one more each, for the whole chat.
  const before = new Map(chats.map((c) => [c, messagePushes(upSub, c).length]))
  await Promise.all(chats.map((chat) => A.publish(chat, { id: `second-${chat}`, body: 'again' })))
  await waitFor('one more push per chat', () => chats.every((c) => messagePushes(upSub, c).length > before.get(c)!), 20_000)
  for (const chat of chats) {
    const latest = messagePushes(upSub, chat).at(-1)!
    assert.equal(latest.seq, 11)
    assert.equal(latest.count, 11, 'the phone received none of the 11')
  }
  // The browser leaves: now it is away, and pushed (encrypted, with the sender).
  await B.close()
  const chat = chats[0]!
  await waitFor('the window to pass again', () => Date.now() > Math.max(...providers.push.for(upSub.id).map((r) => r.at)) + COALESCE_SECONDS * 1000 + 200, (COALESCE_SECONDS + 5) * 1000)
  // Its disconnect is recorded asynchronously: a message that finds it still connected is not pushed (and takes no window).
  for (let i = 0; i < 10 && messagePushes(webSub, chat).length === 0; i++) {
    await A.publish(chat, { id: `away-${i}`, body: 'are you there' })
    await waitFor('a push to the browser', () => messagePushes(webSub, chat).length >= 1, 2000).catch(() => {})
  }
  assert.equal(messagePushes(webSub, chat).length, 1, 'the browser, away now, is pushed')
  assert.equal(messagePushes(webSub, chat)[0]!.sender, a.userId)
})
