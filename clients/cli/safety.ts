// Safety numbers: 60 digits two users compare (in person, or over another
// channel) to know that the keys their clients encrypt to are each other's,
// and not keys the server put in between.
//
// Signal's numeric fingerprint, over a user's set of devices instead of one
// account key (each mqchat device has its own identity): for each user, the
// text naming the user and each device's Ed25519 and Curve25519 keys, in
// device order, is hashed with SHA-512 5,200 times (each round hashes the
// last digest and the text again); the first 30 bytes make 6 groups of 5
// digits. The two users' 30 digits are put in a fixed order, so both sides
// see the same number. Any device added, removed or re-keyed changes it.
import { createHash } from 'node:crypto'

export interface DeviceKeys { device_id: string, identity_key: string, signing_key: string }

const ROUNDS = 5200

/** The 30 digits of one user's devices. */
export function userDigits (userId: string, devices: readonly DeviceKeys[]): string {
  const text = Buffer.from(`mqchat-safety-v1\n${userId}\n` +
    [...devices].sort((a, b) => a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : 0)
      .map((d) => `${d.device_id} ${d.signing_key} ${d.identity_key}\n`).join(''))
  let digest = createHash('sha512').update(text).digest()
  for (let i = 1; i < ROUNDS; i++) digest = createHash('sha512').update(digest).update(text).digest()
  let out = ''
  for (let i = 0; i < 30; i += 5) out += String(digest.readUIntBE(i, 5) % 100_000).padStart(5, '0')
  return out
}

/** The 60-digit safety number of two users, the same from either side, in groups of 5. */
export function safetyNumber (a: { userId: string, devices: readonly DeviceKeys[] }, b: { userId: string, devices: readonly DeviceKeys[] }): string {
  const digits = [userDigits(a.userId, a.devices), userDigits(b.userId, b.devices)].sort().join('')
  return digits.match(/.{5}/g)!.join(' ')
}
