// The topic grammar of the wire contract (docs/protocol.md).
export const inboxTopic = (deviceId: string): string => `dev/${deviceId}/inbox`
export const liveTopic = (deviceId: string): string => `dev/${deviceId}/live`

export const presenceTopic = (userId: string): string => `presence/${userId}`

/** The user of a presence/<userId> topic (no wildcards), if it is one. */
export function presenceUserOf (topic: string): string | undefined {
  const parts = topic.split('/')
  return parts.length === 2 && parts[0] === 'presence' && /^[A-Za-z0-9_]+$/.test(parts[1]) ? parts[1] : undefined
}

/** Where consumed device publishes are pointed after the chat layer took them: nobody can subscribe to it. */
export const SINK_TOPIC = '$SYS/mqchat/consumed'

export type ChatTopicKind = 'msg' | 'receipt' | 'typing'

export function parseChatTopic (topic: string): { chatId: string, kind: ChatTopicKind } | undefined {
  const parts = topic.split('/')
  if (parts.length !== 3 || parts[0] !== 'chat' || parts[1] === '') return undefined
  const kind = parts[2]
  if (kind !== 'msg' && kind !== 'receipt' && kind !== 'typing') return undefined
  return { chatId: parts[1], kind }
}
