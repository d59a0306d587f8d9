// Summarises a V8 CPU profile (.cpuprofile, from node --cpu-prof): self time
// by function and by package or source directory, so a reader sees where the
// server's time goes without opening a profiler.
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }
interface Profile { nodes: ProfileNode[], samples: number[], startTime: number, endTime: number }

export interface ProfileSummary { totalMs: number, byArea: Array<{ area: string, pct: number }>, topFunctions: Array<{ fn: string, where: string, pct: number }> }

function area (url: string): string {
  if (url === '') return '(native, GC, idle)'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1]!
  if (url.startsWith('node:')) return 'node core'
  const own = /\/dist\/([^/]+)\//.exec(url)
  return own ? `mqchat ${own[1]}/` : url
}

export function summarise (file: string, top = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const hits = new Map<number, number>()
  for (const s of p.samples) hits.set(s, (hits.get(s) ?? 0) + 1)
  const total = p.samples.length
  const byArea = new Map<string, number>()
  const byFn = new Map<string, number>()
  for (const n of p.nodes) {
    const h = hits.get(n.id) ?? 0
    if (h === 0) continue
    const fn = n.callFrame.functionName || '(anonymous)'
    if (fn === '(idle)') continue
    const a = fn === '(garbage collector)' ? 'V8 garbage collector' : area(n.callFrame.url)
    byArea.set(a, (byArea.get(a) ?? 0) + h)
    const key = `${fn}\t${a}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`
    byFn.set(key, (byFn.get(key) ?? 0) + h)
  }
  const busy = [...byArea.values()].reduce((a, b) => a + b, 0) || 1
  return {
    totalMs: (p.endTime - p.startTime) / 1000,
    byArea: [...byArea].sort((a, b) => b[1] - a[1]).map(([a, h]) => ({ area: a, pct: Math.round(1000 * h / busy) / 10 })),
    topFunctions: [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, h]) => { const [fn, where] = k.split('\t'); return { fn: fn!, where: where!, pct: Math.round(1000 * h / busy) / 10 } })
  }
  void total
}
