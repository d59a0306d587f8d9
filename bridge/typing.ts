// chat/<chatId>/typing (QoS 0): forwarded to the other members' devices on
// dev/<deviceId>/live at QoS 0, at most once per interval per (user, chat).
// Never stored, never queued: a device that is offline misses it, by design.
import type { ChatService } from '../core/chats.js'
import type { DeviceService } from '../core/devices.js'
import { DomainError } from '../core/errors.js'
import type { Device } from '../store/types.js'

/** Publishes one ephemeral QoS 0 event to dev/<deviceId>/live. */
export type LiveSender = (deviceId: string, payload: string) => void

export class Typing {
  #lastForward = new Map<string, number>()

  constructor (
    private readonly chats: ChatService,
    private readonly devices: DeviceService,
    private readonly live: LiveSender,
    private readonly intervalMs: number,
    private readonly mayReach: (from: string, to: string, chatId: string) => boolean = () => true
  ) {}

  /** Returns true when forwarded, false when throttled. */
  accept (device: Device, chatId: string, payload: Buffer): boolean {
    if (!this.chats.isMember(chatId, device.userId)) throw new DomainError('not_member', 'you are not a member of this chat', 404)
    const state = parseTyping(payload)
    const key = `${device.userId}\n${chatId}`
    const now = Date.now()
    const last = this.#lastForward.get(key)
    if (last !== undefined && now - last < this.intervalMs) return false
    if (this.#lastForward.size > 50_000) {
      for (const [k, t] of this.#lastForward) if (now - t >= this.intervalMs) this.#lastForward.delete(k)
    }
    this.#lastForward.set(key, now)
    const event = JSON.stringify({ type: 'typing', chat: chatId, user: device.userId, state, ts: now })
    for (const userId of this.chats.memberIds(chatId)) {
      if (userId === device.userId || !this.mayReach(device.userId, userId, chatId)) continue
      for (const d of this.devices.activeIds(userId)) this.live(d, event)
    }
    return true
  }
}

function parseTyping (payload: Buffer): 'typing' | 'paused' {
  if (payload.length === 0) return 'typing'
  try {
    const v = JSON.parse(payload.toString('utf8')) as { state?: unknown } | null
    if (v !== null && typeof v === 'object' && (v.state === undefined || v.state === 'typing' || v.state === 'paused')) return v.state ?? 'typing'
  } catch { /* fall through */ }
  throw new DomainError('bad_request', 'a typing publish is empty or {"state":"typing"|"paused"}')
}
