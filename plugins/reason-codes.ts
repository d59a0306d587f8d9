// MQTT 5 reason codes for mqchat's refusals. A refused chat publish from an
// MQTT 5 device is acknowledged with one of the reason codes MQTT 5 allows on
// PUBACK and PUBREC (§3.4.2.1; 0x95 "packet too large" and 0x96 "message
// rate too high" are DISCONNECT-only), with the mqchat error code and message
// as its Reason String. The inbox `error` event is sent as for 3.1.1: it
// names the envelope's client id, which a PUBACK cannot.

export const NOT_AUTHORIZED = 0x87
export const QUOTA_EXCEEDED = 0x97
export const PAYLOAD_FORMAT_INVALID = 0x99
export const IMPLEMENTATION_SPECIFIC = 0x83
/** DISCONNECT: the device kept publishing while refused. */
export const MESSAGE_RATE_TOO_HIGH = 0x96
/** DISCONNECT: the server cannot go on with this connection now (the device reconnects). */
export const SERVER_BUSY = 0x89
export const UNSPECIFIED_ERROR = 0x80
/** DISCONNECT: nothing arrived within 1.5 × the keepalive. */
export const KEEP_ALIVE_TIMEOUT = 0x8d
/** DISCONNECT: more unreleased QoS 2 publishes than the announced Receive Maximum. */
export const RECEIVE_MAXIMUM_EXCEEDED = 0x93

const BY_CODE: Readonly<Record<string, number>> = {
  // The device may not do this.
  not_member: NOT_AUTHORIZED,
  forbidden_topic: NOT_AUTHORIZED,
  forbidden: NOT_AUTHORIZED,
  blocked: NOT_AUTHORIZED,
  unauthorized: NOT_AUTHORIZED,
  not_sender: NOT_AUTHORIZED,
  not_allowed: NOT_AUTHORIZED,
  // A limit: a rate, a size, a count.
  rate_limited: QUOTA_EXCEEDED,
  too_large: QUOTA_EXCEEDED,
  quota_exceeded: QUOTA_EXCEEDED,
  forward_limit: QUOTA_EXCEEDED,
  group_full: QUOTA_EXCEEDED,
  // The payload is not an envelope mqchat can read.
  bad_request: PAYLOAD_FORMAT_INVALID
}

/** The PUBACK/PUBREC reason code for an mqchat error code; 0x83 (implementation specific) for the rest. */
export function pubackReasonOf (code: string): number {
  return BY_CODE[code] ?? IMPLEMENTATION_SPECIFIC
}
