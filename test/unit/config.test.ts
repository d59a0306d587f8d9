import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, loadConfig } from '../../lib/config.js'

test('defaults: the documented ports and data directory', () => {
  const c = loadConfig({})
  assert.equal(c.mqttPort, 1883)
  assert.equal(c.wsPort, 8083)
  assert.equal(c.wsPath, '/mqtt')
  assert.equal(c.httpPort, 3000)
  assert.match(c.dataDir, /\/data$/)
  assert.equal(c.devReturnCodes, false)
  assert.equal(c.maxDevicesPerUser, 4)
  assert.equal(c.maxGroupMembers, 1024)
})

test('flags win over the environment', () => {
  const c = loadConfig({ MQCHAT_MQTT_PORT: '1000' }, { 'mqtt-port': '0', 'data-dir': '/tmp/x' })
  assert.equal(c.mqttPort, 0)
  assert.equal(c.dataDir, '/tmp/x')
})

test('every bad value is reported, one line each, naming its source', () => {
  try {
    loadConfig({ MQCHAT_MQTT_PORT: '70000', MQCHAT_HTTP_PORT: 'x', MQCHAT_LOG_LEVEL: 'loud', MQCHAT_WS_PATH: 'mqtt', MQCHAT_DEV_RETURN_CODES: 'maybe', MQCHAT_PROFILE: 'cloud', MQCHAT_REDIS_URL: 'http://x', MQCHAT_REDIS_SENTINELS: 'a:1,b', MQCHAT_TRUST_PROXY: '10.0.0.0/8,10.0.0.1/33,lb', MQCHAT_TYPO: '1' })
    assert.fail('should throw')
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.problems.length, 10)
    assert.match(err.message, /MQCHAT_MQTT_PORT: must be between 0 and 65535, got 70000/)
    assert.match(err.message, /MQCHAT_HTTP_PORT: must be a whole number, got "x"/)
    assert.match(err.message, /MQCHAT_LOG_LEVEL: must be one of/)
    assert.match(err.message, /MQCHAT_WS_PATH: must start with "\/"/)
    assert.match(err.message, /MQCHAT_DEV_RETURN_CODES: must be true or false/)
    assert.match(err.message, /MQCHAT_PROFILE: must be one of local, cluster, got "cloud"/)
    assert.match(err.message, /MQCHAT_REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/)
    assert.match(err.message, /MQCHAT_REDIS_SENTINELS: must be a comma-separated host:port list, got "b"/)
    assert.match(err.message, /MQCHAT_TRUST_PROXY: must be a comma-separated list of IP addresses or CIDR ranges, got "10.0.0.1\/33,lb"/)
    assert.match(err.message, /MQCHAT_TYPO: unknown setting/)
  }
})

test('CLI client variables are not server settings but are not errors either', () => {
  assert.doesNotThrow(() => loadConfig({ MQCHAT_CLI_HOME: '/x', MQCHAT_SERVER: 'http://h', MQCHAT_CLI_PROFILE: 'p' }))
})

test('open MQTT access: local profile and loopback only, unless forced', () => {
  assert.equal(loadConfig({ MQCHAT_MQTT_ACCESS: 'open', MQCHAT_HOST: '127.0.0.1' }).mqttAccess, 'open')
  assert.equal(loadConfig({}).mqttAccess, 'chat', 'the chat ACL by default')
  assert.throws(() => loadConfig({ MQCHAT_MQTT_ACCESS: 'open' }), /MQCHAT_MQTT_ACCESS: open access lets anyone use the broker; refusing to listen on non-loopback host "0.0.0.0"/)
  assert.equal(loadConfig({ MQCHAT_MQTT_ACCESS: 'open', MQCHAT_OPEN_ACCESS_FORCE: 'true' }).host, '0.0.0.0')
  assert.throws(() => loadConfig({ MQCHAT_MQTT_ACCESS: 'open', MQCHAT_HOST: '127.0.0.1', MQCHAT_PROFILE: 'cluster' }), /open access is for the local profile only/)
  assert.throws(() => loadConfig({}, { 'mqtt-access': 'anything' }), /--mqtt-access: must be one of chat, open/)
})

test('XMPP: off by default; needs a certificate, or plaintext on loopback only; a missing file is named', () => {
  assert.equal(loadConfig({}).xmppEnabled, false)
  assert.throws(() => loadConfig({ MQCHAT_XMPP_ENABLED: 'true' }), /MQCHAT_XMPP_ENABLED: XMPP needs a certificate for STARTTLS/)
  assert.throws(() => loadConfig({ MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true' }), /MQCHAT_XMPP_ALLOW_PLAINTEXT: plaintext XMPP logins would send device tokens in the clear; refusing on non-loopback host "0.0.0.0"/)
  assert.equal(loadConfig({ MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_ALLOW_PLAINTEXT: 'true', MQCHAT_HOST: '127.0.0.1' }).xmppAllowPlaintext, true)
  assert.throws(() => loadConfig({ MQCHAT_XMPP_TLS_CERT: '/nonexistent/cert.pem' }), /MQCHAT_XMPP_TLS_CERT: no such file: "\/nonexistent\/cert.pem"/)
  assert.throws(() => loadConfig({ MQCHAT_XMPP_DOMAIN: 'not a domain' }), /MQCHAT_XMPP_DOMAIN: must be a domain name/)
})

test('plaintext listeners on a non-loopback address are warned about at start-up, unless a trusted proxy is in front', async () => {
  const { warnPlaintext } = await import('../../server/domain.js')
  const pino = (await import('pino')).default
  const warned = (env: Record<string, string>): string[] => {
    const lines: string[] = []
    const log = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l) } })
    warnPlaintext(loadConfig(env), log, { mqtt: 1883, ws: 8083, http: 3000, xmpp: 0, xmppWs: 0, mqttTls: 8883, wss: 8084, https: 3443 })
    return lines
  }
  assert.equal(warned({ MQCHAT_HOST: '127.0.0.1' }).length, 0)
  assert.equal(warned({ MQCHAT_HOST: '::1' }).length, 0)
  const [line] = warned({ MQCHAT_HOST: '0.0.0.0' })
  assert.match(line ?? '', /plaintext listeners on 0\.0\.0\.0 \(MQTT 1883, MQTT over WebSocket 8083, HTTP 3000\)/)
  assert.equal(warned({ MQCHAT_HOST: '0.0.0.0', MQCHAT_TRUST_PROXY: '10.0.0.0/8' }).length, 0)
})

test('TLS: the certificate and key come together; XMPP may use the server certificate', () => {
  assert.throws(() => loadConfig({ MQCHAT_TLS_CERT: '/etc/hostname' }), /MQCHAT_TLS_CERT and MQCHAT_TLS_KEY: set both or neither/)
  const c = loadConfig({ MQCHAT_TLS_CERT: '/etc/hostname', MQCHAT_TLS_KEY: '/etc/hostname', MQCHAT_XMPP_ENABLED: 'true', MQCHAT_XMPP_DOMAIN: 'example.com' })
  assert.equal(c.mqttTlsPort, 8883)
  assert.equal(c.wssPort, 8084)
  assert.equal(c.httpsPort, 3443)
})

test('Redis replica wait: a number of replicas and a bound; refused with Redis Cluster', () => {
  const c = loadConfig({ MQCHAT_PROFILE: 'cluster', MQCHAT_REDIS_SENTINELS: '127.0.0.1:26379', MQCHAT_REDIS_MIN_REPLICAS: '1', MQCHAT_REDIS_REPLICA_WAIT_MS: '250' })
  assert.equal(c.redisMinReplicas, 1)
  assert.equal(c.redisReplicaWaitMs, 250)
  assert.equal(loadConfig({}).redisMinReplicas, 0)
  assert.throws(() => loadConfig({ MQCHAT_REDIS_MIN_REPLICAS: '-1' }), /MQCHAT_REDIS_MIN_REPLICAS/)
  assert.throws(() => loadConfig({ MQCHAT_REDIS_REPLICA_WAIT_MS: '0' }), /MQCHAT_REDIS_REPLICA_WAIT_MS/)
  assert.throws(() => loadConfig({ MQCHAT_REDIS_CLUSTER_NODES: '127.0.0.1:7000', MQCHAT_REDIS_MIN_REPLICAS: '1' }), /MQCHAT_REDIS_MIN_REPLICAS: not supported with Redis Cluster/)
})
