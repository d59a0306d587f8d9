// `mqchat listen`: the device's persistent MQTT session, printing inbox events.
import mqtt from 'mqtt'
import { call } from './http.js'
import { CliError, EXIT } from './errors.js'
import type { Profile } from './profile.js'
import { isEncrypted, type E2ee, type MessageJson } from './e2ee.js'
import { Names } from './names.js'

export interface ListenOptions {
  json: boolean
  /** Exit after this many events (0 = run until interrupted). */
  count: number
  /** Exit with code 0 after this many seconds (0 = no limit). */
  timeout: number
  mqttUrl?: string
  /** Send "delivered" receipts for the messages printed (default on). */
  receipts: boolean
  /** 4: MQTT 3.1.1 (the default); 5: MQTT 5, with a 30-day session expiry and the inbox topic aliased. */
  mqttVersion?: 4 | 5
  /** Decrypts encrypted messages, takes in group keys, and acts on `keys` events. */
  e2ee?: E2ee
}

/** How long an MQTT 5 session outlives its connection: the 30 days offline devices are queued for. */
const SESSION_EXPIRY_S = 30 * 24 * 3600

type Event = Record<string, unknown> & { type: string }

/**
 * An encrypted message made readable: its plaintext body (with
 * "encrypted": true), or why it cannot be read ("undecryptable"). A group
 * key is taken in and gives undefined: there is nothing to show.
 */
export async function reveal (e2ee: E2ee, e: Event): Promise<Event | undefined> {
  if (!isEncrypted(e.body)) return e
  const opened = await e2ee.open(e as unknown as MessageJson)
  if (opened.ok === 'session') return undefined
  return opened.ok ? { ...e, body: opened.body, encrypted: true } : { ...e, body: null, encrypted: true, undecryptable: opened.reason }
}

/** A timer's span as people say it: 24h, 7d, 90d, or seconds. */
export function span (seconds: number): string {
  if (seconds % 86_400 === 0) return seconds === 86_400 ? '24h' : `${seconds / 86_400}d`
  if (seconds % 3600 === 0) return `${seconds / 3600}h`
  return `${seconds}s`
}

/** One line for an event; `label` names users (clients/cli/names.ts). */
export function formatEvent (e: Event, label: (userId: unknown) => string = String): string {
  const body = (b: unknown): string => typeof b === 'string' ? b : JSON.stringify(b)
  switch (e.type) {
    case 'msg': {
      const head = `[${String(e.chat)} #${String(e.seq)}] ${label(e.from)}`
      // Never dropped: a message this device cannot read is shown as such.
      if (typeof e.undecryptable === 'string') {
        return e.kind === 'session'
          ? `${head} sent a group key this device could not decrypt (${e.undecryptable})`
          : `${head}: [could not decrypt: ${e.undecryptable}]`
      }
      switch (e.kind) {
        case 'reply': return `${head} (reply to #${String(e.ref)}): ${body(e.body)}`
        case 'edit': return `${head} edited #${String(e.ref)}: ${body(e.body)}`
        case 'delete': return `${head} deleted #${String(e.ref)}`
        case 'media': {
          const b = (e.body ?? {}) as { name?: string, size?: number, caption?: string }
          return `${head}${e.forwarded === true ? ' (forwarded)' : ''}: [media ${String(e.media)}${b.name ? ` ${b.name}` : ''}${b.size ? `, ${b.size} bytes` : ''}]${b.caption ? ` ${b.caption}` : ''} (mqchat fetch ${String(e.media)})`
        }
        case 'timer': {
          const seconds = (e.body as { seconds?: number } | null)?.seconds ?? 0
          return seconds === 0 ? `${head} turned disappearing messages off` : `${head} set disappearing messages to ${span(seconds)}`
        }
        case 'reaction': return e.body === null ? `${head} removed their reaction to #${String(e.ref)}` : `${head} reacted ${body(e.body)} to #${String(e.ref)}`
        default: return `${head}${e.forwarded === true ? ' (forwarded)' : ''}: ${e.deleted === true ? '(deleted)' : body(e.body)}${typeof e.edited_at === 'number' ? ' (edited)' : ''}`
      }
    }
    case 'ack': return `[${String(e.chat)} #${String(e.seq)}] ✓ sent (${String(e.id)})${e.duplicate === true ? ' (repeat)' : ''}`
    case 'chat': return `[${String(e.chat)}] chat ${String(e.change)} by ${label(e.by)}${Array.isArray(e.users) && e.users.length > 0 ? `: ${e.users.map(label).join(', ')}` : ''}${e.name ? ` "${String(e.name)}"` : ''}${e.role ? ` → ${String(e.role)}` : ''}${e.change === 'disappearing' ? (typeof e.seconds === 'number' ? `: messages disappear after ${span(e.seconds)}` : ': messages no longer disappear') : ''}`
    case 'receipt': return `[${String(e.chat)}] ${e.read !== undefined && Number(e.read) > 0 ? '✓✓ (blue)' : '✓✓'} ${label(e.user)}: delivered up to #${String(e.delivered)}${e.read !== undefined ? `, read up to #${String(e.read)}` : ''}`
    case 'typing': return `[${String(e.chat)}] ${label(e.user)} is ${e.state === 'paused' ? 'no longer typing' : 'typing…'}`
    case 'sync': return e.reason === 'history_purged'
      ? `[${String(e.chat)}] #${String(e.from)}–#${String(e.to)} were removed by retention before this device got them`
      : `sync needed (${String(e.reason)}): run mqchat history, or call the sync API, to catch up`
    case 'keys': {
      const note = typeof e.note === 'string' ? `; ${e.note}` : ''
      if (e.reason === 'prekeys_low') return `keys: ${String(e.count)} one-time prekeys left for this device${note}`
      if (e.reason === 'identity_changed') return `keys: ${label(e.user)}'s device ${String(e.device)} has a new identity key${note}`
      return `keys: ${label(e.user)} has a new device ${String(e.device)}${note}`
    }
    case 'profile': return `${label(e.user)} changed their profile${e.name !== null && e.name !== undefined ? `: ${String(e.name)}` : ''}${typeof e.about === 'string' ? ` — ${e.about}` : ''}`
    case 'error': return `error ${String(e.code)}${e.id ? ` for ${String(e.id)}` : ''}${e.chat ? ` in ${String(e.chat)}` : ''}: ${String(e.message)}`
    default: return JSON.stringify(e)
  }
}

export async function mqttUrlFor (p: Profile): Promise<string> {
  const info = await call<{ mqtt_port: number }>(p.server, 'GET', '/v1/info')
  const u = new URL(p.server)
  return `mqtt://${u.hostname}:${info.mqtt_port}`
}

export async function listen (p: Required<Pick<Profile, 'server' | 'device_id' | 'token'>>, opts: ListenOptions): Promise<number> {
  const url = opts.mqttUrl ?? await mqttUrlFor(p)
  const names = new Names(p)
  // Others can start encrypted sessions with this device once its keys are published.
  if (opts.e2ee !== undefined) {
    await opts.e2ee.ensurePublished().catch((err: Error & { exitCode?: number }) => {
      if (err.exitCode === EXIT.unreachable) throw err
      process.stderr.write(`could not publish this device's encryption keys (${err.message}): encrypted messages to it cannot be sent yet\n`)
    })
  }
  const inbox = `dev/${p.device_id}/inbox`
  const live = `dev/${p.device_id}/live`
  let backoff = 1000
  const client = mqtt.connect(url, {
    clientId: p.device_id,
    username: p.device_id,
    password: p.token,
    clean: false,
    protocolVersion: opts.mqttVersion ?? 4,
    ...(opts.mqttVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S, topicAliasMaximum: 1 } } : {}),
    keepalive: 30,
    reconnectPeriod: backoff,
    connectTimeout: 10_000
  })
  let seen = 0
  // Delivered receipts, coalesced: the highest seq printed per chat, sent shortly after.
  const pending = new Map<string, number>()
  let flushTimer: NodeJS.Timeout | undefined
  const flushReceipts = (): void => {
    flushTimer = undefined
    for (const [chat, seq] of pending) client.publish(`chat/${chat}/receipt`, JSON.stringify({ type: 'delivered', seq }), { qos: 1 })
    pending.clear()
  }
  const noteDelivered = (chat: string, seq: number): void => {
    if (!opts.receipts) return
    pending.set(chat, Math.max(pending.get(chat) ?? 0, seq))
    flushTimer ??= setTimeout(flushReceipts, 200)
  }
  return await new Promise<number>((resolve, reject) => {
    let stopping = false
    const finish = (code: number, err?: Error): void => {
      if (stopping) return
      stopping = true
      if (flushTimer) {
        clearTimeout(flushTimer)
        flushReceipts()
      }
      client.end(false, {}, () => err ? reject(err) : resolve(code))
    }
    if (opts.timeout > 0) setTimeout(() => finish(EXIT.ok), opts.timeout * 1000).unref()
    const stop = (): void => finish(EXIT.ok)
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)

    client.on('connect', () => {
      backoff = 1000
      client.options.reconnectPeriod = backoff
      client.subscribe(live, { qos: 0 })
      client.subscribe(inbox, { qos: 1 }, (err) => {
        if (stopping) return
        // Only a SUBACK failure code is a refusal; a SUBSCRIBE cut off by a lost connection is retried on reconnect.
        const codes = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted
        if (codes?.[0] === 128) finish(EXIT.refused, new CliError(`subscribing to ${inbox} was refused`, EXIT.refused))
        else if (err) process.stderr.write(`subscribing to ${inbox} failed (${err.message}); retrying on reconnect\n`)
        else if (!opts.json) process.stderr.write(`listening on ${inbox} (${url})\n`)
      })
    })
    client.on('reconnect', () => {
      // Exponential backoff up to 30 s between attempts.
      backoff = Math.min(backoff * 2, 30_000)
      client.options.reconnectPeriod = backoff
      if (!opts.json) process.stderr.write(`reconnecting to ${url}…\n`)
    })
    client.on('error', (err: Error & { code?: number }) => {
      if (err.code === 135) {
        finish(EXIT.auth, new CliError('the server refused this device (0x87 not authorized: it was revoked; link it again)', EXIT.auth))
      } else if (err.code === 134) {
        finish(EXIT.auth, new CliError('the server refused this device (0x86 bad user name or password: the token is wrong)', EXIT.auth))
      } else if (err.code === 5 || err.code === 4) {
        finish(EXIT.auth, new CliError('the server refused this device (token revoked or wrong): not authorized', EXIT.auth))
      } else if (!opts.json) {
        process.stderr.write(`connection problem: ${err.message}${reasonOf(err.code)}\n`)
      }
    })
    // MQTT 5: the server says why it closes the connection (the client reconnects unless the device was revoked).
    client.on('disconnect', (packet: { reasonCode?: number, properties?: { reasonString?: string } }) => {
      if (!opts.json) process.stderr.write(`the server closed the connection${reasonOf(packet.reasonCode)}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''}\n`)
    })
    const handle = async (topic: string, payload: Buffer): Promise<void> => {
      if (topic !== inbox && topic !== live) return
      let event: Event
      try {
        event = JSON.parse(payload.toString('utf8')) as Event
      } catch {
        return
      }
      const delivered = event.type === 'msg' && typeof event.chat === 'string' && typeof event.seq === 'number'
      if (topic === inbox && opts.e2ee !== undefined) {
        if (event.type === 'msg') {
          const shown = await reveal(opts.e2ee, event)
          if (shown === undefined) {
            noteDelivered(event.chat as string, event.seq as number)
            return
          }
          event = shown
        } else if (event.type === 'keys') {
          const note = await opts.e2ee.onKeysEvent(event).catch((err: Error) => `could not act on it: ${err.message}`)
          if (note !== undefined) event = { ...event, note }
        }
      }
      if (!opts.json) await names.load(Names.idsOf(event))
      process.stdout.write((opts.json ? JSON.stringify(event) : formatEvent(event, names.label)) + '\n')
      if (event.type === 'profile' && typeof event.user === 'string') names.learn(event.user, event.name as string | null)
      if (delivered) noteDelivered(event.chat as string, event.seq as number)
      if (topic === inbox && opts.count > 0 && ++seen >= opts.count) finish(EXIT.ok)
    }
    // One message at a time, acknowledged once printed: a group key is taken in before the messages it opens.
    client.handleMessage = (packet, done) => {
      handle(packet.topic, packet.payload as Buffer).then(() => done(), (err: Error) => {
        process.stderr.write(`could not handle a message on ${packet.topic}: ${err.message}\n`)
        done()
      })
    }
  })
}

/** MQTT 5 reason codes the server sends on CONNACK and DISCONNECT (docs/protocol.md, "MQTT 5"). */
const REASONS: Readonly<Record<number, string>> = {
  0x80: 'unspecified error',
  0x87: 'not authorized',
  0x89: 'server busy',
  0x8b: 'server shutting down',
  0x8d: 'keep alive timeout',
  0x8e: 'session taken over by another connection of this device',
  0x93: 'receive maximum exceeded',
  0x95: 'packet too large',
  0x96: 'message rate too high',
  0x97: 'quota exceeded'
}

function reasonOf (code: number | undefined): string {
  if (code === undefined || code < 0x80) return ''
  return ` (reason code 0x${code.toString(16)}${REASONS[code] !== undefined ? ` ${REASONS[code]}` : ''})`
}
