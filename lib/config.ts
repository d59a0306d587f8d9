// Every server option in one place: its environment variable, default, and
// validation. `mqchat serve` flags are applied on top of the environment.
// loadConfig() reports every bad value at once, one line each.
import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve } from 'node:path'

export type Role = 'all' | 'broker' | 'bridge' | 'api'

export interface Config {
  profile: 'local' | 'cluster'
  /** Cluster profile: which parts this process runs. */
  role: Role
  /** Cluster profile: this process's stable, unique id (aedes broker id, stream consumer name). */
  nodeId: string
  redisUrl: string
  /** host:port list of Redis Sentinels; when set, redisUrl's host is ignored. */
  redisSentinels: string
  redisSentinelName: string
  /** host:port list of Redis Cluster nodes; when set, Redis Cluster is used. */
  redisClusterNodes: string
  /** Replicas that must have a chat stream entry before its PUBACK (Redis WAIT). */
  redisMinReplicas: number
  redisReplicaWaitMs: number
  /** Cluster: how long an HTTP send waits for its seq before it is answered as queued. */
  httpSendWaitMs: number
  mongoUrl: string
  streamPartitions: number
  emitterConcurrency: number
  directoryAckTimeoutMs: number
  dataDir: string
  host: string
  mqttPort: number
  wsPort: number
  wsPath: string
  httpPort: number
  tlsCert: string
  tlsKey: string
  mqttTlsPort: number
  wssPort: number
  httpsPort: number
  /** chat: device tokens and the chat ACL; open: any client, any topic (development and conformance testing). */
  mqttAccess: 'chat' | 'open'
  /** Allows open MQTT access on a listener that is not loopback-only. */
  openAccessForce: boolean
  /** The XMPP client listener (off unless enabled). */
  xmppEnabled: boolean
  xmppPort: number
  /** The domain of every JID: <userId>@<domain>/<deviceId>. */
  xmppDomain: string
  /** PEM files for STARTTLS. */
  xmppTlsCert: string
  xmppTlsKey: string
  /** Development: allow login without TLS (loopback host only). */
  xmppAllowPlaintext: boolean
  xmppMaxStanzaBytes: number
  /** How long a broken XMPP stream with stream management can be resumed (0 = no resumption). */
  xmppResumeSeconds: number
  xmppWsPort: number
  /** Sustained stanzas per second one XMPP stream may send (burst: 5 ×). */
  xmppStanzaRate: number
  /** Addresses (IPs or CIDRs) of the load balancers whose X-Forwarded-For the API believes; empty: none. */
  trustProxy: string
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** auto: readable lines on a terminal, JSON lines elsewhere. */
  logFormat: 'auto' | 'json' | 'pretty'
  sqliteSynchronous: 'normal' | 'full'
  /** Development only: registration responses include the one-time code. */
  devReturnCodes: boolean
  /** Where one-time codes are POSTed (an SMS gateway); empty: codes go to the server log. */
  codeWebhookUrl: string
  codeWebhookSecret: string
  otpTtlSeconds: number
  otpMaxAttempts: number
  otpRequestsPerPhonePerHour: number
  otpRequestsPerIpPerHour: number
  maxDevicesPerUser: number
  maxGroupMembers: number
  groupsPerHour: number
  directChatsPerHour: number
  phoneLookupsPerHour: number
  phoneLookupsPerDay: number
  contactsMax: number
  contactSyncsPerHour: number
  contactsNewPerDay: number
  discoveryAnswerMs: number
  maxMessageBytes: number
  maxPacketBytes: number
  maxTopicLevels: number
  maxInflightInbound: number
  maxSubscriptions: number
  publishRatePerSecond: number
  publishBurst: number
  maxQueue: number
  inboxWindow: number
  inboxFlushMs: number
  inboxCacheMessages: number
  clusterRecentPerChat: number
  clusterRecentTtlHours: number
  retentionDays: number
  purgeIntervalMinutes: number
  disappearingTimers: number[]
  exportsPerHour: number
  expirySweepSeconds: number
  editWindowSeconds: number
  deleteWindowSeconds: number
  forwardMaxChats: number
  mediaBackend: 'local' | 's3'
  s3Endpoint: string
  s3PublicEndpoint: string
  s3Region: string
  s3Bucket: string
  s3ForcePathStyle: boolean
  s3AccessKeyId: string
  s3SecretAccessKey: string
  mediaRetentionDays: number
  mediaUnreferencedHours: number
  mediaSecret: string
  mediaMaxImageBytes: number
  mediaMaxAudioBytes: number
  mediaMaxVideoBytes: number
  mediaMaxDocumentBytes: number
  mediaQuotaBytesPerHour: number
  mediaUploadUrlSeconds: number
  mediaDownloadUrlSeconds: number
  typingIntervalMs: number
  presenceCoalesceMs: number
  connectTimeoutMs: number
  drainTimeoutMs: number
  keepaliveLimitSeconds: number
  shutdownTimeoutMs: number
  httpBodyTimeoutSeconds: number
  httpRequestTimeoutSeconds: number
  httpIdleTimeoutSeconds: number
  publicUrl: string
  httpMaxConnections: number
  httpMaxConnectionsPerAddress: number
  metricsToken: string
  adminToken: string
  adminPort: number
  xmppAuthTimeoutSeconds: number
  maxConnections: number
  e2eeMaxPrekeys: number
  e2eePrekeysLow: number
  e2eeClaimsPer10Minutes: number
  pushCoalesceSeconds: number
  pushQueue: number
  pushConcurrency: number
  pushMaxAttempts: number
  pushMaxTargetsPerDevice: number
  pushAllowInsecureEndpoints: boolean
  pushFcmServiceAccount: string
  pushFcmUrl: string
  pushApnsKey: string
  pushApnsKeyId: string
  pushApnsTeamId: string
  pushApnsUrl: string
  pushVapidPublicKey: string
  pushVapidPrivateKey: string
  pushVapidSubject: string
  pushUnifiedPush: boolean
  maxUnauthenticated: number
  maxUnauthenticatedPerAddress: number
  xmppMaxHeldEvents: number
  xmppIdleTimeoutSeconds: number
  xmppMaxUnauthenticated: number
  xmppMaxUnauthenticatedPerAddress: number
}

type Parser<T> = (raw: string) => T | Error

interface Option<K extends keyof Config> {
  key: K
  env: string
  flag?: string
  def: string
  parse: Parser<Config[K]>
  help: string
}

const int = (min: number, max: number): Parser<number> => (raw) => {
  if (!/^-?\d+$/.test(raw.trim())) return new Error(`must be a whole number, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) return new Error(`must be between ${min} and ${max}, got ${n}`)
  return n
}
const port: Parser<number> = int(0, 65535)
/** A comma-separated list of whole numbers within bounds (at least one). */
const ints = (min: number, max: number): Parser<number[]> => (raw) => {
  const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '')
  if (parts.length === 0) return new Error('must list at least one whole number')
  const out: number[] = []
  for (const p of parts) {
    const n = int(min, max)(p)
    if (n instanceof Error) return n
    out.push(n)
  }
  return out
}
const oneOf = <T extends string>(...values: T[]): Parser<T> => (raw) =>
  (values as string[]).includes(raw) ? raw as T : new Error(`must be one of ${values.join(', ')}, got "${raw}"`)
const bool: Parser<boolean> = (raw) => {
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true
  if (['0', 'false', 'no', 'off', ''].includes(raw.toLowerCase())) return false
  return new Error(`must be true or false, got "${raw}"`)
}
const text: Parser<string> = (raw) => raw.length > 0 ? raw : new Error('must not be empty')
const optionalUrl: Parser<string> = (raw) => {
  if (raw === '') return ''
  try {
    const u = new URL(raw)
    return u.protocol === 'http:' || u.protocol === 'https:' ? raw : new Error(`must be an http(s) URL, got "${raw}"`)
  } catch {
    return new Error(`must be an http(s) URL, got "${raw}"`)
  }
}
const anyText: Parser<string> = (raw) => raw
const optionalFile: Parser<string> = (raw) => {
  if (raw === '') return ''
  return existsSync(raw) ? resolve(raw) : new Error(`no such file: "${raw}"`)
}
const xmppDomain: Parser<string> = (raw) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(raw) && raw.length <= 253 ? raw.toLowerCase() : new Error(`must be a domain name, got "${raw}"`)
const path: Parser<string> = (raw) => raw.length > 0 ? resolve(raw) : new Error('must not be empty')
const wsPath: Parser<string> = (raw) => raw.startsWith('/') ? raw : new Error(`must start with "/", got "${raw}"`)
const redisUrl: Parser<string> = (raw) => {
  try {
    const u = new URL(raw)
    return u.protocol === 'redis:' || u.protocol === 'rediss:' ? raw : new Error(`must be a redis:// or rediss:// URL, got "${raw}"`)
  } catch {
    return new Error(`must be a redis:// or rediss:// URL, got "${raw}"`)
  }
}
const mongoUrl: Parser<string> = (raw) => /^mongodb(\+srv)?:\/\/.+/.test(raw) ? raw : new Error(`must be a mongodb:// or mongodb+srv:// URL, got "${raw}"`)
/** A comma-separated list whose every item passes `valid`; empty is allowed. */
const commaList = (valid: (item: string) => boolean, what: string): Parser<string> => (raw) => {
  if (raw === '') return ''
  const bad = raw.split(',').map((x) => x.trim()).filter((x) => !valid(x))
  return bad.length === 0 ? raw : new Error(`must be a comma-separated ${what}, got "${bad.join(',')}"`)
}
const hostPorts = commaList((x) => /^[^:\s]+:\d{1,5}$/.test(x), 'host:port list')
const ipList = commaList((x) => {
  const [ip, bits, ...rest] = x.split('/')
  const v = isIP(ip ?? '')
  if (v === 0 || rest.length > 0) return false
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (v === 4 ? 32 : 128))
}, 'list of IP addresses or CIDR ranges')
const nodeId: Parser<string> = (raw) => /^[A-Za-z0-9_.-]{1,64}$/.test(raw) ? raw : new Error(`must be 1-64 letters, digits, "_", "-" or ".", got "${raw}"`)

export const OPTIONS: Array<Option<keyof Config>> = [
  { key: 'profile', env: 'MQCHAT_PROFILE', flag: 'profile', def: 'local', parse: oneOf('local', 'cluster'), help: 'local: one process, SQLite + files, no services; cluster: Redis, MongoDB and S3, brokers and bridge workers as separate processes' },
  { key: 'role', env: 'MQCHAT_ROLE', flag: 'role', def: 'all', parse: oneOf('all', 'broker', 'bridge', 'api'), help: 'cluster profile: the parts this process runs (broker: MQTT listeners; bridge: a chat stream worker; api: HTTP; all: the three)' },
  { key: 'nodeId', env: 'MQCHAT_NODE_ID', flag: 'node-id', def: 'node-1', parse: nodeId, help: 'cluster profile: this process\'s stable id, unique in the cluster (MQTT broker id, stream consumer name); keep it across restarts' },
  { key: 'redisUrl', env: 'MQCHAT_REDIS_URL', def: 'redis://127.0.0.1:6379', parse: redisUrl, help: 'cluster profile: Redis for sessions, routing, the chat stream and directory changes (password and db number in the URL)' },
  { key: 'redisSentinels', env: 'MQCHAT_REDIS_SENTINELS', def: '', parse: hostPorts, help: 'cluster profile: Redis Sentinel host:port list; when set, the master named by MQCHAT_REDIS_SENTINEL_NAME is used' },
  { key: 'redisSentinelName', env: 'MQCHAT_REDIS_SENTINEL_NAME', def: 'mymaster', parse: text, help: 'cluster profile: the Sentinel master name' },
  { key: 'redisClusterNodes', env: 'MQCHAT_REDIS_CLUSTER_NODES', def: '', parse: hostPorts, help: 'cluster profile: Redis Cluster seed nodes (host:port list); when set, Redis Cluster is used' },
  { key: 'redisMinReplicas', env: 'MQCHAT_REDIS_MIN_REPLICAS', def: '0', parse: int(0, 16), help: 'cluster profile: a chat publish is acknowledged only once this many Redis replicas have it (WAIT), so a Sentinel failover loses no acknowledged message; 0: the master\'s reply is enough. Not with Redis Cluster' },
  { key: 'redisReplicaWaitMs', env: 'MQCHAT_REDIS_REPLICA_WAIT_MS', def: '1000', parse: int(10, 60_000), help: 'cluster profile: how long a publish waits for MQCHAT_REDIS_MIN_REPLICAS; then it is not acknowledged, the device\'s connection is closed and the device sends it again' },
  { key: 'httpSendWaitMs', env: 'MQCHAT_HTTP_SEND_WAIT_MS', def: '5000', parse: int(100, 60_000), help: 'cluster profile: an HTTP send waits this long for the bridge worker to assign its seq; then it is answered 202 (queued: in the chat stream, the seq comes with the `ack` event)' },
  { key: 'mongoUrl', env: 'MQCHAT_MONGO_URL', def: 'mongodb://127.0.0.1:27017/mqchat', parse: mongoUrl, help: 'cluster profile: MongoDB (or a MongoDB-wire server) for history, directory and media records; the database is the URL path' },
  { key: 'streamPartitions', env: 'MQCHAT_STREAM_PARTITIONS', def: '16', parse: int(1, 4096), help: 'cluster profile: chat stream partitions (chats are hashed onto them; each has one bridge worker at a time). Fixed for the life of a cluster' },
  { key: 'emitterConcurrency', env: 'MQCHAT_EMITTER_CONCURRENCY', def: '1000', parse: int(1, 1_000_000), help: 'broker: messages the MQTT router (aedes and mqemitter-redis) processes at once' },
  { key: 'directoryAckTimeoutMs', env: 'MQCHAT_DIRECTORY_ACK_TIMEOUT_MS', def: '5000', parse: int(100, 600000), help: 'cluster profile: how long a directory change (membership, device revocation) waits for every node to apply it before the API answers' },
  { key: 'dataDir', env: 'MQCHAT_DATA_DIR', flag: 'data-dir', def: './data', parse: path, help: 'directory for databases and ports.json' },
  { key: 'host', env: 'MQCHAT_HOST', flag: 'host', def: '0.0.0.0', parse: text, help: 'address every listener binds to' },
  { key: 'mqttPort', env: 'MQCHAT_MQTT_PORT', flag: 'mqtt-port', def: '1883', parse: port, help: 'MQTT over TCP (0 = pick a free port)' },
  { key: 'wsPort', env: 'MQCHAT_WS_PORT', flag: 'ws-port', def: '8083', parse: port, help: 'MQTT over WebSocket (0 = pick a free port)' },
  { key: 'wsPath', env: 'MQCHAT_WS_PATH', def: '/mqtt', parse: wsPath, help: 'WebSocket path for MQTT' },
  { key: 'tlsCert', env: 'MQCHAT_TLS_CERT', def: '', parse: optionalFile, help: 'PEM certificate (chain) for the TLS listeners: MQTT over TLS, MQTT over WSS, HTTPS (and XMPP, unless MQCHAT_XMPP_TLS_CERT is set). Reloaded on SIGHUP. Empty: no TLS listeners' },
  { key: 'tlsKey', env: 'MQCHAT_TLS_KEY', def: '', parse: optionalFile, help: 'PEM private key of MQCHAT_TLS_CERT' },
  { key: 'mqttTlsPort', env: 'MQCHAT_MQTT_TLS_PORT', def: '8883', parse: port, help: 'MQTT over TLS, with MQCHAT_TLS_CERT (0 = pick a free port)' },
  { key: 'wssPort', env: 'MQCHAT_WSS_PORT', def: '8084', parse: port, help: 'MQTT over secure WebSocket (same path as MQCHAT_WS_PATH), with MQCHAT_TLS_CERT (0 = pick a free port)' },
  { key: 'httpsPort', env: 'MQCHAT_HTTPS_PORT', def: '3443', parse: port, help: 'HTTPS API and media, with MQCHAT_TLS_CERT (0 = pick a free port)' },
  { key: 'httpPort', env: 'MQCHAT_HTTP_PORT', flag: 'http-port', def: '3000', parse: port, help: 'HTTP API (0 = pick a free port)' },
  { key: 'mqttAccess', env: 'MQCHAT_MQTT_ACCESS', flag: 'mqtt-access', def: 'chat', parse: oneOf('chat', 'open'), help: 'chat: devices log in with their token and the chat ACL applies; open: DEVELOPMENT ONLY, any client may connect anonymously and use any topic, as a plain MQTT broker (chat over MQTT is then unavailable); local profile, loopback host only unless forced' },
  { key: 'openAccessForce', env: 'MQCHAT_OPEN_ACCESS_FORCE', def: 'false', parse: bool, help: 'let open MQTT access listen on a non-loopback MQCHAT_HOST (never do this on a network you do not control)' },
  { key: 'xmppEnabled', env: 'MQCHAT_XMPP_ENABLED', def: 'false', parse: bool, help: 'XMPP client listener: standard XMPP clients log in as devices (docs/protocol.md §6); broker role in the cluster profile' },
  { key: 'xmppPort', env: 'MQCHAT_XMPP_PORT', def: '5222', parse: port, help: 'XMPP client-to-server port (0 = pick a free port)' },
  { key: 'xmppWsPort', env: 'MQCHAT_XMPP_WS_PORT', def: '5280', parse: port, help: 'XMPP over WebSocket (RFC 7395) port, path /xmpp-websocket: wss with the XMPP certificate (plain ws only with MQCHAT_XMPP_ALLOW_PLAINTEXT); 0 = pick a free port' },
  { key: 'xmppDomain', env: 'MQCHAT_XMPP_DOMAIN', def: 'localhost', parse: xmppDomain, help: 'the XMPP domain: JIDs are <userId>@<domain>/<deviceId>' },
  { key: 'xmppTlsCert', env: 'MQCHAT_XMPP_TLS_CERT', def: '', parse: optionalFile, help: 'PEM certificate (chain) for XMPP STARTTLS' },
  { key: 'xmppTlsKey', env: 'MQCHAT_XMPP_TLS_KEY', def: '', parse: optionalFile, help: 'PEM private key for XMPP STARTTLS' },
  { key: 'xmppAllowPlaintext', env: 'MQCHAT_XMPP_ALLOW_PLAINTEXT', def: 'false', parse: bool, help: 'DEVELOPMENT ONLY: XMPP login without TLS; refused unless MQCHAT_HOST is loopback' },
  { key: 'xmppMaxStanzaBytes', env: 'MQCHAT_XMPP_MAX_STANZA_BYTES', def: '262144', parse: int(4096, 16_777_216), help: 'largest XMPP stanza accepted; a larger one ends the stream with policy-violation' },
  { key: 'xmppResumeSeconds', env: 'MQCHAT_XMPP_RESUME_SECONDS', def: '300', parse: int(0, 86_400), help: 'how long a broken XMPP stream with stream management (XEP-0198) may be resumed; its unacknowledged stanzas are kept meanwhile (0 = no resumption)' },
  { key: 'xmppStanzaRate', env: 'MQCHAT_XMPP_STANZA_RATE', def: '100', parse: int(1, 100000), help: 'sustained stanzas per second one XMPP connection may send, with bursts of 5 × that; a flood beyond it ends the stream with policy-violation (answers to the server\'s own stream-management ack requests are not counted; messages also count against MQCHAT_PUBLISH_RATE)' },
  { key: 'xmppMaxHeldEvents', env: 'MQCHAT_XMPP_MAX_HELD_EVENTS', def: '1000', parse: int(10, 1_000_000), help: 'events the gateway holds in memory for an XMPP resource that has not sent initial presence; past it they wait in the device\'s queue until it does' },
  { key: 'xmppAuthTimeoutSeconds', env: 'MQCHAT_XMPP_AUTH_TIMEOUT_SECONDS', def: '30', parse: int(1, 3600), help: 'an XMPP connection must sign in and bind a resource within this long (connection-timeout otherwise)' },
  { key: 'xmppIdleTimeoutSeconds', env: 'MQCHAT_XMPP_IDLE_TIMEOUT_SECONDS', def: '300', parse: int(10, 86400), help: 'a signed-in XMPP stream that sends nothing for half this long is pinged (XEP-0199); silent for this long, it ends with connection-timeout (resumable with stream management)' },
  { key: 'xmppMaxUnauthenticated', env: 'MQCHAT_XMPP_MAX_UNAUTHENTICATED', def: '1000', parse: int(1, 1_000_000), help: 'XMPP connections (TCP and WebSocket) not yet signed in and bound, at once; more are closed at once' },
  { key: 'xmppMaxUnauthenticatedPerAddress', env: 'MQCHAT_XMPP_MAX_UNAUTHENTICATED_PER_ADDRESS', def: '10', parse: int(1, 1_000_000), help: 'the same, per client address; not applied with MQCHAT_TRUST_PROXY (every connection then comes from the load balancer)' },
  { key: 'trustProxy', env: 'MQCHAT_TRUST_PROXY', def: '', parse: ipList, help: 'load balancers (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client address for per-address limits; empty: trust none' },
  { key: 'logLevel', env: 'MQCHAT_LOG_LEVEL', def: 'info', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), help: 'least severe log line written: fatal, error, warn, info, debug, trace, or silent for none' },
  { key: 'logFormat', env: 'MQCHAT_LOG_FORMAT', def: 'auto', parse: oneOf('auto', 'json', 'pretty'), help: 'auto: readable, coloured lines when standard output is a terminal, JSON lines (one object each, for log collectors) otherwise; json or pretty: always that' },
  { key: 'sqliteSynchronous', env: 'MQCHAT_SQLITE_SYNCHRONOUS', def: 'normal', parse: oneOf('normal', 'full'), help: 'normal: durable across process crashes; full: also across power loss (fsync per commit)' },
  { key: 'devReturnCodes', env: 'MQCHAT_DEV_RETURN_CODES', def: 'false', parse: bool, help: 'DEVELOPMENT ONLY: registration responses include the one-time code' },
  { key: 'codeWebhookUrl', env: 'MQCHAT_CODE_WEBHOOK_URL', def: '', parse: optionalUrl, help: 'POST {"phone","code","expires_in"} here to deliver one-time codes (an SMS gateway); empty: write them to the server log' },
  { key: 'codeWebhookSecret', env: 'MQCHAT_CODE_WEBHOOK_SECRET', def: '', parse: anyText, help: 'sent as "Authorization: Bearer <secret>" with each code webhook call' },
  { key: 'otpTtlSeconds', env: 'MQCHAT_OTP_TTL_SECONDS', def: '300', parse: int(30, 3600), help: 'lifetime of a one-time registration code' },
  { key: 'otpMaxAttempts', env: 'MQCHAT_OTP_MAX_ATTEMPTS', def: '5', parse: int(1, 100), help: 'wrong guesses before a code is void' },
  { key: 'otpRequestsPerPhonePerHour', env: 'MQCHAT_OTP_REQUESTS_PER_PHONE_PER_HOUR', def: '3', parse: int(1, 10000), help: 'codes sent to one phone number per hour (a request while a code is still valid sends none and costs nothing; a request refused for its address costs the number nothing)' },
  { key: 'otpRequestsPerIpPerHour', env: 'MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR', def: '30', parse: int(1, 100000), help: 'code requests and verifications per client address per hour' },
  { key: 'maxDevicesPerUser', env: 'MQCHAT_MAX_DEVICES_PER_USER', def: '4', parse: int(1, 64), help: 'active devices per user' },
  { key: 'maxGroupMembers', env: 'MQCHAT_MAX_GROUP_MEMBERS', def: '1024', parse: int(2, 100000), help: 'members per group' },
  { key: 'groupsPerHour', env: 'MQCHAT_GROUPS_PER_HOUR', def: '10', parse: int(1, 100000), help: 'groups one user may create per hour (429 rate_limited past it)' },
  { key: 'directChatsPerHour', env: 'MQCHAT_DIRECT_CHATS_PER_HOUR', def: '50', parse: int(1, 100000), help: 'new direct chats one user may open per hour (opening an existing one is free; 429 rate_limited past it)' },
  { key: 'phoneLookupsPerHour', env: 'MQCHAT_PHONE_LOOKUPS_PER_HOUR', def: '100', parse: int(1, 1000000), help: 'phone numbers outside a user\'s contact list that one user may look up per hour, registered or not: each named by phone in a chat, member list or block, or looked up alone with contact discovery (429 rate_limited past it)' },
  { key: 'phoneLookupsPerDay', env: 'MQCHAT_PHONE_LOOKUPS_PER_DAY', def: '100', parse: int(1, 1000000), help: 'the same, per day' },
  { key: 'contactsMax', env: 'MQCHAT_CONTACTS_MAX', def: '2000', parse: int(1, 100000), help: 'phone numbers in one user\'s contact list (contact discovery; 409 limit_reached past it)' },
  { key: 'contactSyncsPerHour', env: 'MQCHAT_CONTACT_SYNCS_PER_HOUR', def: '1', parse: int(1, 10000), help: 'full contact-list uploads one user may make per hour (429 rate_limited past it)' },
  { key: 'contactsNewPerDay', env: 'MQCHAT_CONTACTS_NEW_PER_DAY', def: '2000', parse: int(1, 1000000), help: 'numbers new to a user\'s contact list that full uploads may bring in per day: what one account can learn of who is registered (429 rate_limited past it)' },
  { key: 'discoveryAnswerMs', env: 'MQCHAT_DISCOVERY_ANSWER_MS', def: '200', parse: int(0, 60000), help: 'contact discovery answers no sooner than this after the request, so its timing tells nothing of which numbers are registered' },
  { key: 'maxMessageBytes', env: 'MQCHAT_MAX_MESSAGE_BYTES', def: '65536', parse: int(256, 16777216), help: 'largest chat envelope accepted (refused with too_large)' },
  { key: 'maxPacketBytes', env: 'MQCHAT_MAX_PACKET_BYTES', def: '262144', parse: int(1024, 268435455), help: 'largest MQTT packet; a larger one closes the connection' },
  { key: 'maxTopicLevels', env: 'MQCHAT_MAX_TOPIC_LEVELS', def: '16', parse: int(3, 100), help: 'topic levels accepted in PUBLISH/SUBSCRIBE' },
  { key: 'maxSubscriptions', env: 'MQCHAT_MQTT_MAX_SUBSCRIPTIONS', def: '5000', parse: int(3, 1000000), help: 'topic filters one MQTT client may hold at a time (its inbox, live topic and the presence it watches); a filter past it gets SUBACK 0x80' },
  { key: 'maxInflightInbound', env: 'MQCHAT_MAX_INFLIGHT_INBOUND', def: '100', parse: int(1, 65535), help: 'inbound QoS 2 messages a client may hold unreleased' },
  { key: 'publishRatePerSecond', env: 'MQCHAT_PUBLISH_RATE', def: '20', parse: int(1, 100000), help: 'sustained publishes per device per second' },
  { key: 'publishBurst', env: 'MQCHAT_PUBLISH_BURST', def: '60', parse: int(1, 1000000), help: 'publishes a device may burst above the sustained rate' },
  { key: 'maxQueue', env: 'MQCHAT_MAX_QUEUE', def: '10000', parse: int(10, 10_000_000), help: "inbox events that are not chat messages (receipts, chat changes, refusals; chat messages are owed from history and never dropped) kept for a device: local profile, its event log, past which the oldest go and the device is told to sync; cluster, the most sent from its session queue on one connection (the rest on the next)" },
  { key: 'inboxWindow', env: 'MQCHAT_INBOX_WINDOW', def: '100', parse: int(1, 65000), help: 'chat messages one connection may have unacknowledged on its inbox; the rest wait their turn' },
  { key: 'inboxFlushMs', env: 'MQCHAT_INBOX_FLUSH_MS', def: '250', parse: int(10, 60000), help: 'how often acknowledged inbox positions (and in the local profile presence changes) are written (a crash repeats at most this much delivery, never loses a message)' },
  { key: 'inboxCacheMessages', env: 'MQCHAT_INBOX_CACHE_MESSAGES', def: '50000', parse: int(0, 10_000_000), help: 'recent messages kept in memory (per broker in the cluster) for devices catching up (older ones are read from the cluster\'s recent cache or from history)' },
  { key: 'clusterRecentPerChat', env: 'MQCHAT_CLUSTER_RECENT_PER_CHAT', def: '1000', parse: int(0, 100_000), help: 'cluster profile: recent messages of each chat kept in Redis for devices catching up on any broker (older ones are read from MongoDB)' },
  { key: 'clusterRecentTtlHours', env: 'MQCHAT_CLUSTER_RECENT_TTL_HOURS', def: '24', parse: int(1, 8760), help: 'cluster profile: a chat\'s recent messages leave Redis this long after its last message' },
  { key: 'retentionDays', env: 'MQCHAT_RETENTION_DAYS', def: '30', parse: int(1, 36500), help: 'history older than this is purged' },
  { key: 'purgeIntervalMinutes', env: 'MQCHAT_PURGE_INTERVAL_MINUTES', def: '60', parse: int(1, 10080), help: 'how often the retention purge runs (also once at start)' },
  { key: 'disappearingTimers', env: 'MQCHAT_DISAPPEARING_TIMERS', def: '86400,604800,7776000', parse: ints(1, 31_536_000), help: 'the disappearing-messages timers a chat may be set to, in seconds, comma-separated (default 24 h, 7 d, 90 d)' },
  { key: 'exportsPerHour', env: 'MQCHAT_EXPORTS_PER_HOUR', def: '2', parse: int(1, 1000), help: 'account exports (GET /v1/me/export) one user may make per hour (429 rate_limited past it)' },
  { key: 'expirySweepSeconds', env: 'MQCHAT_EXPIRY_SWEEP_SECONDS', def: '60', parse: int(1, 3600), help: 'how often expired disappearing messages are deleted from the stores and caches (they are never read once expired)' },
  { key: 'editWindowSeconds', env: 'MQCHAT_EDIT_WINDOW_SECONDS', def: '900', parse: int(0, 31_536_000), help: 'how long after sending the sender may edit a message' },
  { key: 'deleteWindowSeconds', env: 'MQCHAT_DELETE_WINDOW_SECONDS', def: '172800', parse: int(0, 31_536_000), help: 'how long after sending the sender may delete a message for everyone (group admins: any time)' },
  { key: 'forwardMaxChats', env: 'MQCHAT_FORWARD_MAX_CHATS', def: '5', parse: int(1, 1000), help: 'the most chats one message may be forwarded to at once' },
  { key: 'mediaBackend', env: 'MQCHAT_MEDIA_BACKEND', def: 'local', parse: oneOf('local', 's3'), help: 'where media bytes live: local (files under the data directory) or s3' },
  { key: 's3Endpoint', env: 'MQCHAT_S3_ENDPOINT', def: '', parse: optionalUrl, help: 'S3 endpoint URL (MinIO, …); empty: AWS for the region' },
  { key: 's3PublicEndpoint', env: 'MQCHAT_S3_PUBLIC_ENDPOINT', def: '', parse: optionalUrl, help: 'the S3 endpoint as clients reach it (behind a load balancer or another host name), used in presigned upload and download URLs; empty: MQCHAT_S3_ENDPOINT' },
  { key: 's3Region', env: 'MQCHAT_S3_REGION', def: 'us-east-1', parse: text, help: 'S3 region' },
  { key: 's3Bucket', env: 'MQCHAT_S3_BUCKET', def: 'mqchat-media', parse: text, help: 'S3 bucket for media (created if missing)' },
  { key: 's3ForcePathStyle', env: 'MQCHAT_S3_FORCE_PATH_STYLE', def: 'false', parse: bool, help: 'path-style S3 URLs (MinIO and most S3-compatible servers need true)' },
  { key: 's3AccessKeyId', env: 'MQCHAT_S3_ACCESS_KEY_ID', def: '', parse: anyText, help: 'S3 access key; empty: the SDK default credential chain' },
  { key: 's3SecretAccessKey', env: 'MQCHAT_S3_SECRET_ACCESS_KEY', def: '', parse: anyText, help: 'S3 secret key' },
  { key: 'mediaRetentionDays', env: 'MQCHAT_MEDIA_RETENTION_DAYS', def: '30', parse: int(1, 36500), help: 'media not used (uploaded, sent or deduplicated) for this long is deleted by the lifecycle job' },
  { key: 'mediaUnreferencedHours', env: 'MQCHAT_MEDIA_UNREFERENCED_HOURS', def: '24', parse: int(1, 8760), help: 'an upload never sent in a chat within this long is deleted' },
  { key: 'mediaSecret', env: 'MQCHAT_MEDIA_SECRET', def: '', parse: anyText, help: 'HMAC key for local media URLs; empty: one is generated and kept in <data>/media.key' },
  { key: 'mediaMaxImageBytes', env: 'MQCHAT_MEDIA_MAX_IMAGE_BYTES', def: '16777216', parse: int(1, 2 ** 40), help: 'largest image upload' },
  { key: 'mediaMaxAudioBytes', env: 'MQCHAT_MEDIA_MAX_AUDIO_BYTES', def: '16777216', parse: int(1, 2 ** 40), help: 'largest audio upload' },
  { key: 'mediaMaxVideoBytes', env: 'MQCHAT_MEDIA_MAX_VIDEO_BYTES', def: '2147483648', parse: int(1, 2 ** 40), help: 'largest video upload' },
  { key: 'mediaMaxDocumentBytes', env: 'MQCHAT_MEDIA_MAX_DOCUMENT_BYTES', def: '2147483648', parse: int(1, 2 ** 40), help: 'largest document upload (any other content type)' },
  { key: 'mediaQuotaBytesPerHour', env: 'MQCHAT_MEDIA_QUOTA_BYTES_PER_HOUR', def: '4294967296', parse: int(1, 2 ** 50), help: 'bytes a user may start uploading per hour' },
  { key: 'mediaUploadUrlSeconds', env: 'MQCHAT_MEDIA_UPLOAD_URL_SECONDS', def: '300', parse: int(5, 86400), help: 'lifetime of an upload URL' },
  { key: 'mediaDownloadUrlSeconds', env: 'MQCHAT_MEDIA_DOWNLOAD_URL_SECONDS', def: '600', parse: int(5, 86400), help: 'lifetime of a download URL' },
  { key: 'typingIntervalMs', env: 'MQCHAT_TYPING_INTERVAL_MS', def: '3000', parse: int(100, 60000), help: 'typing is forwarded at most once per this interval per (user, chat)' },
  { key: 'presenceCoalesceMs', env: 'MQCHAT_PRESENCE_COALESCE_MS', def: '3000', parse: int(0, 600000), help: 'presence changes of one user are published at least this far apart (flapping is coalesced)' },
  { key: 'e2eeMaxPrekeys', env: 'MQCHAT_E2EE_MAX_PREKEYS', def: '100', parse: int(1, 10000), help: 'end-to-end encryption: one-time prekeys a device may hold in the key directory (an upload past it: 409 limit_reached)' },
  { key: 'e2eePrekeysLow', env: 'MQCHAT_E2EE_PREKEYS_LOW', def: '10', parse: int(0, 10000), help: 'end-to-end encryption: a device left with fewer one-time prekeys after a claim gets a `keys` inbox event asking for more' },
  { key: 'e2eeClaimsPer10Minutes', env: 'MQCHAT_E2EE_CLAIMS_PER_10_MINUTES', def: '20', parse: int(1, 100000), help: 'end-to-end encryption: key claims one user may make of another user\'s devices per 10 minutes (429 rate_limited past it)' },
  { key: 'pushCoalesceSeconds', env: 'MQCHAT_PUSH_COALESCE_SECONDS', def: '30', parse: int(0, 86400), help: 'push: a device away is pushed at most once per chat in this many seconds (the first message pushes at once; 0: every message)' },
  { key: 'pushQueue', env: 'MQCHAT_PUSH_QUEUE', def: '10000', parse: int(1, 10_000_000), help: 'push: pushes waiting to be sent or retried, at most; past it new ones are dropped and counted (messages are never held up by pushes)' },
  { key: 'pushConcurrency', env: 'MQCHAT_PUSH_CONCURRENCY', def: '16', parse: int(1, 1000), help: 'push: requests to push providers at once' },
  { key: 'pushMaxAttempts', env: 'MQCHAT_PUSH_MAX_ATTEMPTS', def: '5', parse: int(1, 20), help: 'push: tries per push when a provider answers 429 or 5xx (backoff doubling from 1 s, or its Retry-After, at most 5 minutes between tries)' },
  { key: 'pushMaxTargetsPerDevice', env: 'MQCHAT_PUSH_MAX_TARGETS_PER_DEVICE', def: '5', parse: int(1, 100), help: 'push: targets one device may register' },
  { key: 'pushAllowInsecureEndpoints', env: 'MQCHAT_PUSH_ALLOW_INSECURE_ENDPOINTS', def: 'false', parse: bool, help: 'DEVELOPMENT ONLY: Web Push and UnifiedPush endpoints over plain http, and on loopback or private addresses (otherwise refused: a device must not point the server at your network)' },
  { key: 'pushFcmServiceAccount', env: 'MQCHAT_PUSH_FCM_SERVICE_ACCOUNT', def: '', parse: optionalFile, help: 'push: the Firebase service account key (JSON file: project_id, client_email, private_key, token_uri); empty: no FCM' },
  { key: 'pushFcmUrl', env: 'MQCHAT_PUSH_FCM_URL', def: 'https://fcm.googleapis.com', parse: optionalUrl, help: 'push: the FCM HTTP v1 API (projects/<id>/messages:send under it); the OAuth token comes from the key\'s token_uri' },
  { key: 'pushApnsKey', env: 'MQCHAT_PUSH_APNS_KEY', def: '', parse: optionalFile, help: 'push: the APNs token-based authentication key (.p8, ES256); with MQCHAT_PUSH_APNS_KEY_ID and MQCHAT_PUSH_APNS_TEAM_ID; empty: no APNs' },
  { key: 'pushApnsKeyId', env: 'MQCHAT_PUSH_APNS_KEY_ID', def: '', parse: anyText, help: 'push: the APNs key\'s id (10 characters)' },
  { key: 'pushApnsTeamId', env: 'MQCHAT_PUSH_APNS_TEAM_ID', def: '', parse: anyText, help: 'push: the Apple developer team id (10 characters)' },
  { key: 'pushApnsUrl', env: 'MQCHAT_PUSH_APNS_URL', def: '', parse: optionalUrl, help: 'push: the APNs server for every target; empty: Apple\'s, https://api.push.apple.com or https://api.sandbox.push.apple.com by the target\'s environment' },
  { key: 'pushVapidPublicKey', env: 'MQCHAT_PUSH_VAPID_PUBLIC_KEY', def: '', parse: anyText, help: 'push: the VAPID public key (base64url, P-256) for Web Push, shown to clients in GET /v1/info; with MQCHAT_PUSH_VAPID_PRIVATE_KEY and MQCHAT_PUSH_VAPID_SUBJECT; empty: no Web Push (`npx web-push generate-vapid-keys` makes a pair)' },
  { key: 'pushVapidPrivateKey', env: 'MQCHAT_PUSH_VAPID_PRIVATE_KEY', def: '', parse: anyText, help: 'push: the VAPID private key (base64url)' },
  { key: 'pushVapidSubject', env: 'MQCHAT_PUSH_VAPID_SUBJECT', def: '', parse: anyText, help: 'push: the VAPID subject, a mailto: or https: URL where push services can reach the operator' },
  { key: 'pushUnifiedPush', env: 'MQCHAT_PUSH_UNIFIEDPUSH', def: 'true', parse: bool, help: 'push: UnifiedPush targets (RFC 8030 endpoints of the device\'s distributor, such as ntfy; no credentials needed)' },
  { key: 'maxConnections', env: 'MQCHAT_MQTT_MAX_CONNECTIONS', def: '100000', parse: int(1, 10_000_000), help: 'MQTT connections (TCP and WebSocket) signed in at once on this server; a CONNECT past it is refused: CONNACK 0x89 Server busy (MQTT 5) or return code 3 Server unavailable (3.1.1), and the client retries later. A device taking over its own session is always let in' },
  { key: 'maxUnauthenticated', env: 'MQCHAT_MQTT_MAX_UNAUTHENTICATED', def: '10000', parse: int(1, 10_000_000), help: 'MQTT connections (TCP and WebSocket) that have not completed CONNECT, at once; more are closed at once' },
  { key: 'maxUnauthenticatedPerAddress', env: 'MQCHAT_MQTT_MAX_UNAUTHENTICATED_PER_ADDRESS', def: '100', parse: int(1, 10_000_000), help: 'the same, per client address (a CONNECT takes one round trip, so a busy NAT needs few; MQCHAT_CONNECT_TIMEOUT_MS bounds a slow one); not applied with MQCHAT_TRUST_PROXY (every connection then comes from the load balancer)' },
  { key: 'connectTimeoutMs', env: 'MQCHAT_CONNECT_TIMEOUT_MS', def: '30000', parse: int(1000, 600000), help: 'time a socket has to send CONNECT' },
  { key: 'drainTimeoutMs', env: 'MQCHAT_DRAIN_TIMEOUT_MS', def: '60000', parse: int(0, 3600000), help: 'a client that does not drain its socket for this long is dropped (0 = never)' },
  { key: 'keepaliveLimitSeconds', env: 'MQCHAT_KEEPALIVE_LIMIT_SECONDS', def: '0', parse: int(0, 65535), help: 'largest keepalive a client may ask for (0 = any)' },
  { key: 'shutdownTimeoutMs', env: 'MQCHAT_SHUTDOWN_TIMEOUT_MS', def: '10000', parse: int(100, 600000), help: 'graceful shutdown budget on SIGTERM' },
  { key: 'httpBodyTimeoutSeconds', env: 'MQCHAT_HTTP_BODY_TIMEOUT_SECONDS', def: '15', parse: int(1, 600), help: 'HTTP: time a client has to send a request\'s headers, and again its body (media uploads excepted); past it 408 request_timeout and the connection is closed' },
  { key: 'httpRequestTimeoutSeconds', env: 'MQCHAT_HTTP_REQUEST_TIMEOUT_SECONDS', def: '900', parse: int(1, 86400), help: 'HTTP: the longest a whole request may take to arrive, a media upload included' },
  { key: 'httpMaxConnections', env: 'MQCHAT_HTTP_MAX_CONNECTIONS', def: '10000', parse: int(1, 10_000_000), help: 'HTTP: open connections at once; more are closed at once' },
  { key: 'httpMaxConnectionsPerAddress', env: 'MQCHAT_HTTP_MAX_CONNECTIONS_PER_ADDRESS', def: '256', parse: int(1, 10_000_000), help: 'HTTP: open connections from one client address (not applied with MQCHAT_TRUST_PROXY: the load balancer should bound them)' },
  { key: 'publicUrl', env: 'MQCHAT_PUBLIC_URL', def: '', parse: optionalUrl, help: 'the HTTP API as clients reach it (https://chat.example.com), the base of media URLs of the local backend; empty: http://<MQCHAT_HOST>:<HTTP port> (127.0.0.1 when MQCHAT_HOST is every address). Never taken from a request\'s Host header' },
  { key: 'adminToken', env: 'MQCHAT_ADMIN_TOKEN', def: '', parse: (raw) => raw === '' || raw.length >= 32 ? raw : new Error('must be at least 32 characters (a random secret; openssl rand -hex 32)'), help: 'the operator\'s token for mqchat admin; empty (the default): no admin listener' },
  { key: 'adminPort', env: 'MQCHAT_ADMIN_PORT', def: '3100', parse: port, help: 'the admin listener\'s port, on 127.0.0.1 only (with MQCHAT_ADMIN_TOKEN; API nodes in the cluster)' },
  { key: 'metricsToken', env: 'MQCHAT_METRICS_TOKEN', def: '', parse: anyText, help: 'GET /metrics needs "Authorization: Bearer <token>"; empty: /metrics answers only connections from a loopback address' },
  { key: 'httpIdleTimeoutSeconds', env: 'MQCHAT_HTTP_IDLE_TIMEOUT_SECONDS', def: '60', parse: int(1, 3600), help: 'HTTP: a connection that carries nothing for this long is closed (an idle keep-alive connection: at most 30 s)' }
]

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super('invalid configuration:\n' + problems.map((p) => `  - ${p}`).join('\n'))
  }
}

/** Builds the configuration from the environment, with `flags` (from `mqchat serve`) taking precedence. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env, flags: Record<string, string | undefined> = {}): Config {
  const problems: string[] = []
  const out: Record<string, unknown> = {}
  for (const opt of OPTIONS) {
    const fromFlag = opt.flag !== undefined ? flags[opt.flag] : undefined
    const raw = fromFlag ?? env[opt.env] ?? opt.def
    const source = fromFlag !== undefined ? `--${opt.flag}` : env[opt.env] !== undefined ? opt.env : `${opt.env} (default)`
    const value = opt.parse(raw)
    if (value instanceof Error) problems.push(`${source}: ${value.message}`)
    else out[opt.key] = value
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('MQCHAT_') && !OPTIONS.some((o) => o.env === name) && !CLIENT_ENV.includes(name)) {
      problems.push(`${name}: unknown setting (known: ${OPTIONS.map((o) => o.env).join(', ')})`)
    }
  }
  if (problems.length === 0) problems.push(...crossChecks(out as unknown as Config))
  if (problems.length > 0) throw new ConfigError(problems)
  return out as unknown as Config
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/

/** Whether a host name or a peer address (also IPv4-mapped IPv6, as sockets report it) is this machine. */
export function isLoopback (hostOrAddress: string | undefined): boolean {
  return hostOrAddress !== undefined && LOOPBACK.test(hostOrAddress.replace(/^::ffff:/, ''))
}

/** Settings that are valid alone but not together. */
function crossChecks (c: Config): string[] {
  const problems: string[] = []
  if (c.mqttAccess === 'open') {
    if (c.profile !== 'local') problems.push('MQCHAT_MQTT_ACCESS: open access is for the local profile only')
    else if (!isLoopback(c.host) && !c.openAccessForce) {
      problems.push(`MQCHAT_MQTT_ACCESS: open access lets anyone use the broker; refusing to listen on non-loopback host "${c.host}" (use --host 127.0.0.1, or set MQCHAT_OPEN_ACCESS_FORCE=true)`)
    }
  }
  if (c.redisMinReplicas > 0 && c.redisClusterNodes !== '') problems.push('MQCHAT_REDIS_MIN_REPLICAS: not supported with Redis Cluster (MQCHAT_REDIS_CLUSTER_NODES) yet: a WAIT must reach the master that took the write, which the client cannot choose there')
  if ((c.tlsCert === '') !== (c.tlsKey === '')) problems.push('MQCHAT_TLS_CERT and MQCHAT_TLS_KEY: set both or neither')
  if (c.xmppEnabled) {
    if ((c.xmppTlsCert === '') !== (c.xmppTlsKey === '')) problems.push('MQCHAT_XMPP_TLS_CERT and MQCHAT_XMPP_TLS_KEY: set both or neither')
    if (c.xmppTlsCert === '' && c.tlsCert === '' && !c.xmppAllowPlaintext) problems.push('MQCHAT_XMPP_ENABLED: XMPP needs a certificate for STARTTLS (MQCHAT_TLS_CERT and MQCHAT_TLS_KEY, or MQCHAT_XMPP_TLS_CERT and MQCHAT_XMPP_TLS_KEY); for loopback development only, MQCHAT_XMPP_ALLOW_PLAINTEXT=true')
    if (c.xmppAllowPlaintext && !isLoopback(c.host)) problems.push(`MQCHAT_XMPP_ALLOW_PLAINTEXT: plaintext XMPP logins would send device tokens in the clear; refusing on non-loopback host "${c.host}"`)
  }
  const apns = [c.pushApnsKey, c.pushApnsKeyId, c.pushApnsTeamId]
  if (apns.some((x) => x !== '') && apns.some((x) => x === '')) problems.push('MQCHAT_PUSH_APNS_KEY, MQCHAT_PUSH_APNS_KEY_ID and MQCHAT_PUSH_APNS_TEAM_ID: set all three or none')
  const vapid = [c.pushVapidPublicKey, c.pushVapidPrivateKey, c.pushVapidSubject]
  if (vapid.some((x) => x !== '') && vapid.some((x) => x === '')) problems.push('MQCHAT_PUSH_VAPID_PUBLIC_KEY, MQCHAT_PUSH_VAPID_PRIVATE_KEY and MQCHAT_PUSH_VAPID_SUBJECT: set all three or none')
  if (c.pushVapidSubject !== '' && !/^(mailto:|https:\/\/)/.test(c.pushVapidSubject)) problems.push(`MQCHAT_PUSH_VAPID_SUBJECT: must be a mailto: or https: URL, got "${c.pushVapidSubject}"`)
  if (c.pushVapidPublicKey !== '' && Buffer.from(c.pushVapidPublicKey, 'base64url').length !== 65) problems.push('MQCHAT_PUSH_VAPID_PUBLIC_KEY: must be a base64url P-256 public key (65 bytes)')
  if (c.pushVapidPrivateKey !== '' && Buffer.from(c.pushVapidPrivateKey, 'base64url').length !== 32) problems.push('MQCHAT_PUSH_VAPID_PRIVATE_KEY: must be a base64url P-256 private key (32 bytes)')
  if (c.pushAllowInsecureEndpoints && !isLoopback(c.host)) problems.push(`MQCHAT_PUSH_ALLOW_INSECURE_ENDPOINTS: would let devices point the server at your own network; refusing on non-loopback host "${c.host}"`)
  return problems
}

/** Variables read by the CLI client, not the server; accepted without complaint. */
export const CLIENT_ENV = ['MQCHAT_CLI_HOME', 'MQCHAT_CLI_PROFILE', 'MQCHAT_SERVER']

export function configTable (): string {
  return OPTIONS.map((o) => `| \`${o.env}\` | ${o.flag ? `\`--${o.flag}\`` : ''} | ${o.def === '' ? '(empty)' : `\`${o.def}\``} | ${o.help} |`).join('\n')
}
