// The storage interfaces. Each engine (SQLite now, MongoDB in the cluster
// profile) implements them in a folder of its own and passes the contract
// suites in store/contract/. Methods are async so that networked engines fit.
import type { ScramCredentials } from '../lib/scram.js'

export interface User { id: string, phone: string, createdAt: number, /** Set while an operator bans the user (mqchat admin user ban). */ bannedAt?: number | null }

export interface Device {
  id: string
  userId: string
  name: string
  tokenHash: string
  /** SCRAM keys of the token (XMPP SASL); absent on devices made before they existed, until the token is next used. */
  scram?: ScramCredentials
  createdAt: number
  revokedAt: number | null
  /** Linked from another device (POST /v1/devices), not created by a phone verification. Absent: false. */
  linked?: boolean
}

export type ChatKind = 'direct' | 'group'
export type Role = 'admin' | 'member'

export interface Chat {
  id: string
  kind: ChatKind
  name: string | null
  createdBy: string
  createdAt: number
  /** End-to-end encryption required: plaintext messages are refused. Absent on chats made before it existed: false. */
  e2ee?: boolean
  /** Disappearing messages: what is sent expires this many seconds after it was stored. Absent or null: off. */
  disappearing?: number | null
}

export interface Member {
  chatId: string
  userId: string
  role: Role
  joinedAt: number
  /**
   * The first seq of the chat this member may read in their current
   * membership: the chat's last seq when they joined, plus one. 0 for
   * members recorded before membership periods were (they read everything).
   */
  fromSeq: number
  /**
   * Has taken part in the chat: created it, wrote in it, or added members.
   * Only then do the other members count as this member's contacts, who may
   * see their presence (a chat opened at someone gives the opener nothing).
   * Members recorded before this existed read as engaged.
   */
  engaged: boolean
}

/**
 * A span of a chat a user may read: one membership, from its first seq to
 * its last (inclusive). The current membership has toSeq = null.
 */
export interface MemberPeriod { fromSeq: number, toSeq: number | null, joinedAt: number, leftAt: number | null }

export interface OneTimeCode { phone: string, codeHash: string, expiresAt: number, attempts: number }

export type LastSeenVisibility = 'everyone' | 'chats' | 'nobody'
/** Who sees a user's profile: anyone who can name them, the users whose numbers they uploaded (their contacts), or nobody. */
export type ProfileVisibility = 'everyone' | 'contacts' | 'nobody'
export interface UserSettings { readReceipts: boolean, lastSeen: LastSeenVisibility, profile?: ProfileVisibility }
export const DEFAULT_SETTINGS: UserSettings = { readReceipts: true, lastSeen: 'chats', profile: 'everyone' }

/** A user's own settings for one chat (the same on all their devices). */
export interface ChatSettings {
  /** No push for this chat until this time (ms since the epoch); null: not muted. */
  mutedUntil: number | null
  /** Kept out of the main chat list (until the user unarchives it). */
  archived?: boolean
  /** When the chat was pinned to the top of the list; null or absent: not pinned. */
  pinnedAt?: number | null
}
export const DEFAULT_CHAT_SETTINGS: ChatSettings = { mutedUntil: null, archived: false, pinnedAt: null }

export type PushTargetType = 'fcm' | 'apns' | 'webpush' | 'unifiedpush'

/** Where a device is woken when it is away (docs/protocol.md, "Push"). */
export interface PushTarget {
  id: string
  deviceId: string
  userId: string
  type: PushTargetType
  /** fcm: the registration token; apns: the device token (hex); webpush, unifiedpush: the endpoint URL. */
  address: string
  /** apns: the app's bundle id (apns-topic), and whether the token is from the sandbox environment. */
  topic?: string
  sandbox?: boolean
  /** webpush, unifiedpush with encryption: the subscription's P-256 public key and auth secret (base64url). */
  p256dh?: string
  auth?: string
  createdAt: number
}

/** How far a member has received and read a chat: every seq up to these. */
export interface Watermark { chatId: string, userId: string, delivered: number, read: number, updatedAt: number }

export interface DirectoryStore {
  createUser (user: User): Promise<void>
  getUser (id: string): Promise<User | undefined>
  getUserByPhone (phone: string): Promise<User | undefined>
  /** Bans a user (`at`) or lifts the ban (null). */
  setBanned (userId: string, at: number | null): Promise<void>
  /** The banned users: warms the in-memory index. */
  bannedUsers (): Promise<string[]>
  /** Users whose number starts with `phonePrefix`, or whose id is `id` (operators' search), at most `limit`. */
  findUsers (query: { phonePrefix?: string, id?: string }, limit: number): Promise<User[]>
  /** The users with these phone numbers (one indexed query, whatever the numbers). */
  usersByPhones (phones: string[]): Promise<User[]>

  addDevice (device: Device): Promise<void>
  /**
   * Adds an active device unless its user has `maxActive` active devices
   * already; false (and nothing written) then. Atomic across processes:
   * racing additions never leave more than `maxActive` active devices.
   */
  addDeviceWithin (device: Device, maxActive: number): Promise<boolean>
  getDevice (id: string): Promise<Device | undefined>
  /** Active (not revoked) devices of a user, oldest first. */
  listDevices (userId: string): Promise<Device[]>
  /** All devices, revoked ones included: used to warm the in-memory auth cache. */
  allDevices (): Promise<Device[]>
  /** Marks a device revoked; false if it does not exist or was revoked already. */
  revokeDevice (id: string, at: number): Promise<boolean>
  /** Stores a device's SCRAM keys (made from its token, which only the device and a sign-in know). */
  setDeviceScram (id: string, scram: ScramCredentials): Promise<void>

  /** Creates the chat with its first members; false (and no change) if the id exists. */
  createChat (chat: Chat, members: Member[]): Promise<boolean>
  getChat (id: string): Promise<Chat | undefined>
  renameChat (id: string, name: string): Promise<void>
  /** Makes a chat require end-to-end encryption (one way: it is never turned off). */
  requireE2ee (id: string): Promise<void>
  /** Sets a chat's disappearing-messages timer (seconds; null: off). */
  setDisappearing (id: string, seconds: number | null): Promise<void>
  /** Chats with a disappearing-messages timer: warms the in-memory index. */
  disappearingChats (): Promise<Array<{ chatId: string, seconds: number }>>
  /** The chats that require end-to-end encryption: used to warm the in-memory set. */
  e2eeChatIds (): Promise<string[]>
  chatsOfUser (userId: string): Promise<Chat[]>
  members (chatId: string): Promise<Member[]>
  /** Adds members not already present; returns those actually added. */
  addMembers (members: Member[]): Promise<Member[]>
  /**
   * Ends a membership: it is kept as a closed period (`end.toSeq` its last
   * readable seq) and the member removed. False if they were not a member.
   */
  removeMember (chatId: string, userId: string, end: { toSeq: number, at: number }): Promise<boolean>
  /** Every membership period of a user in a chat, oldest first: the closed ones, then the current one (toSeq null). */
  periods (chatId: string, userId: string): Promise<MemberPeriod[]>
  setRole (chatId: string, userId: string, role: Role): Promise<boolean>
  /** Marks a member as having taken part in the chat (see Member.engaged); false if not a member. */
  setEngaged (chatId: string, userId: string): Promise<boolean>
  /** Every current (chat, user) membership with its first readable seq and engagement: used to warm the in-memory ACL. */
  allMemberships (): Promise<Array<{ chatId: string, userId: string, fromSeq: number, engaged: boolean }>>

  getSettings (userId: string): Promise<UserSettings | undefined>
  putSettings (userId: string, settings: UserSettings): Promise<void>
  /** Every user's settings that differ from the defaults: used to warm the in-memory cache. */
  allSettings (): Promise<Array<{ userId: string, settings: UserSettings }>>

  getChatSettings (userId: string, chatId: string): Promise<ChatSettings | undefined>
  putChatSettings (userId: string, chatId: string, settings: ChatSettings): Promise<void>
  /** Every chat setting of a user, by chat. */
  chatSettingsOf (userId: string): Promise<Map<string, ChatSettings>>

  /**
   * Stores a push target. Its id stands for its type and address (core/push-targets.ts
   * derives it), so the same address registered again is the same target: on the same
   * device it is kept as it was, and returned; on another device it moves there (an
   * app reinstalled under a new device keeps its token).
   */
  addPushTarget (target: PushTarget): Promise<PushTarget>
  /** A device's push targets, oldest first. */
  pushTargets (deviceId: string): Promise<PushTarget[]>
  /** False if the device has no such target. */
  removePushTarget (deviceId: string, id: string): Promise<boolean>
  /** Removes every target of a device (revocation); returns how many. */
  removePushTargets (deviceId: string): Promise<number>
  /** Devices with at least one push target: used to warm the in-memory index. */
  pushTargetDevices (): Promise<string[]>

  /** Records that `blocker` blocked `blocked`; false if already so. */
  block (blocker: string, blocked: string, at: number): Promise<boolean>
  unblock (blocker: string, blocked: string): Promise<boolean>
  allBlocks (): Promise<Array<{ blocker: string, blocked: string }>>

  putCode (code: OneTimeCode): Promise<void>
  getCode (phone: string): Promise<OneTimeCode | undefined>
  /** Counts one wrong guess and returns the new count. */
  countAttempt (phone: string): Promise<number>
  deleteCode (phone: string): Promise<void>
  /**
   * An erased account (core/account.ts): deletes the user, their phone
   * number's code, their devices (tokens included), settings, chat settings,
   * blocks either way and push targets. Memberships are left by the caller first.
   */
  eraseUser (userId: string, phone: string): Promise<void>
  /** Makes deleted data unrecoverable from the files where the engine keeps old pages (SQLite: its WAL); optional. */
  compact? (): Promise<void>

  close (): Promise<void>
}

export interface NewMessage {
  chatId: string
  senderUser: string
  senderDevice: string
  clientId: string
  type: string
  /** The envelope's body, kept as the JSON text the client sent: opaque to the server. */
  body: string
  clientTs: number | null
  serverTs: number
  /** The seq an operation (reply, edit, delete, reaction) refers to. */
  ref?: number | null
  forwarded?: boolean
  /** The media id of a media message. */
  media?: string | null
  /** When a disappearing message expires (ms since the epoch): from then on it is never read, and it is deleted. */
  expiresAt?: number | null
}

/** Whether a disappearing message has expired by `now` (then it is never read again). */
export const isExpired = (m: { expiresAt?: number | null }, now: number): boolean => m.expiresAt !== undefined && m.expiresAt !== null && m.expiresAt <= now

export interface StoredMessage extends NewMessage {
  seq: number
  /** Set on a message that was edited: its body is the latest text. */
  editedAt?: number | null
  /** Set on a message deleted for everyone: its body is null (a tombstone). */
  deletedAt?: number | null
}

/** What an operation does to the message it refers to, applied in the same transaction as the append. */
export type MessageEffect =
  | { kind: 'edit', seq: number, body: string, at: number }
  | { kind: 'delete', seq: number, at: number }
  | { kind: 'reaction', seq: number, userId: string, emoji: string | null }

export interface Reaction { seq: number, userId: string, emoji: string }

export interface AppendResult { message: StoredMessage, duplicate: boolean }

/** `settled`: nothing to redo after a crash, so the message is stored off the pending fan-out list. */
export interface AppendOptions { settled?: boolean }

export interface HistoryStore {
  /**
   * Stores a message under the chat's next seq, atomically, with the effect
   * of an operation on its target. If the sending device already sent this
   * client id, nothing is written and the original is returned with
   * duplicate = true.
   */
  append (message: NewMessage, effect?: MessageEffect, opts?: AppendOptions): Promise<AppendResult>
  /** The message a device sent under a client id, if any. */
  findByClientId (senderDevice: string, clientId: string): Promise<StoredMessage | undefined>
  /** One message by seq, in its current state (edited, tombstone). */
  get (chatId: string, seq: number): Promise<StoredMessage | undefined>
  /** Reactions on messages fromSeq..toSeq of a chat. */
  reactions (chatId: string, fromSeq: number, toSeq: number): Promise<Reaction[]>
  /** Messages of a chat with seq > afterSeq, oldest first, at most `limit`. */
  after (chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]>
  lastSeq (chatId: string): Promise<number>
  /** The lowest seq still in history (older ones were purged); lastSeq + 1 when none is left. */
  firstSeq (chatId: string): Promise<number>
  /** Deletes messages stored before `serverTs` (retention); seqs are never reused. Returns how many. */
  purgeBefore (serverTs: number): Promise<number>
  /** Deletes messages expired by `now` (and their reactions); returns the chats that had some. */
  purgeExpired (now: number): Promise<string[]>
  /** Messages whose fan-out has not been confirmed (to redo after a crash), oldest first. */
  pendingFanout (limit: number): Promise<StoredMessage[]>
  markFannedOut (chatId: string, seq: number): Promise<void>

  /**
   * Raises a member's watermarks to at least the given values (read implies
   * delivered; they never move backwards). Returns the new watermark, or
   * undefined when nothing changed.
   */
  advanceReceipt (chatId: string, userId: string, delivered: number, read: number, at: number): Promise<Watermark | undefined>
  getReceipt (chatId: string, userId: string): Promise<Watermark | undefined>
  receipts (chatId: string): Promise<Watermark[]>
  /** The distinct senders of a chat's messages with afterSeq < seq <= upToSeq. */
  authorsBetween (chatId: string, afterSeq: number, upToSeq: number): Promise<string[]>
  /**
   * An erased account's part of a chat: its messages become tombstones (no
   * body, no media), its reactions and watermarks go. Returns how many messages.
   */
  eraseSender (chatId: string, userId: string, at: number): Promise<number>
  /** Messages (text, media, replies; not deleted) others sent after a seq, counted up to `cap`: a user's unread count. */
  countUnread (chatId: string, afterSeq: number, userId: string, cap: number): Promise<number>
  close (): Promise<void>
}

export type MediaKind = 'image' | 'audio' | 'video' | 'document'

export interface Media {
  id: string
  sha256: string
  size: number
  contentType: string
  kind: MediaKind
  uploader: string
  status: 'pending' | 'complete'
  createdAt: number
  /** A pending upload's URL stops working at this time; a complete one has null. */
  uploadExpiresAt: number | null
}

/** Where a media id was sent: links recorded before seqs were kept read as seq 1. */
export interface MediaLink { chatId: string, firstSeq: number, lastSeq: number }

/** Media records: what was uploaded, by whom, and in which chats it was sent. */
export interface MediaStore {
  put (media: Media): Promise<void>
  get (id: string): Promise<Media | undefined>
  /** The complete media with this content hash and size, if any (deduplication). */
  findComplete (sha256: string, size: number): Promise<Media | undefined>
  markComplete (id: string): Promise<void>
  delete (id: string): Promise<void>
  /** Users allowed to send a media id: its uploader and those it was deduplicated for. Adding one counts as a use at `at`. */
  addOwner (id: string, userId: string, at: number): Promise<void>
  isOwner (id: string, userId: string): Promise<boolean>
  /** An erased account gives up its media: returns the media no one owns now (to be deleted). */
  disown (userId: string): Promise<string[]>
  /** Records that a media id was sent in a chat as message `seq` (the first and last such seq per chat are kept), a use at `at`. */
  linkChat (id: string, chatId: string, seq: number, at: number): Promise<void>
  /** The chats a media id was sent in, each with the first and last seq that carried it; oldest link first. */
  linksOf (id: string): Promise<MediaLink[]>
  /** Bytes a user started uploading since `since` (the hourly quota). */
  bytesUploadedSince (userId: string, since: number): Promise<number>
  /**
   * Media to delete: last used (uploaded, sent, or deduplicated for someone)
   * before `retainedSince`, or created before `referencedSince` and never sent in a chat.
   */
  expired (retainedSince: number, referencedSince: number): Promise<Media[]>
}

/** A prekey a device published, signed by its Ed25519 key (docs/protocol.md, "End-to-end encryption"). */
/** What a user shows of themselves (docs/protocol.md, "Profiles"). */
export interface Profile {
  name: string | null
  about: string | null
  /** A media id (an image the user uploaded as an avatar). */
  avatar: string | null
  updatedAt: number
}

/** Profiles, and each user's contact list: the phone numbers they uploaded (their address book). */
export interface ProfileStore {
  getProfile (userId: string): Promise<Profile | undefined>
  /** The profiles of those users that have one. */
  profiles (userIds: string[]): Promise<Map<string, Profile>>
  putProfile (userId: string, profile: Profile): Promise<void>
  deleteProfile (userId: string): Promise<void>
  /** Whose current avatar a media id is. */
  avatarOwner (mediaId: string): Promise<string | undefined>
  /** Replaces a user's contact list. */
  setContacts (userId: string, phones: string[]): Promise<void>
  /** Adds numbers to a user's contact list (those already there stay as they are); returns its size. */
  addContacts (userId: string, phones: string[]): Promise<number>
  contacts (userId: string): Promise<string[]>
  hasContact (userId: string, phone: string): Promise<boolean>
  /** Deletes a user's contact list, and a number from everyone's (an erased account). */
  dropContacts (userId: string): Promise<void>
  forgetPhone (phone: string): Promise<void>
}

export interface SignedPrekey { keyId: string, key: string, signature: string }

/** A device's published identity: its Curve25519 identity key and Ed25519 signing key, the first signed by the second. */
export interface DeviceIdentity {
  deviceId: string
  userId: string
  identityKey: string
  signingKey: string
  signature: string
  /** The last-resort prekey, handed out when the one-time pool is empty. */
  fallbackKey: SignedPrekey | null
  updatedAt: number
}

/** What a claim hands out for one device: its identity, and one prekey (one-time, or the fallback when the pool is empty). */
export interface ClaimedPrekey { prekey: SignedPrekey, fallback: boolean }

/** The key directory: identities and prekeys per device. Claims are atomic across processes: a one-time key is handed out once. */
export interface KeyStore {
  /** Stores a device's identity (replacing it); a new identity key also drops its one-time keys (they were made with the old one). */
  putIdentity (identity: DeviceIdentity): Promise<void>
  getIdentity (deviceId: string): Promise<DeviceIdentity | undefined>
  /** Adds one-time keys to a device's pool (a key id already there is kept as it was). Returns the pool's size. */
  addOneTimeKeys (deviceId: string, keys: SignedPrekey[]): Promise<number>
  countOneTimeKeys (deviceId: string): Promise<number>
  /** Takes one of the device's one-time keys, atomically, or the fallback key when the pool is empty; undefined with neither. */
  claim (deviceId: string): Promise<ClaimedPrekey | undefined>
  /** Forgets a device's identity and keys (revocation). */
  dropDevice (deviceId: string): Promise<void>
  /** Every device with a published identity, and its identity key: used to warm the in-memory index. */
  identityKeys (): Promise<Array<{ deviceId: string, identityKey: string }>>
}

/** A device's position in one chat: the highest seq it acknowledged there. */
export interface Position { deviceId: string, chatId: string, seq: number }

/** One entry of a device's event log: an inbox event that is not a chat message (docs/architecture.md § Inbox). */
export interface InboxEvent { n: number, payload: string }

/**
 * Where devices' positions are kept: for each chat, the highest seq the
 * device has acknowledged there (what it is owed is history after it). The
 * local profile keeps them in SQLite (synchronous); the cluster in Redis
 * (cluster/positions.ts, asynchronous). broker/inbox.ts takes either.
 */
export interface PositionStore {
  /** The chats where a device has a recorded position, with it. A chat without one starts at the device's membership start. */
  positions (deviceId: string): Map<string, number> | Promise<Map<string, number>>
  /** Records positions, never lowering one. */
  savePositions (rows: Position[]): void | Promise<void>
  /** Every chat's last seq (the inbox keeps them in memory), as known when it starts. */
  lastSeqs (): Map<string, number>
  /** Forgets a device (revocation). */
  dropDevice (deviceId: string): void | Promise<void>
}

/**
 * A device's log of the inbox events that are not chat messages (receipts,
 * chat changes, refusals), kept until the device acknowledges them. The
 * local profile's; the cluster still queues these events in aedes' session
 * store.
 */
export interface EventLogStore {
  /** Appends an event to a device's log; returns its number (increasing per device). */
  appendEvent (deviceId: string, payload: string): number
  /** Events of a device numbered above `afterN`, oldest first. */
  events (deviceId: string, afterN: number, limit: number): InboxEvent[]
  /** Forgets a device's events numbered up to `upToN` (acknowledged). */
  ackEvents (deviceId: string, upToN: number): void
  /** Drops the oldest events of a device past `keep` (never event 0); returns how many went. */
  trimEvents (deviceId: string, keep: number): number
  /** Puts (or replaces) a device's event 0, which comes before all others: the note that its log overflowed. */
  putFirstEvent (deviceId: string, payload: string): void
  /** Every device with events in its log, with how many. */
  eventCounts (): Map<string, number>
}

/** The local profile's inbox store (SQLite): positions and event logs, synchronous. */
export interface InboxStore extends PositionStore, EventLogStore {
  positions (deviceId: string): Map<string, number>
  savePositions (rows: Position[]): void
  dropDevice (deviceId: string): void
}
