// The rules of end-to-end encrypted chats (docs/protocol.md, "End-to-end
// encryption"), checked for every message before it is stored:
//   - a chat that requires encryption refuses plaintext content
//     (e2ee_required); a delete, which carries none, is allowed;
//   - a pairwise (Olm) message must be addressed to exactly the devices that
//     can read the chat: every active device with published keys of every
//     member, the sending device excepted (a `session` message, a group key
//     for the devices that lack it, to some of them). Otherwise devices_mismatch, with
//     the lists a client needs to fix its sessions and send again under the
//     same client id (Signal's 409 and 410).
// A group (Megolm) message is one ciphertext for everyone: nothing to match.
import { DomainError } from './errors.js'
import type { ChatService } from './chats.js'
import type { DeviceService } from './devices.js'
import type { KeyDirectory } from './keys.js'
import type { Device } from '../store/types.js'

/** What the policy reads of a message. */
export interface EncryptedContent { type: string, e2ee: { kind: 'olm', senderKey: string, devices: Record<string, unknown> } | { kind: 'megolm', senderKey: string } | null }

/** Types with content the server would read: refused in plaintext where encryption is required. */
const CONTENT = new Set(['text', 'media', 'reply', 'edit', 'reaction'])

export class E2eePolicy {
  constructor (private readonly chats: ChatService, private readonly devices: DeviceService, private readonly keys: KeyDirectory) {}

  check (device: Device, chatId: string, m: EncryptedContent): void {
    if (m.e2ee === null) {
      if (this.chats.isE2ee(chatId) && CONTENT.has(m.type)) throw new DomainError('e2ee_required', 'this chat requires end-to-end encryption: send the message encrypted ("e2ee")', 400)
      return
    }
    // Recipients look the sender's identity up in the directory: a message must name the one its device published.
    if (this.keys.identityKeyOf(device.id) !== m.e2ee.senderKey) {
      throw new DomainError('bad_request', 'e2ee: "sender_key" must be this device\'s published identity key (PUT /v1/keys first)', 400)
    }
    if (m.e2ee.kind !== 'olm') return
    const expected = new Set(this.keys.readableDevices(chatId, device.id).map((d) => d.deviceId))
    const addressed = Object.keys(m.e2ee.devices)
    // A group session key goes to the devices that lack it (new members, new devices): any of the chat's devices will do.
    const missing = m.type === 'session' ? [] : [...expected].filter((d) => !addressed.includes(d))
    const notExpected = addressed.filter((d) => !expected.has(d))
    if (missing.length === 0 && notExpected.length === 0) return
    // Stale: devices that were there but are revoked (drop their sessions); extra: any other (unknown, the sender's own, without keys).
    const stale = notExpected.filter((d) => (this.devices.get(d)?.revokedAt ?? null) !== null)
    const extra = notExpected.filter((d) => !stale.includes(d))
    throw new DomainError('devices_mismatch', 'the message is not addressed to exactly the chat\'s devices: fix the sessions and send it again with the same id', 409, { missing, extra, stale })
  }
}
