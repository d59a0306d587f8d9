// compose/: no Docker engine runs here, so the production topology is checked
// statically: every compose file against the Compose Specification's JSON
// schema, and the services, ports and environment against mqchat's own
// configuration (lib/config.ts), the HAProxy configuration and the Dockerfile.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BlockList, isIP } from 'node:net'
import { createSecureContext } from 'node:tls'
import { parse } from 'yaml'
import { Ajv } from 'ajv'
import { loadConfig, type Config } from '../../lib/config.js'
import { selfSignedCert } from '../helpers/tls.js'

// Compiled tests run from dist/test/unit; the sources are three levels up.
const root = resolve(import.meta.dirname, '../../..')
const composeDir = join(root, 'compose')
const schemaFile = resolve(root, '../shared/compose-schema/compose-spec.json')

type Service = {
  image?: string
  build?: unknown
  command?: string[]
  environment?: Record<string, string | number | boolean | null>
  ports?: string[]
  networks?: string[] | Record<string, { ipv4_address?: string } | null>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  volumes?: string[]
}
type Compose = { services: Record<string, Service>, networks?: Record<string, { ipam?: { config?: Array<{ subnet: string }> } }> }

const composeFiles = (): string[] => readdirSync(composeDir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(composeDir, f))
const load = (file: string): unknown => parse(readFileSync(file, 'utf8'), { merge: true })

function validator (): (doc: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strict: false })
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>
  // It names draft-07 by an https URL ajv does not know under that name; ajv's default dialect is draft-07.
  assert.match(String(schema.$schema), /draft-07/)
  delete schema.$schema
  const validate = ajv.compile(schema)
  return (doc) => validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`)
}

/** The variables of compose/.env.example, as an operator's .env would set them. */
function dotEnv (): Record<string, string> {
  const vars: Record<string, string> = {}
  for (const line of readFileSync(join(composeDir, '.env.example'), 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (m) vars[m[1] as string] = m[2] as string
  }
  return vars
}

/** Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$. A required variable missing is an error. */
function interpolate (value: string, vars: Record<string, string>, missing: Set<string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z0-9_]+)(?::([-?])([^}]*))?\}/g, (all, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (all === '$$') return '$'
    const v = vars[name as string]
    if (v !== undefined && v !== '') return v
    if (op === '-') return arg ?? ''
    if (op === '?') missing.add(name as string)
    return ''
  })
}

function resolved (): { compose: Compose, missing: Set<string> } {
  const vars = dotEnv()
  const missing = new Set<string>()
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return interpolate(x, vars, missing)
    if (Array.isArray(x)) return x.map(walk)
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]))
    return x
  }
  return { compose: walk(load(join(composeDir, 'docker-compose.yml'))) as Compose, missing }
}

/**
 * What an operator puts in compose/certs (compose/README.md): one PEM with a
 * certificate and its key. Not in the repository, so a self-signed stand-in
 * is made here, once, and removed at exit.
 */
let standIn: string | undefined
function standInCerts (): string {
  if (standIn !== undefined) return standIn
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-compose-certs-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const { cert, key } = selfSignedCert(dir, 'chat.example.com')
  writeFileSync(join(dir, 'mqchat.pem'), readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'))
  return (standIn = dir)
}

/**
 * A container path as the test can read it: a file under a service's
 * `./certs` mount is taken from the stand-in certs directory. Any other
 * path stays as it is (and loadConfig refuses a file that is not there).
 */
function hostPath (s: Service, value: string): string {
  for (const v of s.volumes ?? []) {
    const [source, target] = v.split(':') as [string, string]
    if (source === './certs' && value.startsWith(`${target}/`)) return join(standInCerts(), value.slice(target.length + 1))
  }
  return value
}

const mqchatServices = (c: Compose): Array<[string, Service, Config]> =>
  Object.entries(c.services)
    .filter(([, s]) => s.environment?.MQCHAT_PROFILE !== undefined)
    .map(([name, s]) => {
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, hostPath(s, String(v ?? ''))]))
      return [name, s, loadConfig(env)]
    })

const hostOf = (url: string): string => new URL(url).hostname

/** The indented lines under `<kind> <name>` in haproxy.cfg (a frontend or backend section). */
function haproxySection (haproxy: string, kind: 'frontend' | 'backend', name: string): string {
  const m = new RegExp(`^${kind} ${name}\\n((?:[ \\t].*\\n?|\\n)*)`, 'm').exec(haproxy)
  assert.ok(m, `haproxy.cfg has ${kind} ${name}`)
  return m[1] as string
}

/** The host:port of each `server` line of a backend. */
const haproxyServers = (haproxy: string, backend: string): string[] =>
  haproxySection(haproxy, 'backend', backend).split('\n').map((l) => l.trim()).filter((l) => l.startsWith('server ')).map((l) => l.split(/\s+/)[2] as string)

test('every compose file is valid under the Compose Specification schema', () => {
  const files = composeFiles()
  assert.ok(files.length >= 1, 'compose/ has a compose file')
  const validate = validator()
  for (const f of files) assert.deepEqual(validate(load(f)), [], f)
})

test('the schema check can fail: a misspelt key, a bad port list and an unknown condition are caught', () => {
  const validate = validator()
  const doc = load(join(composeDir, 'docker-compose.yml')) as Compose
  const broken = structuredClone(doc) as unknown as { services: Record<string, Record<string, unknown>> }
  const b1 = broken.services['broker-1'] as Record<string, unknown>
  b1.enviroment = b1.environment
  delete b1.environment
  ;(broken.services.haproxy as Record<string, unknown>).ports = 1883
  ;(broken.services['bridge-1'] as Record<string, unknown>).depends_on = { 'api-1': { condition: 'service_ready' } }
  const errors = validate(broken).join('\n')
  assert.match(errors, /enviroment/)
  assert.match(errors, /\/services\/haproxy\/ports/)
  assert.match(errors, /\/services\/bridge-1\/depends_on/)
})

test('every mqchat service has a configuration mqchat accepts, in the cluster profile, with unique node ids', () => {
  const { compose, missing } = resolved()
  assert.deepEqual([...missing], [], 'compose/.env.example sets every required variable')
  const nodes = mqchatServices(compose) // loadConfig throws, naming each bad or unknown MQCHAT_ variable
  const roles = nodes.map(([, , cfg]) => cfg.role).sort()
  assert.deepEqual(roles, ['api', 'bridge', 'bridge', 'broker', 'broker', 'broker'], 'the API, two bridge workers and three brokers')
  const ids = nodes.map(([, , cfg]) => cfg.nodeId)
  assert.equal(new Set(ids).size, ids.length, `node ids are unique: ${ids.join(', ')}`)
  for (const [name, s, cfg] of nodes) {
    assert.equal(cfg.profile, 'cluster', name)
    assert.equal(cfg.nodeId, name, 'a node is named after its service, so logs and metrics say which one')
    assert.deepEqual(s.command, ['serve'], name)
    assert.ok(s.image && s.build, `${name} is built from this repository`)
    assert.equal(cfg.mediaBackend, 's3', name)
  }
  // One cluster: every node sees the same Redis, MongoDB, S3 and partition count.
  const shared = (k: keyof Config): unknown[] => [...new Set(nodes.map(([, , cfg]) => cfg[k]))]
  for (const k of ['redisUrl', 'mongoUrl', 'streamPartitions', 's3Endpoint', 's3Bucket', 's3PublicEndpoint', 'retentionDays', 'maxQueue'] as const) {
    assert.equal(shared(k).length, 1, `${k} is the same on every node`)
  }
})

test('Redis, MongoDB and S3 in the mqchat settings are services of this file, set up as mqchat needs', () => {
  const { compose } = resolved()
  const [, , cfg] = mqchatServices(compose)[0] as [string, Service, Config]
  const redis = compose.services[hostOf(cfg.redisUrl)]
  assert.ok(redis, `MQCHAT_REDIS_URL names a service: ${hostOf(cfg.redisUrl)}`)
  const cmd = (redis.command ?? []).join(' ')
  assert.match(cmd, /--appendonly yes/, 'AOF on: a PUBACKed message survives a Redis restart')
  assert.match(cmd, /--appendfsync always/)
  assert.match(cmd, /--maxmemory-policy noeviction/, 'sessions and stream entries are never evicted')
  assert.equal(new URL(cfg.redisUrl).password, dotEnv().REDIS_PASSWORD)
  assert.ok(cmd.includes(`--requirepass ${dotEnv().REDIS_PASSWORD as string}`))

  // mongodb://h1:p,h2:p,…/db?options: several hosts, which URL cannot parse.
  const [, hostList = '', query = ''] = /^mongodb:\/\/([^/]+)\/[^?]*\??(.*)$/.exec(cfg.mongoUrl) ?? []
  const hosts = hostList.split(',').map((h) => h.split(':')[0] as string)
  const rsName = new URLSearchParams(query).get('replicaSet')
  assert.ok(rsName, 'the URL names the replica set')
  assert.ok(hosts.length >= 3, 'three replica set members')
  const init = readFileSync(join(composeDir, 'mongo-init.js'), 'utf8')
  for (const h of hosts) {
    const s = compose.services[h]
    assert.ok(s, `MQCHAT_MONGO_URL host ${h} is a service`)
    assert.deepEqual(s.command?.slice(0, 3), ['mongod', '--replSet', rsName])
    assert.ok(init.includes(`'${h}:27017'`), `mongo-init.js adds ${h} to the replica set`)
  }
  assert.ok(init.includes(`_id: '${rsName as string}'`))

  const s3 = compose.services[hostOf(cfg.s3Endpoint)]
  assert.ok(s3, 'MQCHAT_S3_ENDPOINT names a service')
  assert.equal(s3.environment?.MINIO_ROOT_USER, cfg.s3AccessKeyId)
  assert.equal(s3.environment?.MINIO_ROOT_PASSWORD, cfg.s3SecretAccessKey)
  assert.equal(hostOf(cfg.s3PublicEndpoint), dotEnv().PUBLIC_HOST, 'presigned URLs name the public host')

  // Start order: the API creates the indexes; the others wait for it.
  for (const [name, s, c] of mqchatServices(compose)) {
    const deps = Object.keys(s.depends_on ?? {})
    assert.ok(c.role === 'api' ? deps.includes(hostOf(cfg.redisUrl)) && deps.includes('mongo-init') : deps.includes('api-1'), `${name} start order`)
  }
})

test('HAProxy spreads MQTT/TCP and MQTT/WebSocket over every broker at its configured ports, and sends the rest to the API', () => {
  const { compose } = resolved()
  const nodes = mqchatServices(compose)
  const haproxy = readFileSync(join(composeDir, 'haproxy.cfg'), 'utf8')
  const backend = (name: string): string[] => haproxyServers(haproxy, name)
  const brokers = nodes.filter(([, , c]) => c.role === 'broker')
  assert.deepEqual(backend('brokers_mqtt').sort(), brokers.map(([n, , c]) => `${n}:${c.mqttPort}`).sort())
  assert.deepEqual(backend('brokers_ws').sort(), brokers.map(([n, , c]) => `${n}:${c.wsPort}`).sort())
  const api = nodes.filter(([, , c]) => c.role === 'api')
  assert.deepEqual(backend('api'), api.map(([n, , c]) => `${n}:${c.httpPort}`))
  const [, , s3cfg] = nodes[0] as [string, Service, Config]
  assert.deepEqual(backend('media'), [new URL(s3cfg.s3Endpoint).host])

  // The WebSocket path and the media bucket are routed where mqchat serves them.
  const wsPath = (brokers[0] as [string, Service, Config])[2].wsPath
  assert.ok(haproxy.includes(`use_backend brokers_ws if { path ${wsPath} }`), `WebSocket path ${wsPath}`)
  assert.ok(haproxy.includes(`use_backend media if { path_beg /${s3cfg.s3Bucket}/ }`), 'path-style bucket URLs go to S3')
  assert.ok(s3cfg.s3ForcePathStyle, 'path-style URLs (the load balancer routes by path)')

  // What the load balancer binds is what the haproxy service publishes, and what the API tells clients.
  const binds = [...haproxy.matchAll(/^\s*bind :(\d+)/gm)].map((m) => m[1] as string).sort()
  const published = (compose.services.haproxy?.ports ?? []).map((p) => p.split(':')[1] as string).sort()
  assert.deepEqual(published, binds)
  const [, , apiCfg] = api[0] as [string, Service, Config]
  assert.ok(binds.includes(String(apiCfg.mqttPort)) && binds.includes(String(apiCfg.wsPort)), '/v1/info names ports the load balancer serves')
  assert.ok(binds.includes(String(apiCfg.xmppPort)) && binds.includes(String(apiCfg.xmppWsPort)), '/v1/info names the XMPP ports the load balancer serves')
  assert.ok(/^\s*http-request deny .* if \{ path_beg \/metrics \}/m.test(haproxy), '/metrics is not public')

  // Idle MQTT connections outlive the longest keepalive the brokers accept (MQTT: 1.5 × keepalive).
  const minutes = (k: string): number => Number(new RegExp(`^\\s*timeout ${k} (\\d+)m`, 'm').exec(haproxy)?.[1] ?? NaN)
  for (const [n, , c] of brokers) {
    assert.ok(c.keepaliveLimitSeconds > 0, `${n} bounds keepalive`)
    for (const k of ['client', 'server', 'tunnel']) assert.ok(minutes(k) * 60 >= 1.5 * c.keepaliveLimitSeconds, `timeout ${k} vs ${n} keepalive limit`)
  }

  // The API trusts X-Forwarded-For from the load balancer only, which has a fixed address on the network.
  const lbAddress = (compose.services.haproxy?.networks as Record<string, { ipv4_address?: string }>).mqchat?.ipv4_address as string
  assert.equal(isIP(lbAddress), 4)
  assert.equal(apiCfg.trustProxy, lbAddress)
  const subnets = new BlockList()
  for (const c of compose.networks?.mqchat?.ipam?.config ?? []) subnets.addSubnet(...(c.subnet.split('/').map((x, i) => i === 0 ? x : Number(x)) as [string, number]))
  assert.ok(subnets.check(lbAddress), 'the address is inside the network')
})

test('XMPP: every broker serves it with the certificate from compose/certs, HAProxy passes 5222 and 5280 through to them, and the API names them in /v1/info', () => {
  const { compose } = resolved()
  const nodes = mqchatServices(compose)
  const haproxy = readFileSync(join(composeDir, 'haproxy.cfg'), 'utf8')
  const brokers = nodes.filter(([, , c]) => c.role === 'broker')
  const [, , apiCfg] = nodes.find(([, , c]) => c.role === 'api') as [string, Service, Config]
  for (const [n, , c] of [...brokers, ...nodes.filter(([, , c]) => c.role === 'api')]) {
    assert.ok(c.xmppEnabled, `${n} has XMPP on`)
    assert.equal(c.xmppDomain, dotEnv().PUBLIC_HOST, `${n}: the XMPP domain is the public host`)
    assert.equal(c.xmppAllowPlaintext, false, n)
    // The PEM the brokers are given must be usable as certificate and key at once (HAProxy's format).
    createSecureContext({ cert: readFileSync(c.xmppTlsCert), key: readFileSync(c.xmppTlsKey) })
    assert.deepEqual([c.xmppPort, c.xmppWsPort], [apiCfg.xmppPort, apiCfg.xmppWsPort], `${n}: the ports the API announces`)
  }
  for (const [n, , c] of nodes.filter(([, , c]) => c.role === 'bridge')) assert.equal(c.xmppEnabled, false, `${n}: a bridge worker serves no XMPP`)
  assert.deepEqual(haproxyServers(haproxy, 'brokers_xmpp').sort(), brokers.map(([n, , c]) => `${n}:${c.xmppPort}`).sort())
  assert.deepEqual(haproxyServers(haproxy, 'brokers_xmpp_ws').sort(), brokers.map(([n, , c]) => `${n}:${c.xmppWsPort}`).sort())
  for (const [frontend, port, backend] of [['xmpp', apiCfg.xmppPort, 'brokers_xmpp'], ['xmpp_ws', apiCfg.xmppWsPort, 'brokers_xmpp_ws']] as const) {
    const f = haproxySection(haproxy, 'frontend', frontend)
    assert.match(f, /mode tcp/, `${frontend}: bytes passed through (STARTTLS is inside the stream)`)
    assert.match(f, new RegExp(`bind :${port}\\s*\\n`), `${frontend} binds :${port}, without ssl`)
    assert.match(f, new RegExp(`default_backend ${backend}\\b`))
    assert.match(haproxySection(haproxy, 'backend', backend), /mode tcp/)
  }
})

test('the Dockerfile builds every source directory, runs the CLI the package names, and the image needs no dev dependency at run time', () => {
  const docker = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>, dependencies: Record<string, string>, optionalDependencies?: Record<string, string>, engines: { node: string } }
  const tsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] }
  for (const dir of tsconfig.include) assert.match(docker, new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'), `the image compiles ${dir}/`)
  assert.ok(docker.includes(`ENTRYPOINT ["node", "${pkg.bin.mqchat as string}"]`))
  // One Node line everywhere: both image stages, .nvmrc, and the Node that npm scripts use (node-linux-*).
  const stages = [...docker.matchAll(/^FROM node:(\d+)/gm)].map((m) => Number(m[1]))
  const pinned = Object.entries(pkg.optionalDependencies ?? {}).filter(([name]) => name.startsWith('node-linux-')).map(([, v]) => Number(/^\d+/.exec(v)?.[0]))
  const nvmrc = Number(readFileSync(join(root, '.nvmrc'), 'utf8').trim())
  assert.equal(stages.length, 2)
  assert.ok(pinned.length >= 1, 'npm scripts run on a pinned Node')
  assert.deepEqual([...new Set([...stages, ...pinned, nvmrc])], [nvmrc], 'the image, .nvmrc and the pinned Node are one major version')
  assert.ok(nvmrc >= Number(/\d+/.exec(pkg.engines.node)?.[0]), 'the image\'s Node satisfies engines')
  assert.match(docker, /--omit=optional/, 'the image leaves out the pinned Node binary')
  assert.match(docker, /npm prune --omit=dev/)

  // Every package the runtime sources import is a runtime dependency (devDependencies are pruned from the image).
  // Tests, the conformance suite and the benchmarks are compiled and then removed from the image.
  const devOnly = ['test', 'bench', 'mosquitto-compat-tests']
  for (const dir of devOnly) assert.match(docker, new RegExp(`rm -rf [^\\n]*\\bdist/${dir}\\b`), `the image drops dist/${dir}`)
  const runtimeDirs = tsconfig.include.filter((d) => !devOnly.includes(d))
  const imported = new Set<string>()
  const scan = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) scan(p)
      else if (p.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/(?:from |import\(|require\()\s*'([^'.][^']*)'/g)) {
          const spec = m[1] as string
          if (spec.startsWith('node:')) continue
          imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0] as string)
        }
      }
    }
  }
  for (const d of runtimeDirs) if (existsSync(join(root, d))) scan(join(root, d))
  assert.ok(imported.has('aedes') && imported.has('fastify'), 'the scan finds imports')
  const notRuntime = [...imported].filter((p) => !(p in pkg.dependencies))
  assert.deepEqual(notRuntime, [], 'imported by runtime code but not in dependencies')
})
