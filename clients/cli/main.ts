#!/usr/bin/env node
// `mqchat`: the reference client and the server launcher.
import { randomUUID } from 'node:crypto'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { CliError, EXIT } from './errors.js'
import { call } from './http.js'
import { listen, formatEvent, reveal, span } from './listen.js'
import { E2ee, isEncrypted, type IdentityJson } from './e2ee.js'
import { safetyNumber } from './safety.js'
import { Names } from './names.js'
import { exportAccount } from './account.js'
import { admin, adminToken } from './admin.js'
import { fetchMedia, uploadFile, type Uploaded } from './media.js'
import { profileName, readProfile, requireDeviceProfile, writeProfile, cliHome } from './profile.js'
import { unsupportedNode } from './runtime.js'

const DEFAULT_SERVER = process.env.MQCHAT_SERVER ?? 'http://127.0.0.1:3000'

const COMMON = `
Common options:
  --profile NAME   CLI profile (default: $MQCHAT_CLI_PROFILE or "default"; files in $MQCHAT_CLI_HOME, default ~/.config/mqchat)
  --json           machine-readable output (one JSON object per line)
  -h, --help       help for the command

Exit codes: 0 ok, 1 unexpected failure, 2 usage error, 3 refused by the server (its error code is printed),
            4 not registered / token wrong or revoked, 5 server unreachable.`

const HELP: Record<string, string> = {
  main: `mqchat — WhatsApp-class messaging on MQTT

Usage: mqchat <command> [options]

Server:
  serve                          start the server (local profile, or a cluster role)
  admin stats|users|user|chat|device   operate a running server (its admin token)
  setup-s3                       create the media bucket; remove an older release's expiry rule (MQCHAT_S3_* settings)
Account:
  register <phone>               ask for a one-time code (phone in +E.164 form)
  verify <phone> <code>          verify the code; saves this device's credentials in the profile
  whoami                         show the profile's user and device (and its XMPP address)
  profile [<user>]               your profile (name, about, avatar), or set it; or see another user's
  contacts sync|find|list        upload your contacts' numbers and see who is registered
  account export|delete          download everything of yours (JSON), or delete the account for good
  devices list|link|revoke       manage the user's devices
Chats:
  chat create|list|show|add|remove|leave|rename|promote|demote|encrypt|archive|pin|timer
  send <chat> <text>             send a text message (chat id, or a user's phone/id for the direct chat); --reply SEQ
  send <chat> --file <path>      send a photo, voice note, video or document (uploaded straight to storage)
  fetch <media-id> -o <path>     download a media file (verified against its SHA-256)
  edit|delete|react <chat> <seq> edit your message, delete it for everyone, react (or --remove)
  forward <chat> <seq> <to…>     forward a message to up to 5 chats
  block|unblock <user>, blocks   block a user (no direct messages either way, no presence)
  listen                         print inbox events as they arrive (persistent MQTT session); sends delivered receipts
  read <chat>                    mark everything in a chat as read (blue ticks for the senders)
  info <chat> <seq>              who has a message delivered and read
  history <chat>                 print a chat's messages
  settings                       show or change privacy settings (read receipts, last seen)
  mute <chat> [--for 8h|1w|always], unmute <chat>   no push notifications for a chat (on all your devices)
  push add|list|remove           where this device is woken when it is away (FCM, APNs, Web Push, UnifiedPush)
  presence <user>                online, or last seen (as the user's privacy allows)
End-to-end encryption (chats created with --e2ee, or turned so with chat encrypt):
  safety <user>                  the safety number to compare with a user (are these really their keys?)
  keys [status|publish|reset]    this device's encryption keys
${COMMON}`,
  admin: `Usage: mqchat admin <command> [--admin-url URL] [--token-file FILE] [--json]
  mqchat admin stats                          connections, messages per second, queues, store sizes
  mqchat admin users find <+prefix | u_id>    users by phone number prefix, or by id
  mqchat admin user show <userId>             a user: number, name, devices, chats
  mqchat admin user ban|unban <userId>        ban (their devices are disconnected and refused) or lift it
  mqchat admin user delete <userId>           erase the account (as mqchat account delete does)
  mqchat admin chat show <chatId>             a chat: kind, members, settings, last seq
  mqchat admin device revoke <deviceId>       sign a device out for good

Talks to the server's admin listener: 127.0.0.1 only, port MQCHAT_ADMIN_PORT (3100), open only when
the server has MQCHAT_ADMIN_TOKEN. The token comes from $MQCHAT_ADMIN_TOKEN or --token-file; the URL
from --admin-url, $MQCHAT_ADMIN_URL, or http://127.0.0.1:3100. Every request is an audit log line.
Exit codes as below; 4 means the token was refused.
${COMMON}`,
  account: `Usage:
  mqchat account export [-o FILE]      everything of yours as one JSON document (default FILE: mqchat-export-<user>.json)
  mqchat account delete                sends a code to your number, to confirm with:
  mqchat account delete --code CODE    deletes the account for good

Export: your profile, settings, devices (no secrets), chats and memberships, contact list, and
the messages you sent that are not end-to-end encrypted; streamed, with a progress bar.
Delete: your devices are signed out and their keys deleted at once, you leave every group (an
admin is handed over) and your direct chats are closed (the other side is told), the messages you
sent become "deleted" (at once, and again a minute later for any on their way), and your profile,
avatar, contact list and media only you had are deleted. This profile is removed from this computer.
${COMMON}`,
  profile: `Usage: mqchat profile [--name NAME] [--about TEXT] [--avatar IMAGE | --no-avatar]
       mqchat profile <user>        (phone +… or user id u_…)

Without options, shows your profile; with them, changes it (an empty --name or --about clears it;
--avatar uploads a JPEG, PNG or WebP image). With a user, shows their profile as they let you see
it (mqchat settings --show-profile). Names show in chat list, history, listen, info and presence;
where a user's name is hidden, their number shows if it is on your contact list, else their id.
${COMMON}`,
  contacts: `Usage:
  mqchat contacts sync [--file FILE] [phone…]   upload your whole contact list (once an hour): who is registered
  mqchat contacts find <phone…>                 look up a few numbers (at most 10, from a daily allowance); they join the list
  mqchat contacts list                          the numbers you uploaded

FILE has one number per line in +E.164 form (blank lines and # comments are skipped). Your contact
list decides who sees your profile when it is set to contacts, and a number on it names its user
for free in chat create, chat add and block. The server keeps the numbers until you upload a new
list or delete your account; docs/protocol.md ("Contacts") says why it takes numbers, not hashes.
${COMMON}`,
  safety: `Usage: mqchat safety <user>   (phone +… or user id u_…)

Shows the 60-digit safety number of you and the user, computed from both
users' device keys, and each device's Ed25519 key. Compare it with them in
person or over a channel you trust: the same number on both sides means the
keys your clients encrypt to are theirs, not keys the server slipped in. It
changes when either of you links, revokes or resets a device; a device whose
key changed since this device first saw it is marked.
${COMMON}`,
  keys: `Usage:
  mqchat keys [status]   this device's identity and signing keys, and its one-time prekeys left on the server
  mqchat keys publish    upload one-time prekeys up to the server's pool size (listen does it when asked)
  mqchat keys reset      a new identity for this device: old sessions end, contacts are told, safety numbers change

The keys and sessions are kept in <profile>.e2ee.json beside the profile (mode 0600).
Devices publish their keys when they are verified or linked, and when they listen.
${COMMON}`,
  serve: `Usage: mqchat serve [--profile local|cluster] [--role all|broker|bridge|api] [--node-id ID]
                    [--data-dir DIR] [--host ADDR] [--mqtt-port N] [--ws-port N] [--http-port N]
                    [--mqtt-access chat|open]

Starts the local profile (the default): MQTT over TCP (default 1883) and WebSocket (8083, /mqtt),
HTTP API (3000), state under ./data. With a certificate (MQCHAT_TLS_CERT and MQCHAT_TLS_KEY, PEM
files) also MQTT over TLS (8883), MQTT over secure WebSocket (8084) and HTTPS (3443); SIGHUP reads
the certificate files again without dropping connections. Plaintext listeners on an address other
than loopback are warned about at start-up.

--profile cluster runs on Redis (MQCHAT_REDIS_URL), MongoDB (MQCHAT_MONGO_URL) and, for media,
S3 (MQCHAT_MEDIA_BACKEND=s3). --role picks the parts this process runs: broker (MQTT listeners),
bridge (a chat stream worker), api (HTTP), or all; run as many brokers and bridge workers as you
like, each with its own stable --node-id.

MQCHAT_XMPP_ENABLED=true adds the XMPP client listeners (5222 with STARTTLS, and XMPP over
WebSocket on 5280 at /xmpp-websocket; certificate MQCHAT_XMPP_TLS_CERT and MQCHAT_XMPP_TLS_KEY,
or else the server's MQCHAT_TLS_CERT and MQCHAT_TLS_KEY):
XMPP clients sign in as <userId>@<domain> with a device token (mqchat whoami shows the address).

--mqtt-access open (development and conformance testing only) makes the broker a plain MQTT
broker: anonymous clients, any topic, no chat over MQTT. It needs --host 127.0.0.1 (or
MQCHAT_OPEN_ACCESS_FORCE=true) and the local profile.

Every option also has an MQCHAT_* environment variable (see README); flags win.
Port 0 picks a free port; the ports in use are logged and written to <data-dir>/ports.json.
The log is readable lines on a terminal and JSON lines elsewhere (MQCHAT_LOG_FORMAT=json|pretty
to choose; MQCHAT_LOG_LEVEL=debug|info|warn|error). SIGTERM or SIGINT shuts down gracefully;
SIGHUP reloads the TLS certificate; SIGUSR2 logs counters (cluster: MongoDB and Redis commands sent, by name).
Needs Node 22.13 or later (22 or 24 LTS); npm start uses the Node 24 that npm install pinned.`,
  'setup-s3': `Usage: mqchat setup-s3

Creates the S3 media bucket if needed. Media unused for MQCHAT_MEDIA_RETENTION_DAYS (default
30), and uploads never sent, are deleted by the server's own job, so the bucket needs no expiry
rule; run this again after upgrading from a release that set one (mqchat-media-retention, which
expired objects by age and so deleted media sent again): it removes that rule and leaves any
other. Reads the same MQCHAT_S3_* settings as the server.`,
  register: `Usage: mqchat register <phone> [--server URL]

Asks the server to send a one-time code to <phone> (+E.164, e.g. +15551234567). While a code
sent earlier is still valid, no new one is sent: use that one. At most 3 codes an hour go to
one number by default. The server URL (default $MQCHAT_SERVER or http://127.0.0.1:3000) is
remembered in the profile.
${COMMON}`,
  verify: `Usage: mqchat verify <phone> <code> [--name DEVICE_NAME] [--server URL]

Verifies the code and saves the new device's id and token in the profile (mode 0600). The new
device is the user's primary device: verifying a number again revokes its earlier devices.
${COMMON}`,
  whoami: `Usage: mqchat whoami\n\nShows the user id, phone and device id of the profile, and the device's XMPP\naddress when the server runs the XMPP gateway (sign in with it and the\ndevice token).\n${COMMON}`,
  devices: `Usage:
  mqchat devices list
  mqchat devices link [--name NAME] [--save-as PROFILE]   link a new device (from the primary device); prints its token, or saves it as a profile
  mqchat devices revoke <deviceId>                         revoke a device: its connection closes, its token stops working
                                                           (the primary device may revoke any, a linked device only itself)
${COMMON}`,
  push: `Usage:
  mqchat push add unifiedpush <endpoint> [--p256dh KEY --auth SECRET]   an endpoint from a UnifiedPush distributor (ntfy, …)
  mqchat push add webpush <endpoint> --p256dh KEY --auth SECRET         a browser's push subscription
  mqchat push add fcm <registration-token>
  mqchat push add apns <device-token> --topic BUNDLE_ID [--sandbox]
  mqchat push list
  mqchat push remove <target-id>

Keys are base64url and may start with "-": give them as --p256dh=KEY --auth=SECRET.
Registers where this device is woken when it is away (it then connects and
gets what it is owed). A push carries the chat, the newest seq and a count,
never the message; docs/protocol.md ("Push") says what each provider sees.
GET /v1/info (mqchat whoami --json) names the providers the server uses.
${COMMON}`,
  mute: `Usage: mqchat mute <chat> [--for 8h|1w|always]   (default: always)
       mqchat unmute <chat>

No push notifications for the chat until then, on all your devices. Messages
still arrive as usual.
${COMMON}`,
  unmute: `Usage: mqchat unmute <chat>

Push notifications for the chat again (see mqchat mute).
${COMMON}`,
  chat: `Usage:
  mqchat chat create <user> [--e2ee]             direct chat with a user (phone +… or user id u_…)
  mqchat chat create --group NAME [user…] [--e2ee]  group; you are its admin
  mqchat chat encrypt <chat>                     require end-to-end encryption from now on (one way; group admins)
  mqchat chat timer <chat> off|24h|7d|90d        disappearing messages: what is sent from now on is deleted after that
                                                 (group admins; either member of a direct chat)
  mqchat chat list [--archived]                  pinned first, with unread counts; archived chats with --archived
  mqchat chat archive|unarchive <chat>           move a chat out of the list (or back), on all your devices
  mqchat chat pin|unpin <chat>                   keep a chat at the top (at most 3), on all your devices
  mqchat chat show <chat>
  mqchat chat add <chat> <user…>                 (admins)
  mqchat chat remove <chat> <user>               (admins)
  mqchat chat leave <chat>
  mqchat chat rename <chat> <name>               (admins)
  mqchat chat promote|demote <chat> <user>       (admins)

--e2ee: the chat requires end-to-end encryption. The server refuses plaintext in it; send, listen
and history encrypt and decrypt on this device (Olm pairwise in a direct chat, a Megolm group key in
a group), and the server keeps only ciphertexts. Stock MQTT clients and XMPP cannot read such chats.
${COMMON}`,
  send: `Usage: mqchat send <chat> <text> [--id CLIENT_MESSAGE_ID] [--reply SEQ]
       mqchat send <chat> --file <path> [caption…]

Sends a text message (a reply to message SEQ with --reply) and prints its seq once it is stored.
With --file: hashes the file, asks for an upload slot, uploads it straight to storage (skipped when
the same bytes are stored already) and sends a media message; the other text is the caption. <chat> is a chat id, or a user
(phone +… or id u_…) for the direct chat with them. --id makes a retry idempotent: the same
id yields the same seq and no second message.
In an end-to-end encrypted chat the text is encrypted on this device for each device of the chat
(and a changed device list is fixed and sent again under the same id); files and reactions are not
available there yet.
${COMMON}`,
  listen: `Usage: mqchat listen [--count N] [--timeout SECONDS] [--mqtt URL] [--mqtt-version 4|5] [--no-receipts]

Connects this device's persistent MQTT session (clean=false) and prints its inbox events as
they arrive (and typing, from its live topic); events queued while it was away arrive first.
Reconnects with backoff.
For the messages it prints it sends "delivered" receipts (the senders' ✓✓), unless --no-receipts.
Encrypted messages are decrypted here (one that cannot be is shown as "[could not decrypt: why]"),
and this device's keys are published first; when the server says its prekeys run low, it uploads more.
--count N exits after N events; --timeout exits after that many seconds.
--mqtt-version 5 speaks MQTT 5 (default 4, MQTT 3.1.1): the session is kept 30 days after
a disconnect, the inbox topic is aliased, and the server's reason codes are shown (why it
refused or closed the connection).
${COMMON}`,
  read: `Usage: mqchat read <chat>

Marks the chat read up to its latest message: the senders see blue ticks (unless read receipts
are off), and your other devices clear their unread state. <chat> may be a user for the direct chat.
${COMMON}`,
  info: `Usage: mqchat info <chat> <seq>

Message info: which members have the message delivered, and which have read it.
${COMMON}`,
  settings: `Usage: mqchat settings [--read-receipts on|off] [--last-seen everyone|chats|nobody]
                       [--show-profile everyone|contacts|nobody]

Without options, shows the settings. Read receipts off: you neither send nor see read receipts
(delivered receipts still flow). Last seen: who sees whether and when you were online: chats
(the default: users sharing a chat you have written in, created or opened),
everyone, or nobody (they see online and offline, never when). Profile: who sees your name,
about and avatar: everyone (the default), contacts (the numbers you uploaded with mqchat
contacts sync), or nobody.
${COMMON}`,
  fetch: `Usage: mqchat fetch <media-id> [-o PATH]

Downloads a media file you may see (default PATH: the media id) and verifies its SHA-256.
${COMMON}`,
  edit: `Usage: mqchat edit <chat> <seq> <text>

Edits your message (within 15 minutes of sending).
${COMMON}`,
  delete: `Usage: mqchat delete <chat> <seq>

Deletes a message for everyone (yours within 48 hours; any message if you are a group admin).
${COMMON}`,
  react: `Usage: mqchat react <chat> <seq> <emoji> | mqchat react <chat> <seq> --remove

Reacts to a message (one reaction per user; a new one replaces yours).
${COMMON}`,
  forward: `Usage: mqchat forward <chat> <seq> <toChat…>

Forwards a message to other chats you are in (at most 5 at once).
${COMMON}`,
  block: `Usage: mqchat block <user>

Blocks a user (phone or id): no direct messages either way, and they no longer see your presence.
${COMMON}`,
  unblock: `Usage: mqchat unblock <user-id>
${COMMON}`,
  presence: `Usage: mqchat presence <user-id>

Shows whether a user is online, or when they were last seen (as their privacy setting allows).
${COMMON}`,
  blocks: `Usage: mqchat blocks

Lists the users you have blocked.
${COMMON}`,
  history: `Usage: mqchat history <chat> [--after SEQ] [--limit N]

Prints a chat's messages with seq > SEQ (default 0), oldest first, up to N (default 100).
Encrypted messages are decrypted on this device; those it cannot read (sent before it was linked,
say) are shown as "[could not decrypt: why]".
${COMMON}`
}

const COMMON_OPTIONS = {
  profile: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  server: { type: 'string' }
} as const

function parse<O extends NonNullable<ParseArgsConfig['options']>> (args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage)
  }
}

function out (json: boolean, value: unknown, human: string): void {
  process.stdout.write((json ? JSON.stringify(value) : human) + '\n')
}

function need (positionals: string[], n: number, cmd: string): void {
  if (positionals.length < n) throw new CliError(`missing arguments\n\n${HELP[cmd]}`, EXIT.usage)
}

async function directChatFor (p: { server: string, token: string }, ref: string): Promise<string> {
  return (await resolveChat(p, ref)).id
}

type DeviceProfile = ReturnType<typeof requireDeviceProfile>

/**
 * The chat a command names (a chat id, or a user, phone +… or id u_…, for
 * the direct chat with them), whether it requires end-to-end encryption,
 * and its disappearing-messages timer.
 */
async function resolveChat (p: { server: string, token: string }, ref: string): Promise<{ id: string, kind: 'direct' | 'group', e2ee: boolean, disappearing: number | null, members: string[] }> {
  type Chat = { chat_id: string, kind: 'direct' | 'group', e2ee?: string, disappearing?: number | null, members: Array<{ user_id: string }> }
  const c = /^(\+|u_)/.test(ref)
    ? await call<Chat>(p.server, 'POST', '/v1/chats', { token: p.token, body: { kind: 'direct', user: ref } })
    : await call<Chat>(p.server, 'GET', `/v1/chats/${encodeURIComponent(ref)}`, { token: p.token })
  return { id: c.chat_id, kind: c.kind, e2ee: c.e2ee === 'required', disappearing: c.disappearing ?? null, members: c.members.map((m) => m.user_id) }
}

/** A new device publishes its encryption keys at once, so encrypted chats can reach it; a failure only warns (listen publishes too). */
async function publishKeys (p: DeviceProfile, profile: string): Promise<void> {
  await new E2ee(p, profile).publish().catch((err: Error) => {
    process.stderr.write(`mqchat: could not publish this device's encryption keys yet (${err.message}); mqchat listen or mqchat keys publish will\n`)
  })
}

/** The profile's end-to-end encryption (vodozemac loads when it first encrypts or decrypts). */
function e2eeOf (p: DeviceProfile, profile: string, json: boolean): E2ee {
  return new E2ee(p, profile, (line) => { if (!json) process.stderr.write(line + '\n') })
}

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(HELP.main + '\n')
    return cmd ? EXIT.ok : EXIT.usage
  }
  if (cmd === '--version') { process.stdout.write('0.1.0\n'); return EXIT.ok }
  if (!(cmd in HELP) || cmd === 'main') throw new CliError(`unknown command "${cmd}"\n\n${HELP.main}`, EXIT.usage)
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP[cmd] + '\n')
    return EXIT.ok
  }

  switch (cmd) {
    case 'serve': {
      const { values } = parse(rest, {
        profile: { type: 'string' }, role: { type: 'string' }, 'node-id': { type: 'string' },
        'data-dir': { type: 'string' }, host: { type: 'string' }, 'mqtt-port': { type: 'string' }, 'ws-port': { type: 'string' }, 'http-port': { type: 'string' },
        'mqtt-access': { type: 'string' }
      })
      const unsupported = unsupportedNode()
      if (unsupported !== undefined) { process.stderr.write(`mqchat: ${unsupported}\n`); return EXIT.failure }
      const { serve } = await import('./serve.js')
      return serve(values as unknown as Record<string, string | undefined>)
    }
    case 'setup-s3': {
      const { values } = parse(rest, {})
      const { loadConfig, ConfigError } = await import('../../lib/config.js')
      let cfg
      try {
        cfg = loadConfig(process.env)
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage)
        throw err
      }
      const { S3Backend } = await import('../../media/s3-backend.js')
      const s3 = new S3Backend({ endpoint: cfg.s3Endpoint, region: cfg.s3Region, bucket: cfg.s3Bucket, forcePathStyle: cfg.s3ForcePathStyle, accessKeyId: cfg.s3AccessKeyId, secretAccessKey: cfg.s3SecretAccessKey })
      let removed = false
      try {
        await s3.ensureBucket()
        removed = await s3.removeAgeExpiry()
      } catch (err) {
        throw new CliError(`S3 setup failed: ${(err as Error).message}`, EXIT.unreachable)
      }
      out(values.json, { bucket: cfg.s3Bucket, retention_days: cfg.mediaRetentionDays, removed_age_rule: removed },
        `bucket ${cfg.s3Bucket} ready${removed ? ' (removed the age rule of an older release)' : ''}; the server deletes media unused for ${cfg.mediaRetentionDays} days`)
      return EXIT.ok
    }
    case 'register': {
      const { values, positionals } = parse(rest, {})
      need(positionals, 1, cmd)
      const name = profileName(values.profile)
      const server = values.server ?? readProfile(name)?.server ?? DEFAULT_SERVER
      const phone = positionals[0]
      const r = await call<{ expires_in: number, sent: boolean, code?: string }>(server, 'POST', '/v1/register/code', { body: { phone } })
      writeProfile(name, { ...readProfile(name), server, phone })
      out(values.json, r, (r.sent
        ? `a code was sent to ${phone} (valid ${r.expires_in} s)`
        : `a code sent to ${phone} earlier is still valid for ${r.expires_in} s (no new one until then)`) +
        `; next: mqchat verify ${phone} <code>` + (r.code ? `\ndevelopment code: ${r.code}` : ''))
      return EXIT.ok
    }
    case 'verify': {
      const { values, positionals } = parse(rest, { name: { type: 'string' } })
      need(positionals, 2, cmd)
      const name = profileName(values.profile)
      const server = values.server ?? readProfile(name)?.server ?? DEFAULT_SERVER
      const [phone, code] = positionals
      const r = await call<{ user_id: string, device_id: string, token: string, new_user: boolean }>(server, 'POST', '/v1/register/verify', { body: { phone, code, device_name: values.name ?? 'cli' } })
      const file = writeProfile(name, { server, phone, user_id: r.user_id, device_id: r.device_id, token: r.token })
      await publishKeys({ server, user_id: r.user_id, device_id: r.device_id, token: r.token }, name)
      out(values.json, { user_id: r.user_id, device_id: r.device_id, new_user: r.new_user, profile: file },
        `${r.new_user ? 'registered' : 'signed in'}: user ${r.user_id}, device ${r.device_id} (saved in ${file})`)
      return EXIT.ok
    }
    case 'whoami': {
      const { values } = parse(rest, {})
      const p = requireDeviceProfile(profileName(values.profile))
      const me = await call<{ user_id: string, phone: string, device_id: string }>(p.server, 'GET', '/v1/me', { token: p.token })
      const info = await call<{ xmpp?: { domain: string, port: number } }>(p.server, 'GET', '/v1/info', {})
      // The device's XMPP address, when the server runs the XMPP gateway: any XMPP client signs in with it and the device token.
      const xmpp = info.xmpp ? { xmpp_jid: `${me.user_id}@${info.xmpp.domain}/${me.device_id}`, xmpp_port: info.xmpp.port } : {}
      out(values.json, { ...me, server: p.server, ...xmpp }, `user ${me.user_id} (${me.phone}), device ${me.device_id}, server ${p.server}` +
        (info.xmpp ? `\nXMPP: ${me.user_id}@${info.xmpp.domain}/${me.device_id} on port ${info.xmpp.port} (password: this device's token, in the profile)` : ''))
      return EXIT.ok
    }
    case 'devices': {
      const { values, positionals } = parse(rest, { name: { type: 'string' }, 'save-as': { type: 'string' } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const sub = positionals[0]
      if (sub === 'list') {
        const r = await call<{ devices: Array<{ device_id: string, name: string, created_at: number, kind?: string }> }>(p.server, 'GET', '/v1/devices', { token: p.token })
        if (values.json) for (const d of r.devices) out(true, d, '')
        else for (const d of r.devices) process.stdout.write(`${d.device_id}  ${d.name}  ${d.kind ?? 'primary'}${d.device_id === p.device_id ? '  (this device)' : ''}  ${new Date(d.created_at).toISOString()}\n`)
        return EXIT.ok
      }
      if (sub === 'link') {
        const r = await call<{ device_id: string, name: string, token: string }>(p.server, 'POST', '/v1/devices', { token: p.token, body: { name: values.name ?? 'linked device' } })
        if (values['save-as']) {
          const file = writeProfile(values['save-as'], { server: p.server, phone: p.phone, user_id: p.user_id, device_id: r.device_id, token: r.token })
          await publishKeys({ server: p.server, user_id: p.user_id, device_id: r.device_id, token: r.token }, values['save-as'])
          out(values.json, { device_id: r.device_id, profile: file }, `linked device ${r.device_id}, saved as profile ${values['save-as']} (${file})`)
        } else {
          out(values.json, r, `linked device ${r.device_id}\ntoken (shown once): ${r.token}`)
        }
        return EXIT.ok
      }
      if (sub === 'revoke') {
        need(positionals, 2, cmd)
        await call(p.server, 'DELETE', `/v1/devices/${encodeURIComponent(positionals[1])}`, { token: p.token })
        out(values.json, { revoked: positionals[1] }, `revoked ${positionals[1]}`)
        return EXIT.ok
      }
      throw new CliError(`unknown devices command "${sub}"\n\n${HELP.devices}`, EXIT.usage)
    }
    case 'chat': return chatCommand(rest)
    case 'send':
    case 'edit':
    case 'delete':
    case 'react': {
      const { values, positionals } = parse(rest, { id: { type: 'string' }, reply: { type: 'string' }, remove: { type: 'boolean', default: false }, file: { type: 'string' } })
      const p = requireDeviceProfile(profileName(values.profile))
      const seqArg = (v: string | undefined): number => {
        const n = Number(v)
        if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`a message seq is a positive whole number, got "${String(v)}"`, EXIT.usage)
        return n
      }
      const name = profileName(values.profile)
      need(positionals, 1, cmd)
      const e2ee = e2eeOf(p, name, values.json)
      const chat = await resolveChat(p, positionals[0])
      let envelope: Record<string, unknown>
      let uploaded: Uploaded | undefined
      if (cmd === 'send' && values.file !== undefined) {
        // The upload would be readable by the server: files in encrypted chats wait for client-side file encryption.
        if (chat.e2ee) throw new CliError('this chat is end-to-end encrypted, and this client cannot encrypt files yet: nothing was uploaded', EXIT.usage)
        uploaded = await uploadFile(p.server, p.token, chat.id, values.file)
        const caption = positionals.slice(1).join(' ')
        envelope = { type: 'media', media: uploaded.mediaId, body: { name: uploaded.name, size: uploaded.size, content_type: uploaded.contentType, ...(caption ? { caption } : {}) } }
      } else if (cmd === 'send') {
        need(positionals, 2, cmd)
        envelope = values.reply !== undefined
          ? { type: 'reply', reply_to: seqArg(values.reply), body: positionals.slice(1).join(' ') }
          : { type: 'text', body: positionals.slice(1).join(' ') }
      } else if (cmd === 'edit') {
        need(positionals, 3, cmd)
        envelope = { type: 'edit', ref: seqArg(positionals[1]), body: positionals.slice(2).join(' ') }
      } else if (cmd === 'delete') {
        need(positionals, 2, cmd)
        envelope = { type: 'delete', ref: seqArg(positionals[1]) }
      } else {
        need(positionals, values.remove ? 2 : 3, cmd)
        // The server counts reactions by their emoji, which an encrypted chat must not show it.
        if (chat.e2ee) throw new CliError('reactions are not available in end-to-end encrypted chats yet (reply instead)', EXIT.usage)
        envelope = { type: 'reaction', ref: seqArg(positionals[1]), body: values.remove ? null : positionals[2] }
      }
      const id = values.id ?? randomUUID()
      type Sent = { chat: string, id: string, seq?: number, duplicate?: boolean, queued?: boolean, attempts?: number }
      // A delete carries no content: it goes as it is, encrypted chat or not.
      const r = chat.e2ee && cmd !== 'delete'
        ? await e2ee.send(chat.id, chat.kind, { id, ...envelope } as Parameters<E2ee['send']>[2], chat.disappearing) as Sent
        : await call<Sent>(p.server, 'POST', `/v1/chats/${encodeURIComponent(chat.id)}/messages`, { token: p.token, body: { id, ...envelope, ts: Date.now() } })
      const media = uploaded ? { media_id: uploaded.mediaId, uploaded: !uploaded.existing } : {}
      // Queued (a cluster under a backlog): taken durably, its seq not known yet.
      const where = r.queued === true ? `queued, seq not assigned yet (id ${r.id})` : `seq ${String(r.seq)}${r.duplicate === true ? ' (already sent before)' : ''}`
      out(values.json, { ...r, ...media, ...(chat.e2ee ? { encrypted: true } : {}) }, `${cmd === 'send' ? 'sent' : cmd === 'edit' ? 'edited' : cmd === 'delete' ? 'deleted' : 'reacted'} in ${r.chat}${chat.e2ee && cmd !== 'delete' ? ' (end-to-end encrypted)' : ''}: ${where}` +
        (uploaded ? ` (media ${uploaded.mediaId}${uploaded.existing ? ', already stored: not uploaded again' : ''})` : ''))
      return EXIT.ok
    }
    case 'fetch': {
      const { values, positionals } = parse(rest, { output: { type: 'string', short: 'o' } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const target = values.output ?? positionals[0]
      const r = await fetchMedia(p.server, p.token, positionals[0], target)
      out(values.json, { media_id: positionals[0], path: target, ...r }, `saved ${positionals[0]} to ${target} (${r.size} bytes, SHA-256 verified)`)
      return EXIT.ok
    }
    case 'forward': {
      const { values, positionals } = parse(rest, { id: { type: 'string' } })
      need(positionals, 3, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const r = await call<{ forwarded: Array<{ chat: string, seq?: number, queued?: boolean }> }>(p.server, 'POST', `/v1/chats/${encodeURIComponent(positionals[0])}/messages/${encodeURIComponent(positionals[1])}/forward`,
        { token: p.token, body: { to: positionals.slice(2), id: values.id ?? randomUUID() } })
      out(values.json, r, r.forwarded.map((f) => `forwarded to ${f.chat}: ${f.queued === true ? 'queued, seq not assigned yet' : `seq ${String(f.seq)}`}`).join('\n'))
      return EXIT.ok
    }
    case 'push': {
      const { values, positionals } = parse(rest, { p256dh: { type: 'string' }, auth: { type: 'string' }, topic: { type: 'string' }, sandbox: { type: 'boolean', default: false } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const sub = positionals[0]
      type Target = { target_id: string, type: string, token?: string, endpoint?: string, topic?: string, environment?: string, encrypted?: boolean }
      const line = (t: Target): string => `${t.target_id}  ${t.type}  ${t.endpoint ?? t.token ?? ''}${t.topic !== undefined ? `  ${t.topic} (${t.environment ?? 'production'})` : ''}${t.encrypted === true ? '  encrypted' : ''}`
      if (sub === 'list') {
        const r = await call<{ targets: Target[] }>(p.server, 'GET', '/v1/push/targets', { token: p.token })
        out(values.json, r, r.targets.map(line).join('\n') || '(no push targets)')
        return EXIT.ok
      }
      if (sub === 'add') {
        need(positionals, 3, cmd)
        const type = positionals[1]
        const address = positionals[2]!
        const keys = values.p256dh !== undefined || values.auth !== undefined ? { keys: { p256dh: values.p256dh ?? '', auth: values.auth ?? '' } } : {}
        const body = type === 'fcm'
          ? { type, token: address }
          : type === 'apns'
            ? { type, token: address, topic: values.topic, environment: values.sandbox ? 'sandbox' : 'production' }
            : { type, endpoint: address, ...keys }
        const t = await call<Target>(p.server, 'POST', '/v1/push/targets', { token: p.token, body })
        out(values.json, t, `added ${line(t)}`)
        return EXIT.ok
      }
      if (sub === 'remove') {
        need(positionals, 2, cmd)
        await call(p.server, 'DELETE', `/v1/push/targets/${encodeURIComponent(positionals[1]!)}`, { token: p.token })
        out(values.json, { removed: positionals[1] }, `removed ${positionals[1]}`)
        return EXIT.ok
      }
      throw new CliError(`unknown push command "${sub}"\n\n${HELP.push}`, EXIT.usage)
    }
    case 'mute':
    case 'unmute': {
      const { values, positionals } = parse(rest, { for: { type: 'string', default: 'always' } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const spans: Record<string, number> = { '8h': 8 * 3600_000, '1w': 7 * 86_400_000, always: 0 }
      if (cmd === 'mute' && spans[values.for] === undefined) throw new CliError('--for takes 8h, 1w or always', EXIT.usage)
      // "Always" is a time no one will live to see (the server's limit is the year 9999).
      const until = cmd === 'unmute' ? null : values.for === 'always' ? Date.UTC(9999, 0, 1) : Date.now() + spans[values.for]!
      const r = await call<{ muted_until: number | null }>(p.server, 'PATCH', `/v1/chats/${encodeURIComponent(positionals[0]!)}/settings`, { token: p.token, body: { muted_until: until } })
      out(values.json, r, r.muted_until === null ? `${positionals[0]}: not muted` : `${positionals[0]}: muted${values.for === 'always' ? '' : ` until ${new Date(r.muted_until).toISOString()}`}`)
      return EXIT.ok
    }
    case 'safety': {
      const { values, positionals } = parse(rest, {})
      need(positionals, 1, cmd)
      const name = profileName(values.profile)
      const p = requireDeviceProfile(name)
      const e2ee = e2eeOf(p, name, values.json)
      await e2ee.ensurePublished()
      const userId = positionals[0].startsWith('+') ? await otherMember(p, positionals[0]) : positionals[0]
      const [ours, theirs] = [await e2ee.identities(p.user_id), await e2ee.identities(userId)]
      const number = safetyNumber({ userId: p.user_id, devices: ours }, { userId, devices: theirs })
      const line = (d: IdentityJson): string => {
        const changed = e2ee.changedAt(d.device_id)
        return `  ${d.device_id}  ${d.signing_key}${d.device_id === p.device_id ? '  (this device)' : ''}${changed !== undefined ? `  (identity changed ${new Date(changed).toISOString()})` : ''}`
      }
      const groups = number.split(' ')
      out(values.json, { user: userId, safety_number: number, devices: theirs, own_devices: ours },
        `safety number with ${userId}:\n` + [0, 4, 8].map((i) => '  ' + groups.slice(i, i + 4).join(' ')).join('\n') +
        `\n${userId}'s devices (Ed25519 keys):\n${theirs.map(line).join('\n') || '  (none with keys)'}\nyour devices:\n${ours.map(line).join('\n')}\n` +
        `Compare the number with ${userId} in person or over a channel you trust; it is the same on both sides.\n` +
        'It changes when either of you links, revokes or resets a device.')
      return EXIT.ok
    }
    case 'keys': {
      const { values, positionals } = parse(rest, {})
      const name = profileName(values.profile)
      const p = requireDeviceProfile(name)
      const e2ee = e2eeOf(p, name, values.json)
      const sub = positionals[0] ?? 'status'
      if (sub === 'publish') {
        const r = await e2ee.publish()
        out(values.json, r, `uploaded ${r.uploaded} one-time prekeys; ${r.one_time_keys} published`)
        return EXIT.ok
      }
      if (sub === 'reset') {
        const r = await e2ee.reset()
        out(values.json, r, `this device has a new identity key ${r.identity_key}; your contacts are told, and safety numbers change`)
        return EXIT.ok
      }
      if (sub !== 'status') throw new CliError(`unknown keys command "${sub}"\n\n${HELP.keys}`, EXIT.usage)
      const id = await e2ee.identity()
      const count = await call<{ one_time_keys: number, max_one_time_keys: number, fallback_key: boolean }>(p.server, 'GET', '/v1/keys/count', { token: p.token })
      out(values.json, { ...id, ...count }, `identity key (Curve25519) ${id.identity_key}\nsigning key (Ed25519) ${id.signing_key}\n` +
        `one-time prekeys on the server: ${count.one_time_keys} of ${count.max_one_time_keys}; fallback key: ${count.fallback_key ? 'yes' : 'no'}`)
      return EXIT.ok
    }
    case 'admin': {
      const { values, positionals } = parse(rest, { 'admin-url': { type: 'string' }, 'token-file': { type: 'string' } })
      need(positionals, 1, cmd)
      const url = values['admin-url'] ?? process.env.MQCHAT_ADMIN_URL ?? 'http://127.0.0.1:3100'
      return await admin(positionals, { url, token: adminToken(values['token-file']), json: values.json }, HELP.admin!)
    }
    case 'account': {
      const { values, positionals } = parse(rest, { code: { type: 'string' }, output: { type: 'string', short: 'o' } })
      need(positionals, 1, cmd)
      const name = profileName(values.profile)
      const p = requireDeviceProfile(name)
      if (positionals[0] === 'export') return await exportAccount(p, values.output, values.json)
      if (positionals[0] !== 'delete') throw new CliError(`unknown account command "${positionals[0]}"\n\n${HELP.account}`, EXIT.usage)
      if (values.code === undefined) {
        // Step one: a fresh code to the account's number proves it is its holder who deletes it.
        const phone = p.phone ?? (await call<{ phone: string }>(p.server, 'GET', '/v1/me', { token: p.token })).phone
        const r = await call<{ expires_in: number, code?: string }>(p.server, 'POST', '/v1/register/code', { body: { phone } })
        out(values.json, { phone, expires_in: r.expires_in, ...(r.code !== undefined ? { code: r.code } : {}) },
          `a code was sent to ${phone}. To delete this account for good (devices, profile, contacts, media; your messages become "deleted"), run:\n  mqchat account delete --code <code>` +
          (r.code !== undefined ? `\ndevelopment code: ${r.code}` : ''))
        return EXIT.ok
      }
      const r = await call<{ chats: number, messages: number, media: number }>(p.server, 'DELETE', '/v1/me', { token: p.token, body: { code: values.code } })
      // This device's credentials and keys are worthless now.
      for (const file of [`${name}.json`, `${name}.e2ee.json`]) rmSync(join(cliHome(), file), { force: true })
      out(values.json, { deleted: true, ...r }, `account deleted: left ${r.chats} chats, ${r.messages} messages deleted, ${r.media} media files deleted; profile ${name} removed`)
      return EXIT.ok
    }
    case 'profile': {
      const { values, positionals } = parse(rest, { name: { type: 'string' }, about: { type: 'string' }, avatar: { type: 'string' }, 'no-avatar': { type: 'boolean', default: false } })
      const p = requireDeviceProfile(profileName(values.profile))
      type Shown = { user_id: string, name: string | null, about: string | null, avatar: string | null, phone?: string }
      const line = (r: Shown): string => `${r.name ?? '(no name shown)'}${r.phone !== undefined ? `  ${r.phone}` : ''}  ${r.user_id}${r.about !== null ? `\n${r.about}` : ''}${r.avatar !== null ? `\navatar: ${r.avatar} (mqchat fetch ${r.avatar})` : ''}`
      if (positionals[0] !== undefined) {
        const userId = positionals[0].startsWith('+') ? await otherMember(p, positionals[0]) : positionals[0]
        const r = await call<Shown>(p.server, 'GET', `/v1/users/${encodeURIComponent(userId)}/profile`, { token: p.token })
        out(values.json, r, line(r))
        return EXIT.ok
      }
      const patch: Record<string, unknown> = {}
      if (values.name !== undefined) patch.name = values.name === '' ? null : values.name
      if (values.about !== undefined) patch.about = values.about === '' ? null : values.about
      if (values['no-avatar']) patch.avatar = null
      else if (values.avatar !== undefined) patch.avatar = (await uploadFile(p.server, p.token, undefined, values.avatar)).mediaId
      const r = Object.keys(patch).length > 0
        ? await call<Shown>(p.server, 'PATCH', '/v1/me/profile', { token: p.token, body: patch })
        : await call<Shown>(p.server, 'GET', '/v1/me/profile', { token: p.token })
      out(values.json, r, line(r))
      return EXIT.ok
    }
    case 'contacts': {
      const { values, positionals } = parse(rest, { file: { type: 'string' } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const sub = positionals[0]
      if (sub === 'list') {
        const r = await call<{ phones: string[] }>(p.server, 'GET', '/v1/contacts', { token: p.token })
        out(values.json, r, r.phones.join('\n') || '(no contacts uploaded)')
        return EXIT.ok
      }
      if (sub !== 'sync' && sub !== 'find') throw new CliError(`unknown contacts command "${sub}"\n\n${HELP.contacts}`, EXIT.usage)
      // A file: one number per line (blank lines and # comments skipped), as an address book export would give.
      const phones = [...positionals.slice(1), ...(values.file !== undefined ? readFileSync(values.file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')) : [])]
      if (phones.length === 0) throw new CliError(`no phone numbers given\n\n${HELP.contacts}`, EXIT.usage)
      type Found = { phone: string, user_id: string, name: string | null }
      const r = await call<{ registered: Found[], contacts: number }>(p.server, 'POST', '/v1/contacts/discover', { token: p.token, body: { phones, replace: sub === 'sync' } })
      if (values.json) for (const f of r.registered) out(true, f, '')
      else process.stdout.write(r.registered.map((f) => `${f.phone}  ${f.name ?? '(no name shown)'}  ${f.user_id}`).join('\n') + (r.registered.length > 0 ? '\n' : '') +
        `${r.registered.length} of ${new Set(phones).size} registered; ${r.contacts} numbers on your contact list\n`)
      return EXIT.ok
    }
    case 'presence': {
      const { values, positionals } = parse(rest, {})
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const r = await call<{ user: string, state: string, last_seen: number | null }>(p.server, 'GET', `/v1/users/${encodeURIComponent(positionals[0])}/presence`, { token: p.token })
      const names = new Names(p)
      if (!values.json) await names.load([r.user])
      const who = names.label(r.user)
      out(values.json, r, r.state === 'online' ? `${who}: online` : `${who}: offline${r.last_seen ? `, last seen ${new Date(r.last_seen).toISOString()}` : ''}`)
      return EXIT.ok
    }
    case 'block':
    case 'unblock':
    case 'blocks': {
      const { values, positionals } = parse(rest, {})
      const p = requireDeviceProfile(profileName(values.profile))
      if (cmd === 'blocks') {
        const r = await call<{ blocked: string[] }>(p.server, 'GET', '/v1/blocks', { token: p.token })
        out(values.json, r, r.blocked.join('\n') || '(nobody)')
        return EXIT.ok
      }
      need(positionals, 1, cmd)
      if (cmd === 'block') await call(p.server, 'POST', '/v1/blocks', { token: p.token, body: { user: positionals[0] } })
      else await call(p.server, 'DELETE', `/v1/blocks/${encodeURIComponent(positionals[0])}`, { token: p.token })
      out(values.json, { [cmd === 'block' ? 'blocked' : 'unblocked']: positionals[0] }, `${cmd}ed ${positionals[0]}`)
      return EXIT.ok
    }
    case 'listen': {
      const { values } = parse(rest, { count: { type: 'string', default: '0' }, timeout: { type: 'string', default: '0' }, mqtt: { type: 'string' }, 'mqtt-version': { type: 'string', default: '4' }, 'no-receipts': { type: 'boolean', default: false } })
      const p = requireDeviceProfile(profileName(values.profile))
      const count = Number(values.count)
      const timeout = Number(values.timeout)
      if (!Number.isInteger(count) || count < 0 || !Number.isFinite(timeout) || timeout < 0) throw new CliError('--count and --timeout take non-negative numbers', EXIT.usage)
      const version = values['mqtt-version']
      if (version !== '4' && version !== '5') throw new CliError('--mqtt-version takes 4 (MQTT 3.1.1) or 5', EXIT.usage)
      return listen(p, { json: values.json, count, timeout, mqttUrl: values.mqtt, receipts: !values['no-receipts'], mqttVersion: version === '5' ? 5 : 4, e2ee: e2eeOf(p, profileName(values.profile), values.json) })
    }
    case 'read': {
      const { values, positionals } = parse(rest, {})
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const ref = positionals[0]
      const chatId = /^(\+|u_)/.test(ref) ? await directChatFor(p, ref) : ref
      const chat = await call<{ last_seq: number }>(p.server, 'GET', `/v1/chats/${encodeURIComponent(chatId)}`, { token: p.token })
      if (chat.last_seq === 0) { out(values.json, { chat: chatId, read: 0 }, `nothing to read in ${chatId}`); return EXIT.ok }
      const r = await call<{ read: number }>(p.server, 'POST', `/v1/chats/${encodeURIComponent(chatId)}/receipts`, { token: p.token, body: { type: 'read', seq: chat.last_seq } })
      out(values.json, { chat: chatId, read: r.read }, `read ${chatId} up to #${r.read}`)
      return EXIT.ok
    }
    case 'info': {
      const { values, positionals } = parse(rest, {})
      need(positionals, 2, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const r = await call<{ delivered: string[], read: string[] }>(p.server, 'GET', `/v1/chats/${encodeURIComponent(positionals[0])}/messages/${encodeURIComponent(positionals[1])}/receipts`, { token: p.token })
      const names = new Names(p)
      if (!values.json) await names.load([...r.delivered, ...r.read])
      out(values.json, r, `delivered: ${r.delivered.map(names.label).join(', ') || '-'}\nread: ${r.read.map(names.label).join(', ') || '-'}`)
      return EXIT.ok
    }
    case 'settings': {
      const { values } = parse(rest, { 'read-receipts': { type: 'string' }, 'last-seen': { type: 'string' }, 'show-profile': { type: 'string' } })
      const p = requireDeviceProfile(profileName(values.profile))
      const patch: Record<string, unknown> = {}
      if (values['read-receipts'] !== undefined) {
        if (values['read-receipts'] !== 'on' && values['read-receipts'] !== 'off') throw new CliError('--read-receipts takes on or off', EXIT.usage)
        patch.read_receipts = values['read-receipts'] === 'on'
      }
      if (values['last-seen'] !== undefined) patch.last_seen = values['last-seen']
      if (values['show-profile'] !== undefined) patch.profile = values['show-profile']
      type Settings = { read_receipts: boolean, last_seen: string, profile: string }
      const r = Object.keys(patch).length > 0
        ? await call<Settings>(p.server, 'PATCH', '/v1/me/settings', { token: p.token, body: patch })
        : await call<Settings>(p.server, 'GET', '/v1/me/settings', { token: p.token })
      out(values.json, r, `read receipts: ${r.read_receipts ? 'on' : 'off'}\nlast seen visible to: ${r.last_seen}\nprofile visible to: ${r.profile}`)
      return EXIT.ok
    }
    case 'history': {
      const { values, positionals } = parse(rest, { after: { type: 'string', default: '0' }, limit: { type: 'string', default: '100' } })
      need(positionals, 1, cmd)
      const p = requireDeviceProfile(profileName(values.profile))
      const ref = positionals[0]
      const chatId = /^(\+|u_)/.test(ref) ? await directChatFor(p, ref) : ref
      const r = await call<{ messages: Array<Record<string, unknown> & { type: string }> }>(p.server, 'GET',
        `/v1/chats/${encodeURIComponent(chatId)}/messages?after=${encodeURIComponent(values.after)}&limit=${encodeURIComponent(values.limit)}`, { token: p.token })
      // Encrypted messages are opened here, oldest first (a group key before the messages it opens); group keys are not shown.
      const e2ee = r.messages.some((m) => isEncrypted(m.body)) ? e2eeOf(p, profileName(values.profile), values.json) : undefined
      const names = new Names(p)
      if (!values.json) await names.load(r.messages.map((m) => m.from))
      for (const m of r.messages) {
        const shown = e2ee !== undefined ? await reveal(e2ee, { ...m, type: 'msg' }) : { ...m, type: 'msg' }
        if (shown === undefined) continue
        const { type: _msg, ...row } = shown
        out(values.json, row, formatEvent(shown, names.label))
      }
      return EXIT.ok
    }
  }
  return EXIT.usage
}

/** The other member of the direct chat with a user named by phone number. */
async function otherMember (p: DeviceProfile, phone: string): Promise<string> {
  return (await resolveChat(p, phone)).members.find((u) => u !== p.user_id) ?? p.user_id
}

async function chatCommand (rest: string[]): Promise<number> {
  const { values, positionals } = parse(rest, { group: { type: 'string' }, e2ee: { type: 'boolean', default: false }, archived: { type: 'boolean', default: false } })
  need(positionals, 1, 'chat')
  const p = requireDeviceProfile(profileName(values.profile))
  const [sub, ...args] = positionals
  type ChatJson = {
    chat_id: string, kind: string, name: string | null, e2ee?: string, disappearing?: number | null, members: Array<{ user_id: string, role: string }>
    unread?: number, settings?: { muted_until: number | null, archived: boolean, pinned: boolean }
  }
  const names = new Names(p)
  const show = async (c: ChatJson): Promise<void> => {
    if (!values.json) await names.load(c.members.map((m) => m.user_id))
    const st = c.settings
    const marks = [st?.pinned === true ? '[pinned]' : '', st?.archived === true ? '[archived]' : '', st?.muted_until !== null && st?.muted_until !== undefined && st.muted_until > Date.now() ? '[muted]' : '', (c.unread ?? 0) > 0 ? `(${c.unread! >= 1000 ? '999+' : c.unread} unread)` : ''].filter((x) => x !== '')
    out(values.json, c, `${c.chat_id}  ${c.kind === 'group' ? `group "${c.name ?? ''}"` : 'direct'}${c.e2ee === 'required' ? '  end-to-end encrypted' : ''}${typeof c.disappearing === 'number' ? `  disappearing ${span(c.disappearing)}` : ''}${marks.length > 0 ? `  ${marks.join(' ')}` : ''}  members: ${c.members.map((m) => m.role === 'admin' ? `${names.label(m.user_id)} (admin)` : names.label(m.user_id)).join(', ')}`)
  }
  const chatPath = (id: string): string => `/v1/chats/${encodeURIComponent(id)}`
  switch (sub) {
    case 'create': {
      const e2ee = values.e2ee ? { e2ee: 'required' } : {}
      if (values.group !== undefined) {
        await show(await call<ChatJson>(p.server, 'POST', '/v1/chats', { token: p.token, body: { kind: 'group', name: values.group, members: args, ...e2ee } }))
      } else {
        need(positionals, 2, 'chat')
        await show(await call<ChatJson>(p.server, 'POST', '/v1/chats', { token: p.token, body: { kind: 'direct', user: args[0], ...e2ee } }))
      }
      return EXIT.ok
    }
    case 'list': {
      const r = await call<{ chats: ChatJson[] }>(p.server, 'GET', '/v1/chats', { token: p.token })
      // Pinned first, then the rest; archived chats only with --archived (and then only they).
      const listed = r.chats.filter((c) => (c.settings?.archived === true) === values.archived)
        .sort((x, y) => Number(y.settings?.pinned === true) - Number(x.settings?.pinned === true))
      if (!values.json) await names.load(listed.flatMap((c) => c.members.map((m) => m.user_id)))
      for (const c of listed) await show(c)
      const archived = r.chats.length - listed.length
      if (!values.json && !values.archived && archived > 0) process.stdout.write(`(${archived} archived: mqchat chat list --archived)\n`)
      return EXIT.ok
    }
    case 'show': need(positionals, 2, 'chat'); await show(await call<ChatJson>(p.server, 'GET', chatPath(args[0]), { token: p.token })); return EXIT.ok
    case 'add': need(positionals, 3, 'chat'); await show(await call<ChatJson>(p.server, 'POST', `${chatPath(args[0])}/members`, { token: p.token, body: { users: args.slice(1) } })); return EXIT.ok
    case 'remove':
      need(positionals, 3, 'chat')
      await call(p.server, 'DELETE', `${chatPath(args[0])}/members/${encodeURIComponent(args[1])}`, { token: p.token })
      out(values.json, { chat_id: args[0], removed: args[1] }, `removed ${args[1]} from ${args[0]}`)
      return EXIT.ok
    case 'leave':
      need(positionals, 2, 'chat')
      await call(p.server, 'DELETE', `${chatPath(args[0])}/members/${encodeURIComponent(p.user_id)}`, { token: p.token })
      out(values.json, { chat_id: args[0], left: true }, `left ${args[0]}`)
      return EXIT.ok
    case 'archive':
    case 'unarchive':
    case 'pin':
    case 'unpin': {
      need(positionals, 2, 'chat')
      const body = sub === 'archive' || sub === 'unarchive' ? { archived: sub === 'archive' } : { pinned: sub === 'pin' }
      const r = await call<{ muted_until: number | null, archived: boolean, pinned: boolean }>(p.server, 'PATCH', `${chatPath(args[0])}/settings`, { token: p.token, body })
      out(values.json, { chat_id: args[0], ...r }, `${args[0]}: ${sub === 'archive' ? 'archived' : sub === 'unarchive' ? 'back in the chat list' : sub === 'pin' ? 'pinned' : 'unpinned'} (on all your devices)`)
      return EXIT.ok
    }
    case 'timer': {
      need(positionals, 3, 'chat')
      const spans: Record<string, number> = { off: 0, '24h': 86_400, '7d': 604_800, '90d': 7_776_000 }
      const seconds = spans[args[1]!] ?? (/^\d+$/.test(args[1]!) ? Number(args[1]) : undefined)
      if (seconds === undefined) throw new CliError('chat timer takes off, 24h, 7d, 90d (or a number of seconds the server allows)', EXIT.usage)
      // The change is a message of its own (type timer), with its own seq, so every device applies it in order.
      const r = await call<{ seq?: number, queued?: boolean }>(p.server, 'POST', `${chatPath(args[0])}/messages`, { token: p.token, body: { id: randomUUID(), type: 'timer', body: { seconds } } })
      out(values.json, { chat_id: args[0], seconds, ...r }, `${args[0]}: ${seconds === 0 ? 'messages no longer disappear' : `messages sent from now on disappear after ${span(seconds)}`} (seq ${String(r.seq)})`)
      return EXIT.ok
    }
    case 'encrypt': need(positionals, 2, 'chat'); await show(await call<ChatJson>(p.server, 'PATCH', chatPath(args[0]), { token: p.token, body: { e2ee: 'required' } })); return EXIT.ok
    case 'rename': need(positionals, 3, 'chat'); await show(await call<ChatJson>(p.server, 'PATCH', chatPath(args[0]), { token: p.token, body: { name: args.slice(1).join(' ') } })); return EXIT.ok
    case 'promote':
    case 'demote':
      need(positionals, 3, 'chat')
      await show(await call<ChatJson>(p.server, 'PUT', `${chatPath(args[0])}/members/${encodeURIComponent(args[1])}/role`, { token: p.token, body: { role: sub === 'promote' ? 'admin' : 'member' } }))
      return EXIT.ok
  }
  throw new CliError(`unknown chat command "${sub}"\n\n${HELP.chat}`, EXIT.usage)
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`mqchat: ${err.message}\n`)
      process.exitCode = err.exitCode
    } else {
      process.stderr.write(`mqchat: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exitCode = EXIT.failure
    }
  }
)

export { cliHome }
