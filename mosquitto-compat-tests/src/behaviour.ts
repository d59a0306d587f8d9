// Behaviour cases: what a single scripted exchange cannot show (several
// clients, reconnects, timing, wills, retained state). Each case runs against
// any broker; it talks raw MQTT 3.1.1 (packets built by mqtt-packet) so that
// it controls every acknowledgement. Topics live under a root unique to the
// run, so cases never see each other's traffic.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { IPublishPacket } from 'mqtt-packet'
import { Client, QUIET, WAIT } from './client.js'
import { Timeout, Wire } from './wire.js'
import type { AuthFixture, RunningTarget } from './targets.js'

export interface BehaviourCase {
  id: string
  /** open: runs on open-access targets; auth: on targets that require credentials and enforce an ACL. */
  access: 'open' | 'auth'
  /** The protocol the case speaks: 3.1.1 unless it says 5. */
  protocol?: '5'
  run: (t: RunningTarget, root: string) => Promise<void>
}

const text = (p: IPublishPacket): string => Buffer.from(p.payload as Buffer).toString()
const uid = (): string => randomBytes(4).toString('hex')

/** Connect with a clean session and leave, so a client id starts without state. */
async function wipe (t: RunningTarget, clientId: string): Promise<void> {
  const c = await Client.open(t, { clientId, clean: true })
  await c.disconnect()
}

/** An MQTT 5 connection with a clean start and these CONNECT properties. */
const open5 = (t: RunningTarget, clientId: string, properties: Record<string, unknown> = {}, clean = true): Promise<Client> =>
  Client.open(t, { clientId, clean, protocolVersion: 5, properties })

/** A protocol error: the broker may send DISCONNECT first (then with `code` or 0x82), and closes [MQTT 4.13]. */
async function protocolErrorClose (c: Client, code: number, what: string): Promise<void> {
  let p: { cmd: string, reasonCode?: number } | undefined
  try { p = await c.w.packet(WAIT, 5) as { cmd: string, reasonCode?: number } } catch { /* closed without a word */ }
  if (p !== undefined) {
    assert.equal(p.cmd, 'disconnect', `${what}: expected DISCONNECT or a close, got ${p.cmd}`)
    assert.ok(p.reasonCode === code || p.reasonCode === 0x82, `${what}: DISCONNECT reason code ${String(p.reasonCode)}`)
  }
  await closedWithin(c, WAIT, what)
}

async function closedWithin (c: Client, ms: number, what: string): Promise<void> {
  assert.ok(await c.w.waitClose(ms), `${what}: the broker should close the connection within ${ms} ms`)
}

export const behaviourCases: BehaviourCase[] = [
  {
    id: 'behaviour / v5 / session expiry: with an interval the session (subscription, queued QoS 1) outlives the connection; with 0 it ends with it',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      const kept = `se-${uid()}`
      const a = await open5(t, kept, { sessionExpiryInterval: 60 })
      await a.subscribe([[`${root}/kept`, 1]])
      await a.disconnect()
      await pub.publish(`${root}/kept`, 'queued', 1)
      const b = await open5(t, kept, { sessionExpiryInterval: 60 }, false)
      assert.equal(b.sessionPresent, true, 'session present after a reconnect within the interval')
      assert.equal(text(await b.message()), 'queued')
      await b.disconnect()
      const gone = `se0-${uid()}`
      const c = await open5(t, gone)
      await c.subscribe([[`${root}/gone`, 1]])
      await c.disconnect()
      await pub.publish(`${root}/gone`, 'for nobody', 1)
      const d = await open5(t, gone, {}, false)
      assert.equal(d.sessionPresent, false, 'no session after a connection whose expiry was 0')
      await d.nothing()
      await d.disconnect(); await pub.disconnect()
      // The kept session ends now (a clean start with expiry 0).
      await (await open5(t, kept)).disconnect()
    }
  },
  {
    id: 'behaviour / v5 / message expiry: a queued message past its interval is not delivered; one within it arrives with the time left',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const id = `me-${uid()}`
      const s = await open5(t, id, { sessionExpiryInterval: 60 })
      await s.subscribe([[`${root}/me`, 1]])
      await s.disconnect()
      const pub = await open5(t, `p-${uid()}`)
      await pub.publish(`${root}/me`, 'short', 1, false, { messageExpiryInterval: 1 })
      await pub.publish(`${root}/me`, 'long', 1, false, { messageExpiryInterval: 60 })
      await new Promise((r) => setTimeout(r, 2200))
      const back = await open5(t, id, { sessionExpiryInterval: 60 }, false)
      const got = await back.drain()
      assert.deepEqual(got.map(text), ['long'], 'only the message still within its expiry')
      const left = (got[0]!.properties as { messageExpiryInterval?: number } | undefined)?.messageExpiryInterval
      assert.ok(left !== undefined && left <= 58 && left >= 50, `the interval left, lowered by the time queued (got ${String(left)})`)
      await back.disconnect(); await pub.disconnect()
      await (await open5(t, id)).disconnect()
    }
  },
  {
    id: 'behaviour / v5 / receive maximum: no more unacknowledged QoS 1 PUBLISHes in flight to a client than it allows',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const s = await open5(t, `rm-${uid()}`, { receiveMaximum: 2 })
      await s.subscribe([[`${root}/rm`, 1]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      for (let i = 1; i <= 4; i++) await pub.publish(`${root}/rm`, `m${i}`, 1)
      const first = [await s.message(WAIT, false), await s.message(WAIT, false)]
      let third: unknown
      try { third = await s.w.packet(QUIET, 5) } catch (err) { if (!(err instanceof Timeout)) throw err }
      assert.equal(third, undefined, 'a third PUBLISH while two are unacknowledged')
      s.ack(first[0]!)
      assert.equal(text(await s.message(WAIT, false)), 'm3', 'one acknowledged: the next one comes')
      await s.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / v5 / maximum packet size: a message bigger than the client allows is not sent to it; the next one is',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const s = await open5(t, `mps-${uid()}`, { maximumPacketSize: 128 })
      await s.subscribe([[`${root}/mps`, 1]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/mps`, 'x'.repeat(300), 1)
      await pub.publish(`${root}/mps`, 'small', 1)
      assert.deepEqual((await s.drain()).map(text), ['small'])
      await s.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / v5 / topic alias: an alias within the announced Topic Alias Maximum stands for its topic; one over it is a protocol error (0x94)',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const s = await open5(t, `tas-${uid()}`)
      await s.subscribe([[`${root}/ta`, 1]])
      const p = await open5(t, `tap-${uid()}`)
      const max = (p.connack as { properties?: { topicAliasMaximum?: number } } | undefined)?.properties?.topicAliasMaximum ?? 0
      if (max >= 1) {
        await p.publish(`${root}/ta`, 'named', 1, false, { topicAlias: 1 })
        await p.publish('', 'aliased', 1, false, { topicAlias: 1 })
        const got = await s.drain()
        assert.deepEqual(got.map((m) => [m.topic, text(m)]), [[`${root}/ta`, 'named'], [`${root}/ta`, 'aliased']], 'both delivered under the full topic')
      }
      // One over the maximum (0 announced or none: any alias is over).
      p.w.send({ cmd: 'publish', topic: `${root}/ta`, payload: Buffer.from('over'), qos: 0, retain: false, dup: false, properties: { topicAlias: max + 1 } }, 5)
      await protocolErrorClose(p, 0x94, 'an alias over the maximum')
      await s.nothing()
      await s.disconnect()
    }
  },
  {
    id: 'behaviour / v5 / reason codes: DISCONNECT 0x04 publishes the will, a normal one (0x00) does not; UNSUBACK 0x11 for a filter not held, 0x00 for one held',
    access: 'open',
    protocol: '5',
    async run (t, root) {
      const watcher = await open5(t, `rcw-${uid()}`)
      await watcher.subscribe([[`${root}/will`, 1]])
      const withWill = await Client.open(t, { clientId: `rc4-${uid()}`, protocolVersion: 5, will: { topic: `${root}/will`, payload: 'asked for', qos: 1 } })
      withWill.w.send({ cmd: 'disconnect', reasonCode: 0x04 }, 5)
      await withWill.w.end()
      assert.deepEqual((await watcher.drain()).map(text), ['asked for'], 'the will of a DISCONNECT with reason code 0x04')
      const normal = await Client.open(t, { clientId: `rc0-${uid()}`, protocolVersion: 5, will: { topic: `${root}/will`, payload: 'not wanted', qos: 1 } })
      normal.w.send({ cmd: 'disconnect', reasonCode: 0x00 }, 5)
      await normal.w.end()
      await watcher.nothing()
      assert.deepEqual(await watcher.unsubscribe([`${root}/will`, `${root}/never`]), [0x00, 0x11])
      await watcher.disconnect()
    }
  },
  {
    id: 'behaviour / session / takeover closes the old connection and publishes its will',
    access: 'open',
    async run (t, root) {
      const watcher = await Client.open(t, { clientId: `w-${uid()}` })
      await watcher.subscribe([[`${root}/will`, 1]])
      const id = `take-${uid()}`
      const first = await Client.open(t, { clientId: id, will: { topic: `${root}/will`, payload: 'first gone', qos: 1 } })
      const second = await Client.open(t, { clientId: id })
      await closedWithin(first, WAIT, 'the taken-over connection')
      const will = await watcher.message()
      assert.equal(text(will), 'first gone')
      await second.ping()
      await second.disconnect(); await watcher.disconnect()
    }
  },
  {
    id: 'behaviour / qos / QoS 0, 1 and 2 end to end, delivered at min(publish, subscription)',
    access: 'open',
    async run (t, root) {
      const sub = await Client.open(t, { clientId: `s-${uid()}` })
      assert.deepEqual(await sub.subscribe([[`${root}/q2`, 2], [`${root}/q1`, 1], [`${root}/q0`, 0]]), [2, 1, 0])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      for (const qos of [0, 1, 2] as const) await pub.publish(`${root}/q2`, `at ${qos}`, qos)
      // Each arrives once at its own QoS. The order between QoS levels is not what this case checks.
      const got: Array<[string, number]> = []
      let openFlows = 0
      while (got.length < 3 || openFlows > 0) {
        const p = await sub.w.packet(WAIT)
        if (p.cmd === 'publish') {
          got.push([text(p), p.qos])
          sub.ack(p)
          if (p.qos === 2) openFlows++
        } else {
          assert.equal(p.cmd, 'pubrel', `expected PUBLISH or PUBREL, got ${p.cmd}`)
          sub.w.send({ cmd: 'pubcomp', messageId: p.messageId })
          openFlows--
        }
      }
      got.sort()
      assert.deepEqual(got, [['at 0', 0], ['at 1', 1], ['at 2', 2]])
      await pub.publish(`${root}/q1`, 'two on one', 2)
      const m1 = await sub.message()
      assert.equal(text(m1), 'two on one')
      assert.equal(m1.qos, 1, 'a QoS 2 publish on a QoS 1 subscription arrives at QoS 1')
      await pub.publish(`${root}/q0`, 'one on zero', 1)
      assert.equal((await sub.message()).qos, 0, 'a QoS 1 publish on a QoS 0 subscription arrives at QoS 0')
      await sub.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / qos / an unacknowledged QoS 1 message is redelivered with DUP after reconnect',
    access: 'open',
    async run (t, root) {
      const id = `r1-${uid()}`
      await wipe(t, id)
      const sub = await Client.open(t, { clientId: id, clean: false })
      await sub.subscribe([[`${root}/r`, 1]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/r`, 'again', 1)
      const first = await sub.message(WAIT, false)
      assert.equal(first.dup, false)
      sub.w.destroy()
      const back = await Client.open(t, { clientId: id, clean: false })
      assert.equal(back.sessionPresent, true, 'session present')
      const again = await back.message()
      assert.deepEqual([text(again), again.qos, again.dup], ['again', 1, true], 'redelivered with DUP set')
      await back.nothing()
      await back.disconnect(); await pub.disconnect(); await wipe(t, id)
    }
  },
  {
    id: 'behaviour / qos / QoS 2: an unacknowledged PUBLISH is redelivered, then PUBREL is resent after PUBREC',
    access: 'open',
    async run (t, root) {
      const id = `r2-${uid()}`
      await wipe(t, id)
      const sub = await Client.open(t, { clientId: id, clean: false })
      await sub.subscribe([[`${root}/r`, 2]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/r`, 'exactly once', 2)
      await sub.message(WAIT, false)
      sub.w.destroy()
      const second = await Client.open(t, { clientId: id, clean: false })
      const again = await second.message(WAIT, false)
      assert.deepEqual([text(again), again.qos, again.dup], ['exactly once', 2, true])
      second.w.send({ cmd: 'pubrec', messageId: again.messageId })
      assert.equal((await second.expect('pubrel')).messageId, again.messageId)
      second.w.destroy()
      const third = await Client.open(t, { clientId: id, clean: false })
      const rel = await third.expect('pubrel')
      assert.equal(rel.messageId, again.messageId, 'PUBREL resent for the same packet id')
      third.w.send({ cmd: 'pubcomp', messageId: rel.messageId })
      await third.nothing()
      await third.disconnect(); await pub.disconnect(); await wipe(t, id)
    }
  },
  {
    id: 'behaviour / topics / + and # match single and multiple levels, empty levels and the parent of #',
    access: 'open',
    async run (t, root) {
      const filters: Record<string, string[]> = {
        [`${root}/a/+/c`]: [`${root}/a/b/c`, `${root}/a//c`],
        [`${root}/a/#`]: [`${root}/a/b/c`, `${root}/a//c`, `${root}/a`, `${root}/a/b`],
        [`${root}/+/b/c`]: [`${root}/a/b/c`, `${root}/x/b/c`],
        [`+/${root}/+`]: [`/${root}/x`],
        [`${root}/a/b/c`]: [`${root}/a/b/c`]
      }
      const topics = [`${root}/a/b/c`, `${root}/a//c`, `${root}/a`, `${root}/a/b`, `${root}/x/b/c`, `/${root}/x`]
      const subs: Array<[string, Client]> = []
      for (const f of Object.keys(filters)) {
        const c = await Client.open(t, { clientId: `m-${uid()}` })
        assert.deepEqual(await c.subscribe([[f, 1], [`${root}/end`, 1]]), [1, 1], `SUBACK for ${f}`)
        subs.push([f, c])
      }
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      for (const topic of topics) await pub.publish(topic, topic, 1)
      await pub.publish(`${root}/end`, 'end', 1)
      for (const [f, c] of subs) {
        const seen: string[] = []
        for (;;) { const m = await c.message(); if (m.topic === `${root}/end`) break; seen.push(m.topic) }
        assert.deepEqual(seen.sort(), [...filters[f]!].sort(), `what ${f} matched`)
        await c.disconnect()
      }
      await pub.disconnect()
    }
  },
  {
    id: 'behaviour / topics / $-topics are not matched by filters starting with # or +',
    access: 'open',
    async run (t, root) {
      const dollar = `$${root}/x`
      const all = await Client.open(t, { clientId: `h-${uid()}` })
      const plus = await Client.open(t, { clientId: `p-${uid()}` })
      const exact = await Client.open(t, { clientId: `e-${uid()}` })
      await all.subscribe([['#', 0]])
      await plus.subscribe([['+/x', 0]])
      await exact.subscribe([[`$${root}/#`, 0]])
      const pub = await Client.open(t, { clientId: `q-${uid()}` })
      await pub.publish(dollar, 'dollar', 1)
      const m = await exact.message()
      assert.equal(m.topic, dollar, '$-topic reaches a filter that names its first level')
      // `#` sees other traffic (and, on some brokers, nothing of $SYS): only the $-topic matters.
      assert.ok(!(await all.drain()).some((p) => p.topic.startsWith('$')), '# must not match a $-topic')
      await plus.nothing()
      for (const c of [all, plus, exact, pub]) await c.disconnect()
    }
  },
  {
    id: 'behaviour / retained / set, replace, clear with an empty payload; delivered at the subscription QoS',
    access: 'open',
    async run (t, root) {
      const topic = `${root}/ret`
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      const live = await Client.open(t, { clientId: `l-${uid()}` })
      await live.subscribe([[topic, 1]])
      await pub.publish(topic, 'v1', 1, true)
      const l = await live.message()
      assert.deepEqual([text(l), l.retain], ['v1', false], 'a live subscriber gets retain=0')
      await pub.publish(topic, 'v2', 1, true)
      await live.message()
      const late = await Client.open(t, { clientId: `n-${uid()}` })
      await late.subscribe([[topic, 1]])
      const r = await late.message()
      assert.deepEqual([text(r), r.retain, r.qos], ['v2', true, 1], 'the replacement is retained, retain=1')
      await late.nothing()
      const low = await Client.open(t, { clientId: `z-${uid()}` })
      await low.subscribe([[topic, 0]])
      const r0 = await low.message()
      assert.deepEqual([text(r0), r0.qos], ['v2', 0], 'retained message at the subscription QoS')
      await pub.publish(topic, '', 1, true)
      const cleared = await Client.open(t, { clientId: `c-${uid()}` })
      await cleared.subscribe([[topic, 1]])
      await cleared.nothing()
      for (const c of [pub, live, late, low, cleared]) await c.disconnect()
    }
  },
  {
    id: 'behaviour / session / a persistent session keeps subscriptions and queues QoS 1 while offline',
    access: 'open',
    async run (t, root) {
      const id = `ps-${uid()}`
      await wipe(t, id)
      const a = await Client.open(t, { clientId: id, clean: false })
      assert.equal(a.sessionPresent, false, 'no session yet')
      await a.subscribe([[`${root}/q`, 1]])
      await a.disconnect()
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/q`, 'one', 1)
      await pub.publish(`${root}/q`, 'two', 1)
      const b = await Client.open(t, { clientId: id, clean: false })
      assert.equal(b.sessionPresent, true, 'session present')
      assert.deepEqual([text(await b.message()), text(await b.message())], ['one', 'two'], 'queued in order')
      await pub.publish(`${root}/q`, 'three', 1)
      assert.equal(text(await b.message()), 'three', 'the subscription survived without resubscribing')
      await b.disconnect()
      const c = await Client.open(t, { clientId: id, clean: true })
      assert.equal(c.sessionPresent, false, 'clean session: session present 0')
      await c.disconnect()
      await pub.publish(`${root}/q`, 'four', 1)
      const d = await Client.open(t, { clientId: id, clean: false })
      assert.equal(d.sessionPresent, false, 'the clean session discarded the old one')
      await d.nothing()
      await d.disconnect(); await pub.disconnect(); await wipe(t, id)
    }
  },
  {
    id: 'behaviour / will / published when the connection drops without DISCONNECT',
    access: 'open',
    async run (t, root) {
      const watcher = await Client.open(t, { clientId: `w-${uid()}` })
      await watcher.subscribe([[`${root}/will`, 1]])
      const a = await Client.open(t, { clientId: `a-${uid()}`, will: { topic: `${root}/will`, payload: 'dropped', qos: 1 } })
      a.w.destroy()
      assert.equal(text(await watcher.message()), 'dropped')
      await watcher.disconnect()
    }
  },
  {
    id: 'behaviour / will / published when the keepalive expires (1.5 x keepalive)',
    access: 'open',
    async run (t, root) {
      const watcher = await Client.open(t, { clientId: `w-${uid()}` })
      await watcher.subscribe([[`${root}/will`, 1]])
      const started = Date.now()
      const a = await Client.open(t, { clientId: `k-${uid()}`, keepalive: 1, will: { topic: `${root}/will`, payload: 'silent', qos: 1 } })
      // 1.5 s is the rule; brokers check on a timer (Mosquitto 2.0.11: every few seconds), so allow 10 s.
      await closedWithin(a, 10_000, 'a client silent past 1.5 x its keepalive')
      assert.equal(text(await watcher.message(5000)), 'silent')
      assert.ok(Date.now() - started >= 1000, 'not before the keepalive expired')
      await watcher.disconnect()
    }
  },
  {
    id: 'behaviour / will / not published after DISCONNECT',
    access: 'open',
    async run (t, root) {
      const watcher = await Client.open(t, { clientId: `w-${uid()}` })
      await watcher.subscribe([[`${root}/will`, 1]])
      const a = await Client.open(t, { clientId: `d-${uid()}`, will: { topic: `${root}/will`, payload: 'must not appear', qos: 1 } })
      await a.disconnect()
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await new Promise((r) => setTimeout(r, QUIET))
      await pub.publish(`${root}/will`, 'marker', 1)
      assert.equal(text(await watcher.message()), 'marker', 'the first message after DISCONNECT is the marker, not the will')
      await watcher.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / connect / zero-length client id: accepted with a clean session, refused (0x02) without',
    access: 'open',
    async run (t) {
      const a = await Client.open(t, { clientId: '', clean: true })
      await a.ping()
      await a.disconnect()
      // mqtt-packet will not encode this CONNECT (it is invalid), so it is written by hand:
      // protocol name MQTT, level 4, flags 0x00 (clean session 0), keepalive 60, empty client id.
      const w = await Wire.open(t.host, t.port)
      w.write(Buffer.from('100c00044d5154540400003c0000', 'hex'))
      assert.equal((await w.read(4, WAIT)).toString('hex'), '20020002', 'CONNACK 0x02 identifier rejected')
      assert.ok(await w.waitClose(WAIT), 'closed after CONNACK 0x02')
    }
  },
  {
    id: 'behaviour / subscribe / UNSUBSCRIBE stops delivery; unknown filters are still acknowledged',
    access: 'open',
    async run (t, root) {
      const c = await Client.open(t, { clientId: `u-${uid()}` })
      await c.subscribe([[`${root}/u`, 1]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/u`, 'before', 1)
      assert.equal(text(await c.message()), 'before')
      await c.unsubscribe([`${root}/u`])
      await c.unsubscribe([`${root}/never-subscribed`])
      await pub.publish(`${root}/u`, 'after', 1)
      await c.nothing()
      await c.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / subscribe / overlapping subscriptions deliver at the highest QoS that matches',
    access: 'open',
    async run (t, root) {
      const c = await Client.open(t, { clientId: `o-${uid()}` })
      await c.subscribe([[`${root}/#`, 0]])
      await c.subscribe([[`${root}/o`, 1]])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(`${root}/o`, 'both', 1)
      const got = await c.drain()
      assert.ok(got.length >= 1, 'delivered')
      assert.ok(got.every((p) => text(p) === 'both'))
      assert.equal(Math.max(...got.map((p) => p.qos)), 1, `at the maximum QoS of the matching subscriptions [MQTT-3.3.5-1]; got ${got.length} cop${got.length === 1 ? 'y' : 'ies'} at QoS ${got.map((p) => p.qos).join(', ')}`)
      await c.disconnect(); await pub.disconnect()
    }
  },
  {
    id: 'behaviour / connect / a second CONNECT on a connection is a protocol violation: closed',
    access: 'open',
    async run (t) {
      const c = await Client.open(t, { clientId: `x-${uid()}` })
      c.w.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `x-${uid()}`, clean: true, keepalive: 60 })
      await closedWithin(c, WAIT, 'after a second CONNECT')
    }
  },
  {
    id: 'behaviour / limits / a packet over the size limit closes only that connection; one under it is delivered',
    access: 'open',
    async run (t, root) {
      const sub = await Client.open(t, { clientId: `s-${uid()}` })
      await sub.subscribe([[`${root}/big`, 0]])
      const topic = `${root}/big`
      // PUBLISH QoS 0: 1 type byte + 4 length bytes (sizes here are >= 2^21) + 2 + topic + payload.
      const payloadFor = (total: number): Buffer => Buffer.alloc(total - 5 - 2 - Buffer.byteLength(topic), 0x61)
      const ok = await Client.open(t, { clientId: `k-${uid()}` })
      await ok.publish(topic, payloadFor(t.maxPacketSize - 64))
      const m = await sub.message(10_000)
      assert.equal((m.payload as Buffer).length, t.maxPacketSize - 64 - 7 - Buffer.byteLength(topic), 'the packet under the limit arrived whole')
      const big = await Client.open(t, { clientId: `b-${uid()}` })
      big.w.send({ cmd: 'publish', topic, payload: payloadFor(t.maxPacketSize + 64), qos: 0, retain: false, dup: false })
      await closedWithin(big, 10_000, 'a packet over the limit')
      await sub.nothing()
      await ok.ping(); await sub.ping()
      await ok.disconnect(); await sub.disconnect()
    }
  },
  {
    id: 'behaviour / limits / topics as deep as the broker allows work; a far deeper one is refused without harm',
    access: 'open',
    async run (t, root) {
      const deep = [root, ...Array.from({ length: t.maxTopicLevels - root.split('/').length }, (_, i) => `l${i}`)].join('/')
      const c = await Client.open(t, { clientId: `d-${uid()}` })
      assert.deepEqual(await c.subscribe([[deep, 1], [`${root}/#`, 1]]), [1, 1])
      const pub = await Client.open(t, { clientId: `p-${uid()}` })
      await pub.publish(deep, 'deep', 1)
      const got = await c.drain()
      assert.ok(got.length >= 1 && got.every((p) => p.topic === deep), `the ${t.maxTopicLevels}-level topic arrived`)
      // 20,000 levels: either SUBACK 0x80 or a closed connection; the broker stays up.
      const abyss = [root, ...Array.from({ length: 20_000 }, () => 'x')].join('/')
      const s = await Client.open(t, { clientId: `a-${uid()}` })
      s.w.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: abyss, qos: 0 }] })
      const refused = await s.w.packet(WAIT).then((p) => p.cmd === 'suback' && (p as unknown as { granted: number[] }).granted[0] === 0x80, () => s.w.closed)
      assert.ok(refused, 'a 20,000-level filter is refused (SUBACK 0x80 or connection closed)')
      s.w.destroy()
      const p2 = await Client.open(t, { clientId: `q-${uid()}` })
      p2.w.send({ cmd: 'publish', topic: abyss, payload: Buffer.from('abyss'), qos: 0, retain: false, dup: false })
      await c.nothing()
      p2.w.destroy()
      await c.ping()
      await c.disconnect(); await pub.disconnect()
    }
  },
  // Cases for brokers that require credentials and enforce an ACL (mqchat's chat mode).
  {
    id: 'behaviour / auth / a CONNECT without credentials is refused (CONNACK 0x05) and closed',
    access: 'auth',
    async run (t) {
      const c = await Client.open(t, { clientId: `anon-${uid()}` }, 5)
      await closedWithin(c, WAIT, 'after a refused CONNECT')
    }
  },
  {
    id: 'behaviour / auth / a wrong password is refused (CONNACK 0x04 or 0x05) and closed',
    access: 'auth',
    async run (t) {
      const code = await wrongPassword(t, 4)
      assert.ok(code === 4 || code === 5, `return code ${String(code)}`)
    }
  },
  {
    id: 'behaviour / auth / with valid credentials a client subscribes to what it may; other filters get 0x80 and the connection stays',
    access: 'auth',
    async run (t) {
      const f = fixture(t)
      const c = await Client.open(t, { clientId: f.clientId, username: f.username, password: f.password })
      assert.deepEqual(await c.subscribe([[f.allowedSub, 1]]), [1])
      assert.deepEqual(await c.subscribe([[f.deniedSub, 1]]), [0x80], 'another device\'s topic')
      assert.deepEqual(await c.subscribe([['#', 0]]), [0x80], 'everything')
      await c.ping()
      await c.disconnect()
    }
  },
  {
    id: 'behaviour / auth / MQTT 5 reason codes: a wrong password CONNACK 0x86 or 0x87, a forbidden publish PUBACK 0x87; the connection stays',
    access: 'auth',
    protocol: '5',
    async run (t) {
      const code = await wrongPassword(t, 5)
      assert.ok(code === 0x86 || code === 0x87, `reason code ${String(code)}`)
      assert.equal(await refusedPublish(t, 5), 0x87, 'PUBACK reason code')
    }
  },
  {
    id: 'behaviour / auth / MQTT 5 reason codes: a filter the ACL refuses gets SUBACK 0x87, the others their QoS',
    access: 'auth',
    protocol: '5',
    async run (t) {
      const f = fixture(t)
      const c = await Client.open(t, { clientId: f.clientId, username: f.username, password: f.password, protocolVersion: 5 })
      c.w.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: f.allowedSub, qos: 1 }, { topic: f.deniedSub, qos: 1 }] }, 5)
      // PUBLISHes on the granted filter may come before the SUBACK [MQTT 3.8.4].
      let suback = await c.w.packet(WAIT, 5)
      for (; suback.cmd === 'publish'; suback = await c.w.packet(WAIT, 5)) c.ack(suback)
      assert.equal(suback.cmd, 'suback')
      const granted = (suback as { granted?: number[] }).granted
      assert.deepEqual(granted, [1, 0x87], `SUBACK codes ${JSON.stringify(granted)}`)
      // Still usable: PINGREQ answered (what the granted filter brings meanwhile is acknowledged).
      c.w.send({ cmd: 'pingreq' }, 5)
      for (let p = await c.w.packet(WAIT, 5); p.cmd !== 'pingresp'; p = await c.w.packet(WAIT, 5)) {
        assert.equal(p.cmd, 'publish', `expected PINGRESP, got ${p.cmd}`)
        c.ack(p as IPublishPacket)
      }
      await c.disconnect()
    }
  },
  {
    id: 'behaviour / auth / a publish the ACL refuses is acknowledged and dropped; the connection stays',
    access: 'auth',
    async run (t) { await refusedPublish(t, 4) }
  }
]

/** CONNECT with the fixture's credentials but a wrong password: resolves with the CONNACK's code once the broker has closed. */
async function wrongPassword (t: RunningTarget, version: 4 | 5): Promise<number | undefined> {
  const f = fixture(t)
  const w = await Wire.open(t.host, t.port)
  w.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: f.clientId, clean: true, keepalive: 60, username: f.username, password: Buffer.from(f.password + 'x') }, version)
  const ack = await w.packet(WAIT, version) as { cmd: string, returnCode?: number, reasonCode?: number }
  assert.equal(ack.cmd, 'connack')
  assert.ok(await w.waitClose(WAIT), 'closed after the refusal')
  return version === 5 ? ack.reasonCode : ack.returnCode
}

/**
 * Signs in with the fixture, publishes at QoS 1 where the ACL refuses it, and
 * resolves with the PUBACK's reason code (undefined at 3.1.1) once the
 * connection has shown it is still usable.
 */
async function refusedPublish (t: RunningTarget, version: 4 | 5): Promise<number | undefined> {
  const f = fixture(t)
  const c = await Client.open(t, { clientId: f.clientId, username: f.username, password: f.password, protocolVersion: version })
  const messageId = c.id()
  c.w.send({ cmd: 'publish', topic: f.deniedPub, payload: Buffer.from('{}'), qos: 1, retain: false, dup: false, messageId }, version)
  // The broker may tell the client why on a topic of its own first (mqchat: an inbox error event).
  let code: number | undefined
  for (;;) {
    const p = await c.w.packet(WAIT, version) as { cmd: string, messageId?: number, reasonCode?: number }
    if (p.cmd === 'puback') { assert.equal(p.messageId, messageId); code = p.reasonCode; break }
    assert.equal(p.cmd, 'publish', `expected PUBACK, got ${p.cmd}`)
    c.ack(p as IPublishPacket)
  }
  await c.ping()
  await c.disconnect()
  return code
}

function fixture (t: RunningTarget): AuthFixture {
  if (!t.auth) throw new Error(`${t.name} has no credentials for the auth cases`)
  return t.auth
}
