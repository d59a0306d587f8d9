// End-to-end encrypted messages as stored and delivered (docs/protocol.md,
// "End-to-end encryption"). The stored body of an encrypted message is
// {"e2ee": …}, written by parseEnvelope in a fixed order, so its kind is
// read from its first bytes. A pairwise (Olm) message keeps every recipient
// device's ciphertext in its one history row; each device is given only
// its own.
const ENCRYPTED = '{"e2ee":'
const PAIRWISE = '{"e2ee":{"olm":'

export const isEncryptedBody = (body: string | null | undefined): boolean => body?.startsWith(ENCRYPTED) === true

/** The body `deviceId` may see: for a pairwise message, its own ciphertext alone (none if it was not addressed). */
export function bodyFor (body: string, deviceId: string): string {
  if (!body.startsWith(PAIRWISE)) return body
  const b = JSON.parse(body) as { e2ee: { olm: Record<string, unknown>, sender_key: string } }
  const own = b.e2ee.olm[deviceId]
  return JSON.stringify({ e2ee: { olm: own === undefined ? {} : { [deviceId]: own }, sender_key: b.e2ee.sender_key } })
}

/** Whether a stored body is a pairwise message (its payload differs per device). */
export const isPairwiseBody = (body: string | null | undefined): boolean => body?.startsWith(PAIRWISE) === true
