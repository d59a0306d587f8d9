// Catch-up before live delivery. A device that reconnects to its persistent
// session gets what was queued for it first, and then what arrives live.
//
// aedes (1.2 and 2.0) restores a session's subscriptions before it sends the CONNACK
// and replays the queue, so a message published during the replay is written
// to the connection at once, ahead of older queued ones (each replayed packet
// waits for a session-store update first, a Redis round trip in the cluster).
// Here a reconnecting client's live QoS 1 deliveries are held from the start
// of its CONNECT until aedes reports the client ready (after the replay), and
// then delivered in arrival order, less those the replay already sent.
//
// A held message is already in the device's stored queue: aedes queues a
// message for every persistent subscriber before it routes it. So the router
// is told "done" at once (one slow replay must not hold up other devices'
// deliveries), and a connection that ends before the replay finishes loses
// nothing: its next session replays the queue again.
import { Readable } from 'node:stream'
import type { Client } from 'aedes'

interface RoutedPacket { qos?: number, retain?: boolean, brokerId?: string, brokerCounter?: number }
type Deliver = (packet: RoutedPacket, cb: () => void) => void

interface Gate {
  deliver: Deliver
  held: RoutedPacket[]
  /** Past the bound: the connection is being closed, and nothing more is held. */
  overflowed: boolean
  /** brokerId:brokerCounter of every packet the replay handed to aedes. */
  replayed: Set<string>
}

const keyOf = (p: RoutedPacket): string | undefined => p.brokerId ? `${p.brokerId}:${String(p.brokerCounter)}` : undefined
const noop = (): void => {}

export interface CatchUp {
  /** From preConnect: a CONNECT that resumes a session holds its client's live deliveries. */
  admit (client: Client, packet: { clean: boolean }): void
  /** From aedes' 'clientReady': the replay is over; delivers what was held. */
  ready (client: Client): void
}

/**
 * Wraps `persistence.outgoingStream` to see what each replay sends.
 * `maxHeld` bounds the live messages held for one client; past it the
 * connection is closed (`onOverflow`), and the device's next session gets them
 * from its queue.
 */
export function catchUpFirst (
  persistence: { outgoingStream: (client: Client) => Readable },
  opts: { maxHeld: number, onOverflow: (client: Client, held: number) => void }
): CatchUp {
  const gates = new WeakMap<Client, Gate>()

  const outgoingStream = persistence.outgoingStream.bind(persistence)
  persistence.outgoingStream = (client) => {
    const gate = gates.get(client)
    const source = outgoingStream(client)
    if (!gate) return source
    return Readable.from((async function * () {
      for await (const p of source as AsyncIterable<RoutedPacket>) {
        const key = keyOf(p)
        if (key !== undefined) gate.replayed.add(key)
        yield p
      }
    })(), { highWaterMark: 1 })
  }

  return {
    admit (client, packet) {
      if (packet.clean) return
      const c = client as unknown as { deliverQoS: Deliver }
      const gate: Gate = { deliver: c.deliverQoS, held: [], overflowed: false, replayed: new Set() }
      gates.set(client, gate)
      // aedes binds this function into each subscription as it is restored, so it is replaced before that.
      c.deliverQoS = (p, cb) => {
        const g = gates.get(client)
        // QoS 0 (typing, presence) and retained messages are never queued: nothing to wait for.
        if (g === undefined || !p.qos || p.retain === true) { gate.deliver(p, cb); return }
        if (!g.overflowed) g.held.push(p)
        if (g.held.length > opts.maxHeld) {
          g.overflowed = true
          opts.onOverflow(client, g.held.length)
          g.held = []
        }
        setImmediate(cb)
      }
    },
    ready (client) {
      const gate = gates.get(client)
      if (!gate) return
      gates.delete(client)
      if (gate.overflowed) return
      for (const p of gate.held) {
        const key = keyOf(p)
        if (key === undefined || !gate.replayed.has(key)) gate.deliver(p, noop)
      }
    }
  }
}
