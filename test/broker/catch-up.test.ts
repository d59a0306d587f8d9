// broker/catch-up.ts on a real aedes with mqchat's SQLite session store and
// mqtt.js over TCP. The test holds the queue replay still, publishes live
// messages meanwhile, then lets the replay go on: what the device sees must be
// the queue first, then the live messages, each once.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import mqtt, { type MqttClient } from 'mqtt'
import { SqlitePersistence } from '../../broker/persistence/sqlite.js'
import { catchUpFirst } from '../../broker/catch-up.js'
import { waitFor, within } from '../helpers/server.js'

interface Harness {
  aedes: Aedes
  port: number
  /** The next replay stops before its first packet until `resume()`. */
  holdNextReplay (): { started: Promise<void>, resume: () => void }
  overflows: string[]
  close (): Promise<void>
}

const harnesses: Harness[] = []
after(async () => { for (const h of harnesses) await h.close() })

async function harness (maxHeld: number): Promise<Harness> {
  const persistence = new SqlitePersistence({ path: ':memory:' })
  // The pacing sits below catch-up, where a slow session store would be.
  let hold: { started: () => void, resumed: Promise<void> } | undefined
  const stored = persistence.outgoingStream.bind(persistence)
  persistence.outgoingStream = (client) => {
    const h = hold
    hold = undefined
    const source = stored(client)
    if (!h) return source
    return Readable.from((async function * () {
      h.started()
      await h.resumed
      yield * source
    })(), { highWaterMark: 1 })
  }
  const overflows: string[] = []
  const catchUp = catchUpFirst(persistence as never, { maxHeld, onOverflow: (client) => { overflows.push(client.id); client.close() } })
  const aedes = new Aedes({
    persistence: persistence as never,
    preConnect: ((client: Client, packet: { clean: boolean }, done: (err: Error | null, ok: boolean) => void) => { catchUp.admit(client, packet); done(null, true) }) as AedesOptions['preConnect']
  })
  await aedes.listen()
  aedes.on('clientReady', (client: Client) => catchUp.ready(client))
  const server: Server = createServer((s) => aedes.handle(s))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const h: Harness = {
    aedes,
    port: (server.address() as AddressInfo).port,
    overflows,
    holdNextReplay () {
      let started!: () => void
      let resume!: () => void
      const startedP = new Promise<void>((resolve) => { started = resolve })
      hold = { started, resumed: new Promise<void>((resolve) => { resume = resolve }) }
      return { started: startedP, resume }
    },
    async close () {
      server.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
      await persistence.destroy()
    }
  }
  harnesses.push(h)
  return h
}

function publish (aedes: Aedes, body: string): Promise<void> {
  return new Promise((resolve, reject) => aedes.publish({ cmd: 'publish', topic: 'dev/d1/inbox', payload: Buffer.from(body), qos: 1, retain: false, dup: false }, (err) => err ? reject(err) : resolve()))
}

const event = (c: MqttClient, name: 'connect' | 'close'): Promise<void> => new Promise((resolve) => { c.once(name, () => resolve()) })

async function device (port: number, seen: string[]): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'd1', clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 })
  c.on('message', (_t, payload) => seen.push(payload.toString()))
  await within('the device to connect', event(c, 'connect'), 10_000)
  return c
}

/** A session subscribed to its inbox, away, with q1…q3 queued. */
async function queued (h: Harness): Promise<void> {
  const first = await device(h.port, [])
  await first.subscribeAsync('dev/d1/inbox', { qos: 1 })
  await first.endAsync()
  for (const q of ['q1', 'q2', 'q3']) await publish(h.aedes, q)
}

test('live messages published while the queue is replayed arrive after it, in order, each once', async () => {
  const h = await harness(100)
  await queued(h)
  const replay = h.holdNextReplay()
  const seen: string[] = []
  const back = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'd1', clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 })
  back.on('message', (_t, payload) => seen.push(payload.toString()))
  await within('the replay to start', replay.started, 10_000)
  for (const l of ['l1', 'l2', 'l3']) await publish(h.aedes, l)
  // Without catch-up the live ones are on their way now, ahead of the queue.
  await new Promise((resolve) => setTimeout(resolve, 100))
  replay.resume()
  await waitFor('six messages', () => seen.length >= 6 || undefined)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(seen, ['q1', 'q2', 'q3', 'l1', 'l2', 'l3'])
  await back.endAsync()
})

test('past the hold bound the connection is closed, and the next one gets everything from the queue, in order', async () => {
  const h = await harness(2)
  await queued(h)
  const replay = h.holdNextReplay()
  const back = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'd1', clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 })
  back.on('error', () => {})
  const closed = event(back, 'close')
  await within('the replay to start', replay.started, 10_000)
  for (const l of ['l1', 'l2', 'l3']) await publish(h.aedes, l)
  await within('the over-bound connection to be closed', closed, 10_000)
  assert.deepEqual(h.overflows, ['d1'])
  replay.resume()
  back.end(true)

  const seen: string[] = []
  const again = await device(h.port, seen)
  await waitFor('six messages', () => seen.length >= 6 || undefined)
  assert.deepEqual(seen, ['q1', 'q2', 'q3', 'l1', 'l2', 'l3'])
  await again.endAsync()
})

test('a clean session holds nothing back', async () => {
  const h = await harness(100)
  const seen: string[] = []
  const c = mqtt.connect(`mqtt://127.0.0.1:${h.port}`, { clientId: 'c1', clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 })
  c.on('message', (_t, payload) => seen.push(payload.toString()))
  await within('the client to connect', event(c, 'connect'), 10_000)
  await c.subscribeAsync('dev/d1/inbox', { qos: 1 })
  await publish(h.aedes, 'now')
  await waitFor('the live message', () => seen.length >= 1 || undefined)
  assert.deepEqual(seen, ['now'])
  await c.endAsync()
})
