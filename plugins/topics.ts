// The topic grammar of the wire contract (docs/protocol.md).
export const inboxTopic = (deviceId: string): string => `dev/${deviceId}/inbox`
export const liveTopic = (deviceId: string): string => `dev/${deviceId}/live`

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
