// HTTP sends in the cluster go through the chat stream, like MQTT
// publishes, so each chat keeps one writer: the bridge worker that owns its
// partition. The API node checks what it can (membership, the envelope, a
// forward's source and targets), appends the entry with a reply address
// (`<nodeId> <request number>`), and waits for the worker's reply on the
// node's own channel `mqchat:sent:<nodeId>`. A reply that does not come in
// time (a backlog, a worker failing over, a reply lost with a dropped
// subscription: pub/sub is at most once) leaves the send queued, not lost:
// the entry is in the stream, and the sending device gets its `ack` event,
// or an `error` event when the worker refuses it after all.
import type { Logger } from 'pino'
import { DomainError } from '../core/errors.js'
import { parseEnvelope } from '../bridge/envelope.js'
import type { Bridge } from '../bridge/index.js'
import type { MessageSends, SendOutcome, Sent } from '../bridge/sends.js'
import type { Device } from '../store/types.js'
import type { ChatStream } from './chat-stream.js'
import type { RedisConnection } from './redis.js'

export const sentChannel = (nodeId: string): string => `mqchat:sent:${nodeId}`

/** What a worker answers for an entry with a reply address (a refusal names the send, for when nobody waits any more). */
export type SendReply = { n: number, sent: Sent } | { n: number, refused: { code: string, message: string, status: number, device: string, chat: string, id?: string, details?: Record<string, unknown> } }

/** The payload of a forward's stream entry (kind `fwd`): which message, and the copy's client id. */
export interface ForwardEntry { from: string, seq: number, id: string }

/** A forward entry's payload, or undefined when it is not one. */
export function forwardEntry (payload: Buffer): ForwardEntry | undefined {
  try {
    const f = JSON.parse(payload.toString()) as Partial<ForwardEntry>
    return typeof f.from === 'string' && typeof f.seq === 'number' && typeof f.id === 'string' ? f as ForwardEntry : undefined
  } catch {
    return undefined
  }
}

/** Sends a reply to the API node named in `address`. */
export async function reply (conn: RedisConnection, address: string, outcome: { sent: Sent } | { refused: DomainError, device: string, chat: string, id?: string }): Promise<void> {
  const [nodeId, n] = address.split(' ')
  const body: SendReply = 'sent' in outcome
    ? { n: Number(n), sent: outcome.sent }
    : { n: Number(n), refused: { code: outcome.refused.code, message: outcome.refused.message, status: outcome.refused.status, device: outcome.device, chat: outcome.chat, id: outcome.id, ...(outcome.refused.details !== undefined ? { details: outcome.refused.details } : {}) } }
  await conn.publish(sentChannel(nodeId), JSON.stringify(body))
}

export class StreamSends implements MessageSends {
  #next = 0
  readonly #waiting = new Map<number, (r: SendReply) => void>()

  constructor (
    private readonly stream: ChatStream,
    private readonly sub: RedisConnection,
    private readonly bridge: Bridge,
    private readonly nodeId: string,
    private readonly opts: { waitMs: number, maxMessageBytes: number },
    private readonly log: Logger
  ) {}

  async start (): Promise<void> {
    const channel = sentChannel(this.nodeId)
    this.sub.on('message', (ch: string, text: string) => {
      if (ch !== channel) return
      let r: SendReply
      try {
        r = JSON.parse(text) as SendReply
      } catch (err) {
        this.log.error({ err }, 'unreadable reply to an HTTP send')
        return
      }
      const waiting = this.#waiting.get(r.n)
      if (waiting) waiting(r)
      else if ('refused' in r) {
        // Answered 202 already: the device learns of the refusal as a publish's, by an `error` event.
        const { code, message, device, chat, id, details } = r.refused
        this.bridge.refuse(device, { code, message, topic: `chat/${chat}/msg`, chat, id, ...(details !== undefined ? { details } : {}) })
      }
    })
    await this.sub.subscribe(channel)
  }

  async send (device: Device, chatId: string, payload: Buffer): Promise<SendOutcome> {
    this.bridge.checkMember(device, chatId)
    const env = parseEnvelope(payload, this.opts.maxMessageBytes)
    return await this.through(chatId, env.id, (address) => this.stream.append(chatId, device.id, payload, { reply: address }))
  }

  async forward (device: Device, fromChat: string, seq: number, targets: string[], clientId: string): Promise<SendOutcome[]> {
    const { chats } = await this.bridge.checkForward(device, fromChat, seq, targets)
    // Every copy is in the stream before the first answer is awaited; each chat's worker writes its own.
    return await Promise.all(chats.map(async (chatId, i) => {
      const entry: ForwardEntry = { from: fromChat, seq, id: `${clientId}.${i}` }
      return await this.through(chatId, entry.id, (address) => this.stream.append(chatId, device.id, Buffer.from(JSON.stringify(entry)), { reply: address, forward: true }))
    }))
  }

  /** Appends with a reply address; the worker's answer, or queued waitMs after the append. Throws the worker's refusal. */
  private async through (chatId: string, id: string, append: (address: string) => Promise<string>): Promise<SendOutcome> {
    const n = ++this.#next
    let timer: NodeJS.Timeout | undefined
    let timeUp = (): void => {}
    // Listening before the append: the answer may come before the append returns (a replica wait).
    const answered = new Promise<SendReply | undefined>((resolve) => {
      this.#waiting.set(n, resolve)
      timeUp = () => resolve(undefined)
    })
    try {
      try {
        await append(`${this.nodeId} ${n}`)
      } catch (err) {
        this.log.error({ err, chat: chatId }, 'an HTTP send could not be appended to the chat stream')
        throw new DomainError('unavailable', 'the message could not be taken now; send it again (same id)', 503)
      }
      timer = setTimeout(timeUp, this.opts.waitMs)
      const r = await answered
      if (r === undefined) return { chat: chatId, id, queued: true }
      if ('refused' in r) throw new DomainError(r.refused.code, r.refused.message, r.refused.status, r.refused.details)
      return r.sent
    } finally {
      clearTimeout(timer)
      this.#waiting.delete(n)
    }
  }
}
