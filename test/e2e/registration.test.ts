// Registration by phone and one-time code, over HTTP against the real server.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestServer, waitFor } from '../helpers/server.js'

const server = new TestServer({ MQCHAT_OTP_MAX_ATTEMPTS: '3', MQCHAT_OTP_REQUESTS_PER_PHONE_PER_HOUR: '3' })
before(async () => { await server.start() })
after(async () => { await server.dispose() })

test('a code is 6 digits, single use, and logs the user in on later verifications', async () => {
  const phone = '+15550500001'
  const c1 = await server.api('POST', '/v1/register/code', undefined, { phone })
  assert.equal(c1.status, 202)
  assert.match(c1.body.code, /^[0-9]{6}$/)
  assert.equal(c1.body.expires_in, 300)
  const v1 = await server.api('POST', '/v1/register/verify', undefined, { phone, code: c1.body.code })
  assert.equal(v1.status, 201)
  assert.equal(v1.body.new_user, true)
  assert.match(v1.body.user_id, /^u_/)
  assert.match(v1.body.token, new RegExp(`^${v1.body.device_id}\\.`))
  const reuse = await server.api('POST', '/v1/register/verify', undefined, { phone, code: c1.body.code })
  assert.equal(reuse.status, 401)
  assert.equal(reuse.body.error.code, 'invalid_code')
  // A second verification of the same phone: same user, another device.
  const c2 = await server.api('POST', '/v1/register/code', undefined, { phone })
  const v2 = await server.api('POST', '/v1/register/verify', undefined, { phone, code: c2.body.code })
  assert.equal(v2.body.user_id, v1.body.user_id)
  assert.equal(v2.body.new_user, false)
  assert.notEqual(v2.body.device_id, v1.body.device_id)
  const me = await server.api('GET', '/v1/me', v2.body.token)
  assert.deepEqual(me.body, { user_id: v1.body.user_id, phone, device_id: v2.body.device_id })
})

test('wrong guesses void the code after the attempt limit', async () => {
  const phone = '+15550500002'
  const c = await server.api('POST', '/v1/register/code', undefined, { phone })
  const wrong = c.body.code === '000000' ? '111111' : '000000'
  for (let i = 0; i < 3; i++) {
    const r = await server.api('POST', '/v1/register/verify', undefined, { phone, code: wrong })
    assert.equal(r.body.error.code, 'invalid_code')
  }
  const right = await server.api('POST', '/v1/register/verify', undefined, { phone, code: c.body.code })
  assert.equal(right.status, 401, 'the code is void after 3 wrong guesses')
})

test('codes sent per phone are limited; a request while a code is valid sends none and costs nothing', async () => {
  const phone = '+15550500003'
  const sent: boolean[] = []
  // Each code is used before the next request, so each request sends one: 3 an hour here.
  for (let i = 0; i < 3; i++) {
    const c = await server.api('POST', '/v1/register/code', undefined, { phone })
    assert.equal(c.status, 202)
    sent.push(c.body.sent as boolean)
    // Asking again while it is valid: nothing sent, the same code stays, nothing charged.
    const again = await server.api('POST', '/v1/register/code', undefined, { phone })
    assert.equal(again.status, 202)
    assert.equal(again.body.sent, false)
    assert.equal(again.body.code, undefined)
    assert.equal((await server.api('POST', '/v1/register/verify', undefined, { phone, code: c.body.code })).status, 201)
  }
  assert.deepEqual(sent, Array(3).fill(true))
  const r = await server.api('POST', '/v1/register/code', undefined, { phone })
  assert.equal(r.status, 429)
  assert.equal(r.body.error.code, 'rate_limited')
  // Another phone is not affected.
  assert.equal((await server.api('POST', '/v1/register/code', undefined, { phone: '+15550500004' })).status, 202)
})

test('bad input gets a 400 with a stable code', async () => {
  for (const body of [{ phone: '5550000' }, { phone: '+1555abc0000' }, {}, { phone: '+15550500005', extra: 1 }]) {
    const r = await server.api('POST', '/v1/register/code', undefined, body)
    assert.equal(r.status, 400, JSON.stringify(body))
    assert.equal(r.body.error.code, 'bad_request')
    assert.equal(typeof r.body.error.message, 'string')
  }
  const r = await server.api('POST', '/v1/register/verify', undefined, { phone: '+15550500005', code: '12345' })
  assert.equal(r.body.error.code, 'bad_request')
  const noAuth = await server.api('GET', '/v1/chats')
  assert.equal(noAuth.status, 401)
  assert.equal(noAuth.body.error.code, 'unauthorized')
  assert.equal((await server.api('GET', '/v1/nothing')).body.error.code, 'not_found')
})

test('without the development switch the code is only in the server log', async () => {
  const prod = new TestServer({ MQCHAT_DEV_RETURN_CODES: 'false' })
  try {
    await prod.start()
    const phone = '+15550500006'
    const r = await prod.api('POST', '/v1/register/code', undefined, { phone })
    assert.equal(r.status, 202)
    assert.equal(r.body.code, undefined)
    const code = await waitFor('the code in the log', () => /"phone":"\+15550500006","code":"([0-9]{6})"/.exec(prod.log)?.[1])
    const v = await prod.api('POST', '/v1/register/verify', undefined, { phone, code })
    assert.equal(v.status, 201)
  } finally {
    await prod.dispose()
  }
})

test('health, readiness, metrics and the OpenAPI document are served', async () => {
  assert.deepEqual((await server.api('GET', '/healthz')).body, { status: 'ok' })
  assert.deepEqual((await server.api('GET', '/readyz')).body, { status: 'ready' })
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  for (const name of ['mqchat_connections', 'mqchat_messages_accepted_total', 'mqchat_publishes_refused_total', 'mqchat_store_seconds']) {
    assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'))
  }
  const doc = (await server.api('GET', '/openapi.json')).body
  assert.equal(doc.openapi.startsWith('3.'), true)
  for (const path of ['/v1/register/code', '/v1/register/verify', '/v1/devices', '/v1/chats', '/v1/chats/{chatId}/messages']) assert.ok(doc.paths[path], path)
  const info = (await server.api('GET', '/v1/info')).body
  assert.equal(info.mqtt_port, server.ports.mqtt)
  assert.equal(info.ws_path, '/mqtt')
})

test('with a code webhook, codes are POSTed to it; a failing gateway gets 502 code_delivery_failed', async () => {
  const { createServer } = await import('node:http')
  const received: Array<{ auth: string | undefined, body: { phone: string, code: string, expires_in: number } }> = []
  let fail = false
  const gateway = createServer((req, res) => {
    let data = ''
    req.on('data', (c: Buffer) => { data += c.toString() })
    req.on('end', () => {
      received.push({ auth: req.headers.authorization, body: JSON.parse(data) })
      res.writeHead(fail ? 500 : 204).end()
    })
  })
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', () => r()))
  const port = (gateway.address() as { port: number }).port
  const s = new TestServer({ MQCHAT_DEV_RETURN_CODES: 'false', MQCHAT_CODE_WEBHOOK_URL: `http://127.0.0.1:${port}/sms`, MQCHAT_CODE_WEBHOOK_SECRET: 's3cret' })
  try {
    await s.start()
    const phone = '+15550500007'
    const r = await s.api('POST', '/v1/register/code', undefined, { phone })
    assert.equal(r.status, 202)
    assert.equal(received.length, 1)
    assert.equal(received[0].auth, 'Bearer s3cret')
    assert.equal(received[0].body.phone, phone)
    assert.equal(received[0].body.expires_in, 300)
    assert.doesNotMatch(s.log, new RegExp(`"code":"${received[0].body.code}"`), 'not written to the log')
    assert.equal((await s.api('POST', '/v1/register/verify', undefined, { phone, code: received[0].body.code })).status, 201)

    fail = true
    const failed = await s.api('POST', '/v1/register/code', undefined, { phone: '+15550500008' })
    assert.equal(failed.status, 502)
    assert.equal(failed.body.error.code, 'code_delivery_failed')
    // The undelivered code is not left usable.
    const guess = await s.api('POST', '/v1/register/verify', undefined, { phone: '+15550500008', code: received[1].body.code })
    assert.equal(guess.body.error.code, 'invalid_code')
  } finally {
    await s.dispose()
    gateway.close()
  }
})

test('a bad webhook URL stops the start', async () => {
  const { loadConfig, ConfigError } = await import('../../lib/config.js')
  assert.throws(() => loadConfig({ MQCHAT_CODE_WEBHOOK_URL: 'ftp://x' }), (e: unknown) => e instanceof ConfigError && /MQCHAT_CODE_WEBHOOK_URL: must be an http\(s\) URL/.test(e.message))
})

test('behind a trusted load balancer the per-address limit counts X-Forwarded-For; an untrusted peer\'s header is ignored', async () => {
  const trusting = new TestServer({ MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR: '2', MQCHAT_TRUST_PROXY: '127.0.0.1' })
  const untrusting = new TestServer({ MQCHAT_OTP_REQUESTS_PER_IP_PER_HOUR: '2' })
  try {
    await Promise.all([trusting.start(), untrusting.start()])
    const ask = async (s: TestServer, forwardedFor: string, n: number): Promise<number> => {
      const r = await fetch(`${s.url}/v1/register/code`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor }, body: JSON.stringify({ phone: `+1555060${String(n).padStart(4, '0')}` })
      })
      return r.status
    }
    // Trusted: each client address has its own budget of 2.
    assert.deepEqual([await ask(trusting, '203.0.113.1', 1), await ask(trusting, '203.0.113.1', 2), await ask(trusting, '203.0.113.1', 3)], [202, 202, 429])
    assert.equal(await ask(trusting, '203.0.113.2', 4), 202, 'another client behind the same balancer is not limited')
    // Not trusted: the header is the client's word; all requests count for 127.0.0.1.
    assert.deepEqual([await ask(untrusting, '203.0.113.1', 5), await ask(untrusting, '203.0.113.2', 6), await ask(untrusting, '203.0.113.3', 7)], [202, 202, 429])
  } finally {
    await Promise.all([trusting.dispose(), untrusting.dispose()])
  }
})
