// Users, devices and chats a benchmark needs on mqchat, made through its HTTP
// API (the development code switch returns one-time codes). Requests run
// with bounded concurrency.
export interface BenchDevice { userId: string, deviceId: string, token: string }

export async function pool<T, R> (items: T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }))
  return out
}

async function call<T> (base: string, method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return (text ? JSON.parse(text) : undefined) as T
}

/** Registers `n` users (phones +1 9xx xxx xxxx from `first`), one device each. */
export async function registerUsers (base: string, n: number, first = 0): Promise<BenchDevice[]> {
  return pool(Array.from({ length: n }, (_, i) => first + i), 32, async (i) => {
    const phone = `+19${String(i).padStart(9, '0')}`
    // Set-up, not what is measured: a registration the server fails (a 5xx; seen once in the cluster
    // under a CI run's load) is tried again with a new code, at most twice, and said on stderr.
    for (let attempt = 0; ; attempt++) {
      try {
        const { code } = await call<{ code: string }>(base, 'POST', '/v1/register/code', { phone })
        const v = await call<{ user_id: string, device_id: string, token: string }>(base, 'POST', '/v1/register/verify', { phone, code, device_name: 'bench' })
        return { userId: v.user_id, deviceId: v.device_id, token: v.token }
      } catch (err) {
        if (attempt >= 2 || !/: 5\d\d /.test((err as Error).message)) throw err
        process.stderr.write(`[bench] registering ${phone} failed (${(err as Error).message}); trying again\n`)
      }
    }
  })
}

export async function directChat (base: string, a: BenchDevice, b: BenchDevice): Promise<string> {
  const chat = await call<{ chat_id: string }>(base, 'POST', '/v1/chats', { kind: 'direct', user: b.userId }, a.token)
  return chat.chat_id
}

/** A group of everyone in `members` (the first is its creator), added in batches. */
export async function group (base: string, members: BenchDevice[], name = 'bench'): Promise<string> {
  const owner = members[0]!
  const chat = await call<{ chat_id: string }>(base, 'POST', '/v1/chats', { kind: 'group', name }, owner.token)
  for (let i = 1; i < members.length; i += 200) {
    await call(base, 'POST', `/v1/chats/${chat.chat_id}/members`, { users: members.slice(i, i + 200).map((m) => m.userId) }, owner.token)
  }
  return chat.chat_id
}
