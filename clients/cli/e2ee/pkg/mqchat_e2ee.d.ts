/* tslint:disable */
/* eslint-disable */
/**
 * Whether `signature` (base64) is `key`'s (Ed25519, base64) over `message`.
 */
export function verify_ed25519(key: string, message: string, signature: string): boolean;
/**
 * The session a pre-key message (base64) belongs to, so a device can tell a new session from a repeat.
 */
export function prekey_session_id(body: string): string;
/**
 * A device's long-term Olm identity and its one-time and fallback prekeys.
 */
export class Account {
  free(): void;
  static from_pickle(pickle: string, key: Uint8Array): Account;
  /**
   * The unpublished fallback (last-resort) key, as JSON {keyId: base64 public key} (empty once published).
   */
  fallback_key(): string;
  /**
   * The unpublished one-time keys, as JSON {keyId: base64 public key}.
   */
  one_time_keys(): string;
  generate_fallback_key(): void;
  /**
   * Answers another device's first message (a pre-key message, base64): the session and its plaintext.
   */
  create_inbound_session(identity_key: string, body: string): InboundSession;
  generate_one_time_keys(count: number): void;
  mark_keys_as_published(): void;
  /**
   * Starts a session with another device from its identity key and one of its prekeys.
   */
  create_outbound_session(identity_key: string, one_time_key: string): Session;
  constructor();
  /**
   * An Ed25519 signature (base64) of `message`.
   */
  sign(message: string): string;
  pickle(key: Uint8Array): string;
  /**
   * The Ed25519 signing key (base64): it signs the prekeys and the identity key.
   */
  readonly ed25519_key: string;
  /**
   * The Curve25519 identity key (base64): what sessions are made with.
   */
  readonly curve25519_key: string;
}
/**
 * An Olm message: type 0 is a pre-key message (it sets the session up), 1 a normal one.
 */
export class Encrypted {
  private constructor();
  free(): void;
  readonly message_type: number;
  readonly body: string;
}
/**
 * A decrypted group message and its index (a repeated index is a replay).
 */
export class GroupPlaintext {
  private constructor();
  free(): void;
  readonly index: number;
  readonly plaintext: string;
}
/**
 * A member's copy of someone's group sender key.
 */
export class InboundGroupSessionKey {
  free(): void;
  static from_pickle(pickle: string, key: Uint8Array): InboundGroupSessionKey;
  constructor(session_key: string);
  pickle(key: Uint8Array): string;
  decrypt(ciphertext: string): GroupPlaintext;
  readonly session_id: string;
  readonly first_known_index: number;
}
/**
 * What answering a pre-key message yields.
 */
export class InboundSession {
  private constructor();
  free(): void;
  /**
   * The session (once).
   */
  take_session(): Session;
  readonly plaintext: string;
}
/**
 * A group sender key (Megolm), held by its sender: one ciphertext per message for every member.
 */
export class OutboundGroupSession {
  free(): void;
  static from_pickle(pickle: string, key: Uint8Array): OutboundGroupSession;
  constructor();
  pickle(key: Uint8Array): string;
  /**
   * One ciphertext (base64) for every member holding the session key.
   */
  encrypt(plaintext: string): string;
  readonly session_id: string;
  /**
   * The key the members need (sent to each pairwise over Olm), at the current message index.
   */
  readonly session_key: string;
  readonly message_index: number;
}
/**
 * A pairwise Olm session (Double Ratchet) with one other device.
 */
export class Session {
  private constructor();
  free(): void;
  static from_pickle(pickle: string, key: Uint8Array): Session;
  pickle(key: Uint8Array): string;
  decrypt(message_type: number, body: string): string;
  encrypt(plaintext: string): Encrypted;
  readonly session_id: string;
}
