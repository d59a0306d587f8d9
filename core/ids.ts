// Identifiers and device tokens. Ids are topic-safe (no '/', '+', '#') and
// device ids fit MQTT 3.1.1's 23-byte client id limit.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

const rand = (bytes: number): string => randomBytes(bytes).toString('hex')

export const newUserId = (): string => `u_${rand(8)}`
export const newDeviceId = (): string => `dv_${rand(8)}`
export const newGroupId = (): string => `g_${rand(8)}`

/** The direct chat of two users has one id, whichever side creates it. */
export function directChatId (a: string, b: string): string {
  const [x, y] = [a, b].sort()
  return `dm_${createHash('sha256').update(`${x}\n${y}`).digest('hex').slice(0, 20)}`
}

/** Whether a chat id is a direct chat's (otherwise it is a group's). */
export const isDirectChatId = (chatId: string): boolean => chatId.startsWith('dm_')

/** A device token: `<deviceId>.<256-bit secret>`. Only its hash is stored. */
export function newToken (deviceId: string): string {
  return `${deviceId}.${randomBytes(32).toString('base64url')}`
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex')

export function deviceIdOfToken (token: string): string | undefined {
  const dot = token.indexOf('.')
  return dot > 0 ? token.slice(0, dot) : undefined
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches (token: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(token), 'hex')
  const b = Buffer.from(storedHash, 'hex')
  return a.length === b.length && timingSafeEqual(a, b)
}

