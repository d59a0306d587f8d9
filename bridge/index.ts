// The bridge: takes an accepted chat publish, gives it the chat's next seq,
// stores it, and fans it out as one inbox event per member device.
//
//   acceptMessage()  membership -> envelope -> history.append (serialised per
//                    chat) -> fan-out -> ack to the sender
//
// A chat's plain messages are pipelined: the next one's checks and append
// are issued while the one before is still being stored, so they share a
// group commit (SQLite) or an insert (MongoDB), and what follows the store
// runs in the same order on the chat's tail. Anything that reads or changes
// what earlier messages make (a reply, edit, delete, reaction, timer, media)
// waits for the chat's messages in flight, and holds the chat until done.
//
// The caller (the broker's authorizePublish hook) sends the MQTT PUBACK only
// after acceptMessage() resolves, i.e. after the history write committed.
// Fan-out is recorded in history (the outbox flag) once every inbox copy is
// in the broker's session store; redoPendingFanout() finishes any fan-out a
// crash interrupted. In the cluster the chat stream entry is the outbox
// instead (streamIsOutbox). Repeats carry the same (chat, seq), so clients
// dedupe.
import type { Logger } from 'pino'
import type { ChatChange, ChatService } from '../core/chats.js'
import type { DeviceService } from '../core/devices.js'
import { DomainError } from '../core/errors.js'
import type { AppendResult, Device, HistoryStore, MessageEffect, StoredMessage } from '../store/types.js'
import { KeyedQueue } from '../lib/serial.js'
import type { Metrics } from '../lib/metrics.js'
import type { BlockService } from '../core/blocks.js'
import type { MediaService } from '../core/media.js'
import { CONTENT_TYPES, effectOf, type MessageRules } from '../core/message-rules.js'
import { isDirectChatId } from '../core/ids.js'
import { parseEnvelope, type Envelope } from './envelope.js'
import { bodyFor, isEncryptedBody, isPairwiseBody } from './e2ee.js'
import { ackEvent, chatEvent, errorEvent, msgEvent, type Refusal } from './events.js'

/** Where inbox events go: QoS 1 publishes to dev/<deviceId>/inbox, resolved once queued durably. */
// Failures are logged in send(); callers that do not wait on a send ignore its outcome.
const noop = (): void => {}

export interface InboxPublisher { publish (deviceId: string, payload: string): Promise<void> }

/** Sends one inbox event without waiting; failures are logged by the bridge. */
export type InboxSender = (deviceId: string, payload: string, type: string) => void

/**
 * Delivery by device positions (broker/inbox.ts): a committed message is
 * delivered from history by device positions, so the bridge only announces
 * it. The local profile announces it to the inbox in the same process, and
 * events that are not messages go to each device's event log (event,
 * transient). The cluster announces it to every broker through Redis
 * (cluster/commit-feed.ts; resolved once they are told), and its other
 * events are still published through the MQTT layer.
 */
export interface PositionDelivery {
  committed (m: StoredMessage): void | Promise<void>
  event?: (deviceId: string, payload: string) => void
  transient?: (deviceId: string, payload: string) => void
}

/** An accepted message, with its fan-out: resolved once every inbox copy is queued, rejected if one failed. */
export interface Accepted extends AppendResult { delivered: Promise<void> }

export interface BridgeOptions extends MessageRules {
  maxMessageBytes: number
  /** The most chats one message may be forwarded to at once. */
  maxForwardTargets: number
  /** The disappearing-messages timers a chat may be set to (seconds); 0 turns it off. Default: 24 h, 7 d, 90 d. */
  disappearingTimers?: readonly number[]
}

/** What a `timer` message's body says: seconds, or null for off. */
const timerOf = (body: string): number | null => {
  const s = (JSON.parse(body) as { seconds: number }).seconds
  return s === 0 ? null : s
}

export class Bridge {
  /** Per chat: the checks and the call to the store, one message at a time, in arrival order. */
  #queue = new KeyedQueue()
  /** Per chat: what follows the store, in the same order (so in seq order). */
  #tail = new KeyedQueue()
  #positions: PositionDelivery | undefined
  #e2ee: ((device: Device, chatId: string, env: Envelope) => void) | undefined
  /** The cluster: the chat stream entry, acknowledged only after the fan-out, is the outbox; history keeps none. */
  #streamOutbox = false

  constructor (
    private readonly history: HistoryStore,
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly blocks: BlockService,
    private readonly inbox: InboxPublisher,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly opts: BridgeOptions,
    private readonly media?: MediaService
  ) {
    chats.on('change', (c) => this.announce(c))
  }

  /** From here on messages (and, given an event log, events) are delivered by positions (set before the broker starts). */
  deliverByPositions (positions: PositionDelivery): void { this.#positions = positions }

  /** The end-to-end encryption rules every message passes before it is stored (core/e2ee.ts). */
  checkEncryptionWith (check: (device: Device, chatId: string, env: Envelope) => void): void { this.#e2ee = check }

  /**
   * The cluster: a message comes from a chat stream entry that is
   * acknowledged only once its fan-out is done, and given again (redelivered)
   * otherwise. So history needs no outbox flag: messages are stored settled
   * and the fan-out writes nothing back (a write on the messages collection
   * per message, which FerretDB answers by scanning it).
   */
  streamIsOutbox (): void { this.#streamOutbox = true }

  /**
   * Accepts a chat message from a device. Resolves once it is in history (or
   * was there already: a repeat of a client id resolves with the original
   * seq). Throws a DomainError for a refusal.
   */
  /** Refuses a chat publish from a device whose user is not a member (not_member). */
  checkMember (device: Device, chatId: string): void {
    if (!this.chats.isMember(chatId, device.userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
  }

  async acceptMessage (device: Device, chatId: string, payload: Buffer, opts: { redelivered?: boolean } = {}): Promise<Accepted> {
    this.checkMember(device, chatId)
    const accepted = await this.accept(device, chatId, parseEnvelope(payload, this.opts.maxMessageBytes), opts.redelivered === true)
    accepted.delivered.catch(noop)
    return accepted
  }

  /**
   * `redelivered`: the publish may have been handled before without its
   * fan-out finishing (the chat stream gives it again after a worker died),
   * so a repeat is fanned out again; members drop the same-seq duplicates.
   */
  private accept (device: Device, chatId: string, env: Envelope, redelivered = false, mediaChecked = false): Promise<Accepted> {
    // A plain message neither reads nor changes what the chat's earlier messages make (a reply, edit, delete or
    // reaction reads its target, a timer sets what later messages carry, media is linked after the store).
    const pipelined = env.ref === null && env.media === null && env.type !== 'timer'
    let outcome!: Promise<Accepted>
    const admitted = this.#queue.run(chatId, async () => {
      if (!pipelined) await this.#drained(chatId)
      // Membership is checked again in the queue: a removal may have landed while this waited.
      this.checkMember(device, chatId)
      const now = Date.now()
      let effect: MessageEffect | undefined
      try {
        effect = await this.check(device, chatId, env, now, mediaChecked)
      } catch (err) {
        // A retry gets its original seq, even when the rules would refuse it now (an edit window that has passed).
        // (A retry the rules still allow is recognised by append itself: one store read fewer per message.)
        await this.#drained(chatId)
        outcome = this.repeatOr(err, device, env.id, redelivered)
        return
      }
      const stop = this.metrics.storeLatency.startTimer({ op: 'append' })
      // A message sent while the chat's timer is on disappears that long after it is stored (the timer's own message does not).
      const timer = env.type === 'timer' ? undefined : this.chats.timerOf(chatId)
      // Delivered by positions, a message has nothing to redo after a crash but the linking of its media.
      const appending = this.history.append({
        chatId, senderUser: device.userId, senderDevice: device.id, clientId: env.id,
        type: env.type, body: env.body, clientTs: env.ts, serverTs: now, ref: env.ref, forwarded: env.forwarded, media: env.media,
        ...(timer !== undefined ? { expiresAt: now + timer * 1000 } : {})
      }, effect, { settled: this.#streamOutbox || (this.#positions !== undefined && env.media === null) })
      appending.then(() => { stop() }, noop)
      // What follows the store runs in seq order, on the chat's tail.
      outcome = this.#tail.run(chatId, async () => await this.stored(device, chatId, env, await appending, redelivered))
      // A plain message leaves the queue once its append is issued: the next one's goes with it (one group commit,
      // one insert), not one store round trip later. Anything else holds the chat until it is done.
      if (!pipelined) await outcome.catch(noop)
    })
    return admitted.then(() => outcome)
  }

  /** Resolves once every message of the chat handed to the store so far is done. */
  #drained (chatId: string): Promise<void> { return this.#tail.run(chatId, async () => {}) }

  /** After the store: a repeat acknowledged again, or the new message's effects, fan-out and ack. */
  private async stored (device: Device, chatId: string, env: Envelope, result: AppendResult, redelivered: boolean): Promise<Accepted> {
    if (result.duplicate) return await this.repeated(device, result.message, redelivered)
    if (env.type === 'timer') await this.chats.setTimer(device.userId, chatId, timerOf(env.body), result.message.seq)
    if (env.media !== null) await this.media?.sent(env.media, chatId, result.message.seq)
    // Writing is taking part: from now on the chat's members are the sender's contacts (presence).
    await this.chats.engage(chatId, device.userId)
    this.metrics.accepted.inc()
    const delivered = this.fanOut(result.message)
    if (!this.#positions) this.send(device.id, ackEvent(result.message, false), 'ack').catch(noop)
    return { ...result, delivered }
  }

  /** The rules a new message must pass; its effect on the message it refers to, if any. Throws a DomainError for a refusal. */
  private async check (device: Device, chatId: string, env: Envelope, now: number, mediaChecked: boolean): Promise<MessageEffect | undefined> {
    const other = this.chats.otherMember(chatId, device.userId)
    if (other !== undefined) this.blocks.checkDirect(device.userId, other)
    else if (isDirectChatId(chatId)) throw new DomainError('account_deleted', 'the other account was deleted: this chat takes no more messages', 410)
    this.#e2ee?.(device, chatId, env)
    if (env.type === 'timer') {
      const seconds = timerOf(env.body)
      const allowed = this.opts.disappearingTimers ?? [86_400, 604_800, 7_776_000]
      if (seconds !== null && !allowed.includes(seconds)) throw new DomainError('bad_request', `the disappearing-messages timer is one of ${allowed.join(', ')} seconds, or 0 (off)`)
      // In a group only admins set it; in a direct chat either member.
      if (other === undefined && !await this.chats.isAdmin(chatId, device.userId)) throw new DomainError('not_allowed', 'only group admins set the disappearing-messages timer', 403)
    }
    if (env.media !== null && !mediaChecked) {
      if (!this.media) throw new DomainError('bad_request', 'media is not enabled on this server')
      await this.media.checkSendable(env.media, device.userId, chatId)
    }
    // A reply, edit, delete or reaction may only refer to a message the sender can read.
    const target = env.ref !== null ? await this.chats.readerOf(this.history, device.userId).get(chatId, env.ref) : undefined
    return await effectOf(env, target, device.userId, () => this.chats.isAdmin(chatId, device.userId), now, this.opts)
  }

  /** A refusal (`err`) of a client id this device had sent before is a repeat of it; anything else is thrown. */
  private async repeatOr (err: unknown, device: Device, clientId: string, redelivered: boolean): Promise<Accepted> {
    const earlier = err instanceof DomainError ? await this.history.findByClientId(device.id, clientId) : undefined
    if (earlier === undefined) throw err
    return await this.repeated(device, earlier, redelivered)
  }

  /** A message this device sent before under the same client id: the original seq, acknowledged again. */
  private async repeated (device: Device, earlier: StoredMessage, redelivered: boolean): Promise<Accepted> {
    // A worker may have died between storing a timer message and recording the timer: the chat stream gives it again,
    // before anything later in the chat (recording it again changes nothing). A client's retry of an old one must not.
    if (redelivered && earlier.type === 'timer') await this.chats.setTimer(earlier.senderUser, earlier.chatId, timerOf(earlier.body), earlier.seq)
    // A worker that died after storing a media message may not have linked its media (linking again is harmless).
    if (redelivered && earlier.media) await this.media?.sent(earlier.media, earlier.chatId, earlier.seq)
    if (this.#positions?.transient) this.#positions.transient(device.id, ackEvent(earlier, true))
    else this.send(device.id, ackEvent(earlier, true), 'ack').catch(noop)
    return { message: earlier, duplicate: true, delivered: redelivered ? this.fanOut(earlier) : Promise.resolve() }
  }

  /** An InboxSender for the other publish handlers (receipts, …). */
  readonly sendTo: InboxSender = (deviceId, payload, type) => { this.send(deviceId, payload, type).catch(noop) }

  /**
   * Forwards a message to other chats (at most maxForwardTargets at once): a
   * new message in each, marked forwarded, with the same body. Every target
   * is checked before the first copy is written, so a forward happens whole
   * or not at all; copy n of the forward has the client id `<clientId>.<n>`.
   */
  async forward (device: Device, fromChat: string, seq: number, targets: string[], clientId: string): Promise<Accepted[]> {
    const { source, chats } = await this.checkForward(device, fromChat, seq, targets)
    const results: Accepted[] = []
    for (const [i, chatId] of chats.entries()) results.push(await this.forwardCopy(device, fromChat, seq, chatId, `${clientId}.${i}`, { source }))
    return results
  }

  /** The checks of a forward (throws a DomainError for a refusal): the message forwarded and the distinct target chats. */
  async checkForward (device: Device, fromChat: string, seq: number, targets: string[]): Promise<{ source: StoredMessage, chats: string[] }> {
    const chats = [...new Set(targets)]
    if (chats.length > this.opts.maxForwardTargets) {
      throw new DomainError('forward_limit', `a message can be forwarded to at most ${this.opts.maxForwardTargets} chats at once`, 400)
    }
    const source = await this.forwardable(device, fromChat, seq)
    for (const chatId of chats) {
      if (!this.chats.isMember(chatId, device.userId)) throw new DomainError('not_member', `you are not a member of ${chatId}`, 404)
      const other = this.chats.otherMember(chatId, device.userId)
      if (other !== undefined) this.blocks.checkDirect(device.userId, other)
    }
    return { source, chats }
  }

  /** A message the device may forward: one it can read, with content, not deleted. */
  private async forwardable (device: Device, fromChat: string, seq: number): Promise<StoredMessage> {
    if (!this.chats.isMember(fromChat, device.userId)) throw new DomainError('not_found', 'chat not found', 404)
    const source = await this.chats.readerOf(this.history, device.userId).get(fromChat, seq)
    if (!source || source.deletedAt || !CONTENT_TYPES.includes(source.type)) throw new DomainError('unknown_message', `no message ${seq} to forward in this chat`, 404)
    return source
  }

  /**
   * One copy of a forward, into `chatId` under client id `id` (the source is
   * read again unless given: in the cluster a bridge worker writes the copy
   * an API node checked). `redelivered` as for acceptMessage.
   */
  async forwardCopy (device: Device, fromChat: string, seq: number, chatId: string, id: string, opts: { source?: StoredMessage, redelivered?: boolean } = {}): Promise<Accepted> {
    let source = opts.source
    if (!source) {
      try {
        source = await this.forwardable(device, fromChat, seq)
      } catch (err) {
        // The copy may be stored already (a repeat), and the original deleted since: the copy keeps its seq.
        return await this.repeatOr(err, device, id, opts.redelivered === true)
      }
    }
    // Forwarded media becomes part of the target chat once the copy is stored there (accept links it).
    // The forwarder may send its media: they can read the message that carries it.
    // Ciphertexts are for the source chat's devices: an encrypted message is forwarded by re-encrypting it, on the client.
    if (isEncryptedBody(source.body)) throw new DomainError('bad_request', 'an end-to-end encrypted message cannot be forwarded by the server; send it again, encrypted for the other chat')
    const accepted = await this.accept(device, chatId, { id, type: source.media ? 'media' : 'text', body: source.body, e2ee: null, ts: null, ref: null, forwarded: true, media: source.media ?? null }, opts.redelivered === true, true)
    accepted.delivered.catch(noop)
    return accepted
  }

  /** Tells a device that one of its publishes was refused. */
  refuse (deviceId: string, r: Refusal): void {
    this.metrics.refused.inc({ reason: r.code })
    this.send(deviceId, errorEvent(r), 'error').catch(noop)
  }

  /** Re-publishes the inbox copies of messages whose fan-out a crash interrupted. */
  async redoPendingFanout (): Promise<number> {
    let total = 0
    const tried = new Set<string>()
    for (;;) {
      // A fan-out that fails stays pending (for the next start); never retry it in this loop.
      const batch = (await this.history.pendingFanout(500 + tried.size)).filter((m) => !tried.has(`${m.chatId}\n${m.seq}`))
      if (batch.length === 0) return total
      for (const m of batch) tried.add(`${m.chatId}\n${m.seq}`)
      await Promise.all(batch.map(async (m) => {
        // A crash may have come between storing a media message and linking its media (linking again is harmless).
        if (m.media) await this.media?.sent(m.media, m.chatId, m.seq)
        // The sender may have missed its ack too; a repeat ack is harmless (by positions it is owed it anyway).
        if (!this.#positions) this.send(m.senderDevice, ackEvent(m, false), 'ack').catch(noop)
        return this.fanOut(m)
      }).map((p) => p.catch(noop)))
      total += batch.length
    }
  }

  /**
   * Publishes a message to every member device but the sender's; the
   * publishes are issued synchronously, in seq order. A member who joined
   * after the message got its seq is not sent it, nor an edit, delete or
   * reaction of a message from before they joined.
   */
  private fanOut (m: StoredMessage): Promise<void> {
    if (this.#positions) {
      const announced = this.#positions.committed(m) ?? Promise.resolve()
      if (!m.media || this.#streamOutbox) return announced
      return announced.then(async () => await this.history.markFannedOut(m.chatId, m.seq))
    }
    const payload = msgEvent(m)
    const pairwise = isPairwiseBody(m.body)
    const sends: Array<Promise<void>> = []
    for (const userId of this.chats.memberIds(m.chatId)) {
      if (!this.chats.receivesMessage(userId, m)) continue
      for (const deviceId of this.devices.activeIds(userId)) {
        if (deviceId !== m.senderDevice) sends.push(this.send(deviceId, pairwise ? msgEvent({ ...m, body: bodyFor(m.body, deviceId) }) : payload, 'msg'))
      }
    }
    return Promise.all(sends).then(
      () => this.#streamOutbox ? undefined : this.history.markFannedOut(m.chatId, m.seq),
      (err: unknown) => {
        this.log.error({ err, chat: m.chatId, seq: m.seq }, 'fan-out failed; it is redone later')
        throw err
      }
    )
  }

  private announce (c: ChatChange): void {
    const payload = chatEvent(c)
    for (const userId of c.recipients) {
      for (const deviceId of this.devices.activeIds(userId)) this.send(deviceId, payload, 'chat').catch(noop)
    }
  }

  private send (deviceId: string, payload: string, type: string): Promise<void> {
    this.metrics.delivered.inc({ type })
    if (this.#positions?.event) {
      try {
        this.#positions.event(deviceId, payload)
        return Promise.resolve()
      } catch (err) {
        this.log.error({ err, deviceId, type }, 'storing an inbox event failed')
        return Promise.reject(err)
      }
    }
    return this.inbox.publish(deviceId, payload).catch((err: unknown) => {
      this.log.error({ err, deviceId, type }, 'inbox publish failed')
      throw err
    })
  }
}
