// The CLI's end-to-end encryption (docs/protocol.md, "End-to-end
// encryption"; docs/security.md): vodozemac's Olm for pairwise messages and
// Megolm for groups, with the state in the profile directory
// (e2ee-state.ts). The server sees ciphertexts, sender keys and addressing,
// never a plaintext.
//
// - Direct chats: each message is encrypted once per recipient device (the
//   other user's devices and the sender's own other devices), over an Olm
//   session started from a claimed prekey.
// - Groups: each sender has a Megolm session per chat. Its key goes pairwise
//   (a `session` message) to every device that lacks it; one ciphertext per
//   message then serves everyone. A device that left the chat's device list
//   (a removed member, a revoked device) makes the sender start a new
//   session, so what follows is unreadable to it. So does age (7 days) and
//   use (1,000 messages).
// - Every plaintext names its chat, type and reference, checked on receipt:
//   the server cannot move a ciphertext to another chat or turn a message
//   into an edit.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { CliError, EXIT } from './errors.js'
import { call } from './http.js'
import { identityText, prekeyText } from '../../core/keys.js'
import { remember, StateFile, type E2eeState } from './e2ee-state.js'
import { vodozemac, type Vodozemac } from './vodozemac.js'

export interface Creds { server: string, token: string, user_id: string, device_id: string }

/** A device's published identity, as the key directory serves it. */
export interface IdentityJson { device_id: string, identity_key: string, signing_key: string, identity_signature: string }
interface PrekeyJson { key_id: string, key: string, signature: string }
interface BundleJson extends IdentityJson { prekey: PrekeyJson | null, fallback: boolean }
interface ChatDevice { user_id: string, device_id: string, identity_key: string }

/** vodozemac holds at most 50 unpublished one-time keys; the server may allow more (GET /v1/keys/count says). */
const CLIENT_ONE_TIME_KEYS = 50
const ROTATE_AFTER_MESSAGES = 1000
const ROTATE_AFTER_MS = 7 * 86_400_000
/** Sends retried after devices_mismatch before giving up (each re-reads the chat's devices). */
const MISMATCH_RETRIES = 3

/** What was inside a ciphertext, bound to where it was sent. */
interface Inner { chat: string, kind: string, ref?: number, body?: unknown, session_id?: string, session_key?: string }

/** A message event or history row as the server gives it. */
export interface MessageJson { chat: string, seq: number, id: string, from: string, device: string, kind: string, ref?: number, edited_at?: number, expires_at?: number, body: unknown }

export type Opened =
  | { ok: true, body: unknown }
  | { ok: false, reason: string }
  /** A group session key: taken in, nothing to show. */
  | { ok: 'session' }

type Encrypted = { sender_key: string, olm: Record<string, { type: number, body: string }> } | { sender_key: string, megolm: { session: string, body: string } }

export const isEncrypted = (body: unknown): body is { e2ee: Record<string, unknown> } =>
  body !== null && typeof body === 'object' && 'e2ee' in body

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64')
/** The key the state's pickles are encrypted under. */
const pickleKey = (s: E2eeState): Uint8Array => Buffer.from(s.pickle_key, 'base64')

export class E2ee {
  readonly #file: StateFile
  /** vodozemac, loaded when something is first encrypted or decrypted. */
  get #v (): Vodozemac { return vodozemac() }

  constructor (private readonly p: Creds, profile: string, private readonly log: (line: string) => void = () => {}) {
    this.#file = new StateFile(profile)
  }

  // ---- state ----

  #fresh = (): E2eeState => {
    const key = randomBytes(32)
    const account = new this.#v.Account()
    try {
      return { v: 1, user_id: this.p.user_id, device_id: this.p.device_id, pickle_key: key.toString('base64'), account: account.pickle(key), published: false, devices: {}, olm: {}, outbound: {}, inbound: {}, plain: {} }
    } finally { account.free() }
  }

  #update<T> (fn: (s: E2eeState, key: Uint8Array) => Promise<T> | T): Promise<T> {
    return this.#file.update(this.#fresh, (s) => s.device_id === this.p.device_id, async (s) => await fn(s, pickleKey(s)), () => this.log('waiting for another mqchat process using this profile\'s keys…'))
  }

  #mine (): E2eeState | undefined {
    const s = this.#file.peek()
    return s?.device_id === this.p.device_id ? s : undefined
  }

  /** This device's identity: its Curve25519 and Ed25519 keys. */
  async identity (): Promise<{ identity_key: string, signing_key: string }> {
    await this.ensurePublished()
    return this.#ownKeys(this.#mine()!)
  }

  /** The account's public keys, read from its pickle. */
  #ownKeys (s: E2eeState): { identity_key: string, signing_key: string } {
    const a = this.#v.Account.from_pickle(s.account, pickleKey(s))
    try { return { identity_key: a.curve25519_key, signing_key: a.ed25519_key } } finally { a.free() }
  }

  // ---- the key directory ----

  /** Publishes this device's identity and keys unless that was done. */
  async ensurePublished (): Promise<void> {
    if (this.#mine()?.published !== true) await this.publish()
  }

  /**
   * Publishes what the directory lacks: the identity (first time), a
   * fallback key, and one-time keys up to the pool size. Returns the pool's size and how many were added.
   */
  async publish (): Promise<{ one_time_keys: number, uploaded: number }> {
    const count = await call<{ one_time_keys: number, max_one_time_keys: number, fallback_key: boolean }>(this.p.server, 'GET', '/v1/keys/count', { token: this.p.token })
    return await this.#update(async (s, key) => {
      const a = this.#v.Account.from_pickle(s.account, key)
      try {
        const dev = this.p.device_id
        const body: Record<string, unknown> = {}
        const sign = (keyId: string, k: string): PrekeyJson => ({ key_id: keyId, key: k, signature: a.sign(prekeyText(dev, { keyId, key: k })) })
        if (!s.published) Object.assign(body, { identity_key: a.curve25519_key, signing_key: a.ed25519_key, identity_signature: a.sign(identityText(dev, a.curve25519_key)) })
        if (!s.published || !count.fallback_key) a.generate_fallback_key()
        const fallback = Object.entries(JSON.parse(a.fallback_key()) as Record<string, string>)[0]
        if (fallback !== undefined) body.fallback_key = sign(...fallback)
        const have = s.published ? count.one_time_keys : 0
        const want = Math.max(0, Math.min(count.max_one_time_keys, CLIENT_ONE_TIME_KEYS) - have)
        if (want > 0) a.generate_one_time_keys(want)
        const oneTime = Object.entries(JSON.parse(a.one_time_keys()) as Record<string, string>).slice(0, want).map(([id, k]) => sign(id, k))
        if (oneTime.length > 0) body.one_time_keys = oneTime
        let total = have
        if (Object.keys(body).length > 0) total = (await call<{ one_time_keys: number }>(this.p.server, 'PUT', '/v1/keys', { token: this.p.token, body })).one_time_keys
        a.mark_keys_as_published()
        s.account = a.pickle(key)
        s.published = true
        return { one_time_keys: total, uploaded: oneTime.length }
      } finally { a.free() }
    })
  }

  /**
   * A new identity for this device (after a suspected compromise, or to
   * start over): the old sessions are forgotten, contacts are told with a
   * `keys` event, and safety numbers change.
   */
  async reset (): Promise<{ identity_key: string }> {
    await this.#update((s) => { Object.assign(s, this.#fresh()) })
    await this.publish()
    return await this.identity()
  }

  /** A user's device identities whose signatures hold, as the directory gives them; each is remembered (trust on first use). */
  async identities (userId: string): Promise<IdentityJson[]> {
    const r = await call<{ devices: IdentityJson[] }>(this.p.server, 'GET', `/v1/keys/users/${encodeURIComponent(userId)}`, { token: this.p.token })
    const good = r.devices.filter((d) => this.#v.verify_ed25519(d.signing_key, identityText(d.device_id, d.identity_key), d.identity_signature))
    await this.#update((s) => { for (const d of good) this.#learn(s, userId, d) })
    return good
  }

  /** Records a device's keys; a change of a known device's keys is kept as when it changed. */
  #learn (s: E2eeState, userId: string, d: IdentityJson): void {
    const known = s.devices[d.device_id]
    if (known === undefined) s.devices[d.device_id] = { user: userId, curve: d.identity_key, ed: d.signing_key, first_seen: Date.now() }
    else if (known.curve !== d.identity_key || known.ed !== d.signing_key) s.devices[d.device_id] = { ...known, curve: d.identity_key, ed: d.signing_key, changed_at: Date.now() }
  }

  /** When a known device's keys last changed, if they did. */
  changedAt (deviceId: string): number | undefined { return this.#mine()?.devices[deviceId]?.changed_at }

  /** A `keys` event: refills the pool when it runs low; forgets a changed device's keys (they are read again when needed). */
  async onKeysEvent (e: Record<string, unknown>): Promise<string | undefined> {
    if (e.reason === 'prekeys_low') {
      const r = await this.publish()
      return `uploaded ${r.uploaded} one-time prekeys (${r.one_time_keys} published)`
    }
    if (typeof e.user === 'string' && (e.reason === 'identity_changed' || e.reason === 'new_device')) {
      await this.identities(e.user)
      return e.reason === 'identity_changed' ? `compare safety numbers: mqchat safety ${e.user}` : undefined
    }
    return undefined
  }

  // ---- sending ----

  /** The devices a message to the chat is encrypted for, from the key directory. */
  async chatDevices (chatId: string): Promise<ChatDevice[]> {
    return (await call<{ devices: ChatDevice[] }>(this.p.server, 'GET', `/v1/keys/chats/${encodeURIComponent(chatId)}`, { token: this.p.token })).devices
  }

  /**
   * Olm sessions with every device in `targets` that lacks one for its
   * current identity key: claims their prekeys (only theirs) and checks each
   * signature. Devices that cannot be reached are left out (the server then
   * says what is missing).
   */
  async #ensureSessions (s: E2eeState, key: Uint8Array, targets: ChatDevice[]): Promise<void> {
    const lacking = new Map<string, string[]>()
    for (const t of targets) {
      if ((s.olm[t.identity_key]?.length ?? 0) > 0) continue
      lacking.set(t.user_id, [...lacking.get(t.user_id) ?? [], t.device_id])
    }
    if (lacking.size === 0) return
    const a = this.#v.Account.from_pickle(s.account, key)
    try {
      for (const [userId, devices] of lacking) {
        for (let i = 0; i < devices.length; i += 100) {
          const r = await call<{ devices: BundleJson[] }>(this.p.server, 'POST', '/v1/keys/claim', { token: this.p.token, body: { user: userId, devices: devices.slice(i, i + 100) } })
          for (const b of r.devices) {
            if (!this.#v.verify_ed25519(b.signing_key, identityText(b.device_id, b.identity_key), b.identity_signature)) throw new CliError(`device ${b.device_id}: its identity is not signed by its own key; not encrypting to it`, EXIT.refused, 'bad_signature')
            if (b.prekey === null) throw new CliError(`device ${b.device_id} of ${userId} has no prekeys left (not even a fallback key): it must come online before it can be written to`, EXIT.refused, 'no_prekeys')
            if (!this.#v.verify_ed25519(b.signing_key, prekeyText(b.device_id, { keyId: b.prekey.key_id, key: b.prekey.key }), b.prekey.signature)) throw new CliError(`device ${b.device_id}: a prekey without its signature; not encrypting to it`, EXIT.refused, 'bad_signature')
            this.#learn(s, userId, b)
            const session = a.create_outbound_session(b.identity_key, b.prekey.key)
            try { s.olm[b.identity_key] = [session.pickle(key), ...s.olm[b.identity_key] ?? []] } finally { session.free() }
          }
        }
      }
    } finally { a.free() }
  }

  /** One Olm ciphertext of `inner` for each target device that has a session (the first, the one last used). */
  #olm (s: E2eeState, key: Uint8Array, targets: ChatDevice[], inner: Inner): Record<string, { type: number, body: string }> {
    const out: Record<string, { type: number, body: string }> = {}
    const text = JSON.stringify(inner)
    for (const t of targets) {
      const pickled = s.olm[t.identity_key]?.[0]
      if (pickled === undefined) continue
      const session = this.#v.Session.from_pickle(pickled, key)
      try {
        const m = session.encrypt(text)
        out[t.device_id] = { type: m.message_type, body: m.body }
        m.free()
        s.olm[t.identity_key]![0] = session.pickle(key)
      } finally { session.free() }
    }
    return out
  }

  #senderKey (s: E2eeState): string { return this.#ownKeys(s).identity_key }

  /**
   * Sends a message encrypted: pairwise in a direct chat, under this
   * device's group session in a group (its key sent first to the devices
   * that lack it). A devices_mismatch (the chat's devices changed under us)
   * is fixed and the message sent again under the same id, so it is stored
   * once. Returns the server's answer, with how many attempts it took.
   */
  async send (chatId: string, kind: 'direct' | 'group', envelope: { id: string, type: string, ref?: number, reply_to?: number, body: unknown }, disappearing?: number | null): Promise<Record<string, unknown> & { attempts: number }> {
    await this.ensurePublished()
    const ref = envelope.ref ?? envelope.reply_to
    const inner: Inner = { chat: chatId, kind: envelope.type, ...(ref !== undefined ? { ref } : {}), body: envelope.body }
    const { body: _plain, ...outer } = envelope
    for (let attempt = 1; ; attempt++) {
      const devices = await this.chatDevices(chatId)
      if (devices.length === 0) throw new CliError('no device in this chat can decrypt yet (the other members have not published keys: they need a client with end-to-end encryption, e.g. mqchat listen once)', EXIT.refused, 'no_devices')
      try {
        const e2ee = kind === 'group' ? await this.#groupEncrypt(chatId, devices, inner) : await this.#update(async (s, key) => {
          await this.#ensureSessions(s, key, devices)
          return { sender_key: this.#senderKey(s), olm: this.#olm(s, key, devices, inner) } satisfies Encrypted
        })
        const r = await call<Record<string, unknown>>(this.p.server, 'POST', `/v1/chats/${encodeURIComponent(chatId)}/messages`, { token: this.p.token, body: { ...outer, e2ee, ts: Date.now() } })
        await this.#update((s) => {
          remember(s, `s:${chatId} ${envelope.id}`, JSON.stringify(envelope.body), typeof disappearing === 'number' ? Date.now() + disappearing * 1000 : undefined)
        })
        return { ...r, attempts: attempt }
      } catch (err) {
        if (!(err instanceof CliError) || err.code !== 'devices_mismatch' || attempt >= MISMATCH_RETRIES) throw err
        this.log(`the chat's devices changed (${err.message}); encrypting again for the current ones`)
      }
    }
  }

  /** The group ciphertext of `inner`; first, this device's group session key to the devices that lack it. */
  async #groupEncrypt (chatId: string, devices: ChatDevice[], inner: Inner): Promise<Encrypted> {
    const now = new Set(devices.map((d) => d.device_id))
    const prepared = await this.#update(async (s, key) => {
      let out = s.outbound[chatId]
      const stale = out !== undefined && (out.shared.some((d) => !now.has(d)) || out.sent >= ROTATE_AFTER_MESSAGES || Date.now() - out.created > ROTATE_AFTER_MS)
      if (out === undefined || stale) {
        const g = new this.#v.OutboundGroupSession()
        try {
          // This device keeps the key too, to read its own messages in history.
          const own = new this.#v.InboundGroupSessionKey(g.session_key)
          s.inbound[`${this.#senderKey(s)} ${g.session_id}`] = { pickle: own.pickle(key), user: this.p.user_id, device: this.p.device_id, chat: chatId }
          own.free()
          out = s.outbound[chatId] = { pickle: g.pickle(key), session_id: g.session_id, shared: [], created: Date.now(), sent: 0 }
        } finally { g.free() }
      }
      const lacking = devices.filter((d) => !out.shared.includes(d.device_id))
      if (lacking.length === 0) return { out, keys: undefined }
      await this.#ensureSessions(s, key, lacking)
      const g = this.#v.OutboundGroupSession.from_pickle(out.pickle, key)
      try {
        const olm = this.#olm(s, key, lacking, { chat: chatId, kind: 'session', session_id: g.session_id, session_key: g.session_key })
        return { out, keys: { sender_key: this.#senderKey(s), olm } satisfies Encrypted }
      } finally { g.free() }
    })
    if (prepared.keys !== undefined && Object.keys(prepared.keys.olm).length > 0) {
      await call(this.p.server, 'POST', `/v1/chats/${encodeURIComponent(chatId)}/messages`, { token: this.p.token, body: { id: `k-${randomUUID()}`, type: 'session', e2ee: prepared.keys, ts: Date.now() } })
      const sent = Object.keys(prepared.keys.olm)
      await this.#update((s) => {
        const o = s.outbound[chatId]
        if (o?.session_id === prepared.out.session_id) o.shared = [...new Set([...o.shared, ...sent])]
      })
    }
    return await this.#update((s, key) => {
      const o = s.outbound[chatId]!
      const g = this.#v.OutboundGroupSession.from_pickle(o.pickle, key)
      try {
        const body = g.encrypt(JSON.stringify(inner))
        o.pickle = g.pickle(key)
        o.sent++
        return { sender_key: this.#senderKey(s), megolm: { session: g.session_id, body } }
      } finally { g.free() }
    })
  }

  // ---- receiving ----

  /**
   * Opens an encrypted message addressed to this device (from an inbox
   * event or history): the plaintext body, a group key taken in, or why it
   * cannot be read. Never throws for a bad ciphertext.
   */
  async open (m: MessageJson): Promise<Opened> {
    const e = (m.body as { e2ee: { sender_key?: string, olm?: Record<string, { type: number, body: string }>, megolm?: { session: string, body: string } } }).e2ee
    if (m.device === this.p.device_id && e.olm !== undefined) {
      // Sent from here: pairwise messages are not encrypted to their own sender.
      if (m.kind === 'session') return { ok: 'session' }
      const sent = this.#mine()?.plain[`s:${m.chat} ${m.id}`]
      return sent !== undefined ? { ok: true, body: JSON.parse(sent) as unknown } : { ok: false, reason: 'sent from this device; its text is no longer kept here' }
    }
    if (typeof e.sender_key !== 'string') return { ok: false, reason: 'no sender key' }
    try {
      // The sender key must be the sending device's, as the directory says (and as this device first saw it).
      if (!await this.#senderIs(m.from, m.device, e.sender_key)) return { ok: false, reason: `the sender key is not ${m.from}'s device ${m.device}` }
      if (e.olm !== undefined) return await this.#openOlm(m, e.sender_key, e.olm[this.p.device_id])
      if (e.megolm !== undefined) return await this.#openMegolm(m, e.sender_key, e.megolm)
      return { ok: false, reason: 'unknown encryption' }
    } catch (err) {
      // Unreachable included: shown now as unread, read again by mqchat history later.
      return { ok: false, reason: (err as Error).message }
    }
  }

  async #senderIs (userId: string, deviceId: string, senderKey: string): Promise<boolean> {
    const s = this.#mine()
    if (s !== undefined && deviceId === this.p.device_id) return senderKey === this.#senderKey(s)
    if (s?.devices[deviceId]?.curve === senderKey) return true
    return (await this.identities(userId)).some((d) => d.device_id === deviceId && d.identity_key === senderKey)
  }

  #check (m: MessageJson, inner: Inner): string | undefined {
    if (inner.chat !== m.chat) return 'it was encrypted for another chat'
    // An edited message carries its edit's ciphertext (history).
    if (typeof m.edited_at === 'number' && inner.kind === 'edit' && inner.ref === m.seq) return undefined
    if (inner.kind !== m.kind) return `it was encrypted as a ${inner.kind}, not a ${m.kind}`
    if ((inner.ref ?? undefined) !== (m.ref ?? undefined)) return 'it was encrypted for another message reference'
    return undefined
  }

  async #openOlm (m: MessageJson, senderKey: string, mine: { type: number, body: string } | undefined): Promise<Opened> {
    if (mine === undefined) return { ok: false, reason: 'not encrypted for this device (sent before it was linked, or it had no keys then)' }
    const cacheKey = `c:${sha256(mine.body)}`
    const text = this.#mine()?.plain[cacheKey] ?? await this.#update(async (s, key) => {
      const cached = s.plain[cacheKey]
      if (cached !== undefined) return cached
      const plaintext = this.#decryptOlm(s, key, senderKey, mine)
      remember(s, cacheKey, plaintext, m.expires_at)
      return plaintext
    })
    const inner = JSON.parse(text) as Inner
    const wrong = this.#check(m, inner)
    if (wrong !== undefined) return { ok: false, reason: wrong }
    if (inner.kind !== 'session') return { ok: true, body: inner.body }
    if (typeof inner.session_key !== 'string') return { ok: false, reason: 'a session message without its key' }
    const sessionKey = inner.session_key
    await this.#update((s, key) => {
      const g = new this.#v.InboundGroupSessionKey(sessionKey)
      try {
        const id = `${senderKey} ${g.session_id}`
        const before = s.inbound[id]
        // A key already held from an earlier index reads more: keep that one.
        if (before === undefined || this.#firstIndex(before.pickle, key) > g.first_known_index) {
          s.inbound[id] = { pickle: g.pickle(key), user: m.from, device: m.device, chat: m.chat }
        }
      } finally { g.free() }
    })
    return { ok: 'session' }
  }

  #firstIndex (pickle: string, key: Uint8Array): number {
    const g = this.#v.InboundGroupSessionKey.from_pickle(pickle, key)
    try { return g.first_known_index } finally { g.free() }
  }

  /** Decrypts an Olm message with a session of the sender's, or starts the session its pre-key message sets up. */
  #decryptOlm (s: E2eeState, key: Uint8Array, senderKey: string, c: { type: number, body: string }): string {
    const sessions = s.olm[senderKey] ?? []
    const wanted = c.type === 0 ? this.#v.prekey_session_id(c.body) : undefined
    let firstError: Error | undefined
    for (let i = 0; i < sessions.length; i++) {
      const session = this.#v.Session.from_pickle(sessions[i]!, key)
      try {
        if (wanted !== undefined && session.session_id !== wanted) continue
        const plaintext = session.decrypt(c.type, c.body)
        // The session that last worked is the one to answer with.
        s.olm[senderKey] = [session.pickle(key), ...sessions.filter((_, j) => j !== i)]
        return plaintext
      } catch (err) {
        firstError ??= err as Error
      } finally { session.free() }
    }
    if (c.type !== 0) throw new Error(`no session with the sender can decrypt it${firstError !== undefined ? ` (${firstError.message})` : ''}`)
    const a = this.#v.Account.from_pickle(s.account, key)
    try {
      const r = a.create_inbound_session(senderKey, c.body)
      const session = r.take_session()
      s.olm[senderKey] = [session.pickle(key), ...sessions]
      session.free()
      // Its one-time key is used up.
      s.account = a.pickle(key)
      const plaintext = r.plaintext
      r.free()
      return plaintext
    } finally { a.free() }
  }

  async #openMegolm (m: MessageJson, senderKey: string, c: { session: string, body: string }): Promise<Opened> {
    const s = this.#mine()
    const held = s?.inbound[`${senderKey} ${c.session}`]
    if (s === undefined || held === undefined) return { ok: false, reason: 'no key for its group session (sent before this device joined or was linked, or the key did not reach it)' }
    if (held.user !== m.from || held.device !== m.device || held.chat !== m.chat) return { ok: false, reason: 'its group session belongs to another sender or chat' }
    const g = this.#v.InboundGroupSessionKey.from_pickle(held.pickle, pickleKey(s))
    try {
      const d = g.decrypt(c.body)
      const inner = JSON.parse(d.plaintext) as Inner
      d.free()
      const wrong = this.#check(m, inner)
      return wrong !== undefined ? { ok: false, reason: wrong } : { ok: true, body: inner.body }
    } finally { g.free() }
  }
}
