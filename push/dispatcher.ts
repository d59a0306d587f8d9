// When to push, and sending it without ever holding up a message.
//
// A committed message (not an edit, delete or reaction) is offered for
// every device of every other member that has push targets and no live
// connection (MQTT, or XMPP through its in-process link). Being added to a
// chat is offered the same way. Per device and chat, the first offer in a
// coalescing window is pushed and the rest of the window is not: one
// notification per burst, collapsed per chat on the phone. A muted chat is
// not pushed. Pushes wait in a bounded queue and go out a few at a time; a
// provider's 429 or 5xx is retried with backoff (or its Retry-After), a
// dead target is removed. Nothing here is awaited by the message path: a
// push outage delays, blocks and loses no message (they are in history).
import type { Logger } from 'pino'
import type { ChatChange, ChatService } from '../core/chats.js'
import type { DeviceService } from '../core/devices.js'
import type { PushTargets } from '../core/push-targets.js'
import type { ChatSettings, PushTarget, PushTargetType, StoredMessage } from '../store/types.js'
import type { PushNotice, PushProvider } from './notice.js'

export interface PushMetrics {
  sent: { inc (labels: { provider: string }): void }
  failed: { inc (labels: { provider: string, reason: string }): void }
  dropped: { inc (labels: { reason: string }): void }
}

export interface PushDispatcherOptions {
  coalesceMs: number
  /** Pushes waiting (to be sent, or retried), at most. */
  queueMax: number
  concurrency: number
  maxAttempts: number
  /** The longest wait before a retry, whatever the provider's Retry-After says. */
  maxRetryDelayMs: number
}

export interface PushDeps {
  chats: ChatService
  devices: DeviceService
  targets: PushTargets
  providers: ReadonlyMap<PushTargetType, PushProvider>
  /** Whether a device has no live connection anywhere. */
  isAway: (deviceId: string) => boolean | Promise<boolean>
  chatSettings: (userId: string, chatId: string) => Promise<ChatSettings>
  /** The highest seq the device has received in the chat (for the count); undefined when not known. */
  position: (deviceId: string, userId: string, chatId: string) => number | undefined | Promise<number | undefined>
  /** A group's name (for the encrypted payloads); null for a direct chat. */
  chatName: (chatId: string) => Promise<string | null>
  metrics: PushMetrics
  log: Logger
}

/** Message types that notify: not edits, deletes or reactions (the device learns of them when it syncs). */
const NOTIFYING = new Set(['text', 'media', 'reply'])

/** Messages and chat changes are coalesced apart: being added does not hold back the first message's push. */
const keyOf = (deviceId: string, n: PushNotice): string => `${deviceId}\n${n.chatId}\n${n.kind}`

interface Job { deviceId: string, userId: string, notice: PushNotice, attempt: number }

export class PushDispatcher {
  readonly #lastPushed = new Map<string, number>()
  #queue: Job[] = []
  #waiting = 0
  #running = 0
  #retries = new Set<NodeJS.Timeout>()
  #stopped = false
  readonly #prune: NodeJS.Timeout

  constructor (private readonly d: PushDeps, private readonly o: PushDispatcherOptions) {
    // Windows that have passed are forgotten.
    this.#prune = setInterval(() => {
      const before = Date.now() - this.o.coalesceMs
      for (const [k, at] of this.#lastPushed) if (at <= before) this.#lastPushed.delete(k)
    }, Math.max(1000, this.o.coalesceMs))
    this.#prune.unref()
  }

  /** A message was committed: offer it to the away devices of the other members. */
  committed (m: StoredMessage): void {
    if (this.#stopped || !NOTIFYING.has(m.type)) return
    // Whatever goes wrong here stays here: the message is delivered all the same.
    try { this.offerMessage(m) } catch (err) { this.d.log.error({ err, chat: m.chatId, seq: m.seq }, 'offering a message for push failed') }
  }

  private offerMessage (m: StoredMessage): void {
    for (const userId of this.d.chats.memberIds(m.chatId)) {
      if (userId === m.senderUser || !this.d.chats.receivesMessage(userId, m)) continue
      for (const deviceId of this.d.devices.activeIds(userId)) {
        if (!this.d.targets.mayHave(deviceId)) continue
        this.offer(deviceId, userId, { kind: 'message', chatId: m.chatId, seq: m.seq, count: 1, sender: m.senderUser })
      }
    }
  }

  /** A user was added to a chat (or it was created with them): one push to their away devices. */
  chatChanged (c: ChatChange): void {
    if (this.#stopped || (c.change !== 'member_added' && c.change !== 'created')) return
    try { this.offerChat(c) } catch (err) { this.d.log.error({ err, chat: c.chatId }, 'offering a chat change for push failed') }
  }

  private offerChat (c: ChatChange): void {
    for (const userId of c.users) {
      if (userId === c.by) continue
      for (const deviceId of this.d.devices.activeIds(userId)) {
        if (this.d.targets.mayHave(deviceId)) this.offer(deviceId, userId, { kind: 'chat', chatId: c.chatId, seq: 0, count: 0, sender: c.by })
      }
    }
  }

  private offer (deviceId: string, userId: string, notice: PushNotice): void {
    const key = keyOf(deviceId, notice)
    const now = Date.now()
    const last = this.#lastPushed.get(key)
    if (last !== undefined && now - last < this.o.coalesceMs) return
    if (this.#waiting >= this.o.queueMax) {
      this.d.metrics.dropped.inc({ reason: 'queue_full' })
      return
    }
    this.#lastPushed.set(key, now)
    this.#waiting++
    this.#queue.push({ deviceId, userId, notice, attempt: 1 })
    this.pump()
  }

  private pump (): void {
    while (!this.#stopped && this.#running < this.o.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!
      this.#running++
      this.run(job).catch((err: unknown) => {
        this.d.log.error({ err, deviceId: job.deviceId }, 'a push failed unexpectedly')
        this.#waiting--
      }).finally(() => {
        this.#running--
        this.pump()
      })
    }
  }

  private async run (job: Job): Promise<void> {
    const { deviceId, userId, notice } = job
    // The device may have connected, or the chat been muted, since the offer.
    if (job.attempt === 1) {
      const settings = await this.d.chatSettings(userId, notice.chatId)
      // Not pushed, and the window not taken: the next message may push.
      if (settings.mutedUntil !== null && settings.mutedUntil > Date.now()) { this.skip(job, 'muted'); return }
      if (!(await this.d.isAway(deviceId))) { this.skip(job, 'connected'); return }
      if (notice.kind === 'message') {
        const position = await this.d.position(deviceId, userId, notice.chatId)
        notice.count = position === undefined ? 1 : Math.max(1, notice.seq - position)
      }
    }
    const targets = await this.d.targets.of(deviceId)
    // The chat's name is read only for a payload encrypted for the device (the others never carry it).
    if (notice.chatName === undefined && targets.some((t) => t.p256dh !== undefined)) notice.chatName = await this.d.chatName(notice.chatId)
    let retry: { after?: number } | undefined
    for (const target of targets) {
      const provider = this.d.providers.get(target.type)
      if (provider === undefined) continue
      const outcome = await provider.send(target, notice)
      if (outcome.ok) { this.d.metrics.sent.inc({ provider: target.type }); continue }
      this.d.metrics.failed.inc({ provider: target.type, reason: outcome.reason })
      if (outcome.drop === true) await this.dropTarget(target, outcome.reason)
      else if (outcome.retry === true) {
        this.d.log.debug({ deviceId, provider: target.type, reason: outcome.reason, detail: outcome.detail }, 'push failed; it is retried')
        retry = { after: Math.max(retry?.after ?? 0, outcome.retryAfterMs ?? 0) }
      } else this.d.log.warn({ deviceId, provider: target.type, reason: outcome.reason, detail: outcome.detail }, 'push refused by its provider')
    }
    if (retry === undefined) { this.#waiting--; return }
    if (job.attempt >= this.o.maxAttempts) {
      this.d.log.warn({ deviceId, attempts: job.attempt }, 'push given up after its last try')
      this.done('gave_up')
      return
    }
    // Doubling from 1 s, or the provider's Retry-After if longer; bounded. Only the targets
    // that failed matter, but a repeat to one that took it is collapsed on the phone.
    const delay = Math.min(this.o.maxRetryDelayMs, Math.max(1000 * 2 ** (job.attempt - 1), retry.after ?? 0))
    const timer = setTimeout(() => {
      this.#retries.delete(timer)
      if (this.#stopped) return
      this.#queue.push({ ...job, attempt: job.attempt + 1 })
      this.pump()
    }, delay)
    timer.unref()
    this.#retries.add(timer)
  }

  private skip (job: Job, reason: string): void {
    this.#lastPushed.delete(keyOf(job.deviceId, job.notice))
    this.done(reason)
  }

  private done (reason: string): void {
    this.#waiting--
    this.d.metrics.dropped.inc({ reason })
  }

  private async dropTarget (target: PushTarget, reason: string): Promise<void> {
    this.d.log.info({ deviceId: target.deviceId, provider: target.type, target: target.id, reason }, 'push target removed: its provider says it is gone')
    await this.d.targets.remove(target.deviceId, target.id)
  }

  /** Pushes waiting or being sent (tests, metrics). */
  get pending (): number { return this.#waiting }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#prune)
    for (const t of this.#retries) clearTimeout(t)
    this.#retries.clear()
    this.#queue = []
    for (const p of this.d.providers.values()) await p.close?.()
  }
}
