// The ids the gateway gives messages: `<chatId>:<seq>`, the message id and
// the stanza id of every chat message stanza, and the archive's result id.
// Receipts, markers and archive paging name a message by it.

/** A chat id as a JID local part or a topic level may carry it. */
export const CHAT_ID = /^[A-Za-z0-9_-]{1,64}$/

/** `<chatId>:<seq>`; undefined when the id is not one. */
export function parseMessageRef (id: string | undefined): { chat: string, seq: number } | undefined {
  if (id === undefined) return undefined
  const i = id.lastIndexOf(':')
  if (i <= 0) return undefined
  const chat = id.slice(0, i)
  const seq = Number(id.slice(i + 1))
  return CHAT_ID.test(chat) && Number.isSafeInteger(seq) && seq > 0 ? { chat, seq } : undefined
}
