// The V8 heap in use of a Node server the bench started, after a forced full
// GC, read over the server's inspector (started with `inspectArgs`). The
// inspector listens on loopback only and the bench is its one client; it
// costs nothing while no session is attached.
import WebSocket from 'ws'
import { freePort } from '../mosquitto-compat-tests/src/targets.js'

export interface Inspected { port: number, args: string[] }

export async function inspectArgs (): Promise<Inspected> {
  const port = await freePort()
  return { port, args: [`--inspect=127.0.0.1:${port}`] }
}

/** Bytes of V8 heap in use after two full collections (the second catches what finalizers of the first released). */
export async function heapAfterGc (port: number, timeoutMs = 60_000): Promise<number> {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(10_000) })).json() as Array<{ webSocketDebuggerUrl: string }>
  const url = list[0]?.webSocketDebuggerUrl
  if (!url) throw new Error(`the inspector on port ${port} lists no target`)
  const ws = new WebSocket(url)
  try {
    await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    let next = 1
    const call = async (method: string, params: object = {}): Promise<Record<string, unknown>> => {
      const id = next++
      const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`inspector ${method}: no answer in ${timeoutMs} ms`)), timeoutMs)
        const onMessage = (data: WebSocket.RawData): void => {
          const m = JSON.parse(data.toString()) as { id?: number, result?: Record<string, unknown>, error?: { message: string } }
          if (m.id !== id) return
          clearTimeout(timer)
          ws.off('message', onMessage)
          if (m.error) reject(new Error(`inspector ${method}: ${m.error.message}`))
          else resolve(m.result ?? {})
        }
        ws.on('message', onMessage)
      })
      ws.send(JSON.stringify({ id, method, params }))
      return reply
    }
    await call('HeapProfiler.collectGarbage')
    await call('HeapProfiler.collectGarbage')
    const r = await call('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true }) as { result?: { value?: unknown } }
    const v = r.result?.value
    if (typeof v !== 'number') throw new Error(`inspector: heapUsed is ${JSON.stringify(v)}`)
    return v
  } finally {
    ws.close()
  }
}
