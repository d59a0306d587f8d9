// The CLI's HTTP client: JSON in and out, server errors become CliErrors.
import { CliError, EXIT } from './errors.js'

export async function call<T = Record<string, unknown>> (server: string, method: string, path: string, opts: { token?: string, body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = {}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(new URL(path, server), {
      method,
      headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: AbortSignal.timeout(15_000)
    })
  } catch (err) {
    throw new CliError(`cannot reach ${server}: ${(err as Error).message}`, EXIT.unreachable)
  }
  const text = await res.text()
  const data = text ? JSON.parse(text) as unknown : {}
  if (!res.ok) {
    const e = (data as { error?: { code?: string, message?: string } }).error
    const exit = res.status === 401 ? EXIT.auth : EXIT.refused
    throw new CliError(`${e?.code ?? res.status}: ${e?.message ?? text}`, exit, e?.code)
  }
  return data as T
}
