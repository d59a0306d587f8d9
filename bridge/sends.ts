// Sends made over HTTP (a message, or a forward into other chats), and how
// they reach the one writer of their chat. In the local profile that is the
// bridge in the same process. In the cluster it is the bridge worker that
// owns the chat's stream partition (cluster/stream-sends.ts), so an API
// node appends to the chat stream as a broker does, and answers once the
// worker has assigned the seq, or says the send is queued.
import type { Device } from '../store/types.js'
import type { Accepted, Bridge } from './index.js'

/** A send in history: its seq, and whether it repeated a client id sent before. */
export interface Sent { chat: string, id: string, seq: number, duplicate: boolean }
/** A send taken durably (in the chat stream) whose seq was not known in time; the `ack` inbox event brings it. */
export interface Queued { chat: string, id: string, queued: true }
export type SendOutcome = Sent | Queued

export interface MessageSends {
  /** A chat message (the envelope as JSON). Throws a DomainError for a refusal. */
  send (device: Device, chatId: string, payload: Buffer): Promise<SendOutcome>
  /** A forward of message `seq` of `fromChat` into each target (copy n under `<clientId>.<n>`); whole or not at all. */
  forward (device: Device, fromChat: string, seq: number, targets: string[], clientId: string): Promise<SendOutcome[]>
}

export const sentOf = (a: Accepted): Sent => ({ chat: a.message.chatId, id: a.message.clientId, seq: a.message.seq, duplicate: a.duplicate })

/** The local profile: the bridge of this process writes. */
export function directSends (bridge: Bridge): MessageSends {
  return {
    send: async (device, chatId, payload) => sentOf(await bridge.acceptMessage(device, chatId, payload)),
    forward: async (device, fromChat, seq, targets, clientId) => (await bridge.forward(device, fromChat, seq, targets, clientId)).map(sentOf)
  }
}
