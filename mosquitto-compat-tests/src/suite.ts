// One run of the suite against one target: every vector (open-access
// targets), every behaviour case for the target's access mode, a liveness
// check at the end; each result classified against the expected deviations.
import { randomBytes } from 'node:crypto'
import { behaviourCases } from './behaviour.js'
import { appliesTo, matches, type Deviation, type Kind } from './deviations.js'
import { alive, DEFAULT_TIMING, replay, type CaseResult } from './replay.js'
import { startMosquitto, startMqchat, type RunningTarget } from './targets.js'
import type { VectorCase } from './vectors.js'

export type Outcome = 'pass' | 'deviation' | 'fail'

export interface Classified extends CaseResult {
  /** vectors MQTT <protocol>, or behaviour. */
  suite: string
  outcome: Outcome
  kind?: Kind
}

export interface TargetRun {
  target: string
  version: string
  access: 'open' | 'auth'
  results: Classified[]
  /** Deviations listed for this target whose cases all passed: the list is out of date. */
  stale: Deviation[]
  alive: boolean
  ms: number
}

export interface RunOptions {
  vectors: VectorCase[]
  deviations: Deviation[]
  /** Only case ids containing one of these (all when empty). */
  only?: string[]
  log?: (line: string) => void
}

export async function runTarget (t: RunningTarget, o: RunOptions): Promise<TargetRun> {
  const started = Date.now()
  const want = (id: string): boolean => !o.only?.length || o.only.some((s) => id.includes(s))
  const raw: Array<CaseResult & { suite: string }> = []
  if (t.access === 'open') {
    for (const c of o.vectors) {
      if (!want(c.id)) continue
      raw.push({ ...(await replay(c, t, DEFAULT_TIMING)), suite: `vectors MQTT ${c.protocol}` })
    }
  }
  const root = `compat-${randomBytes(3).toString('hex')}`
  let n = 0
  for (const c of behaviourCases) {
    if (c.access !== t.access || !want(c.id)) continue
    const t0 = Date.now()
    let pass = true
    let detail: string | undefined
    try { await c.run(t, `${root}/${++n}`) } catch (err) { pass = false; detail = (err as Error).message.split('\n')[0] }
    raw.push({ id: c.id, protocol: c.protocol ?? '3.1.1', pass, detail, ms: Date.now() - t0, suite: 'behaviour' })
  }
  const mine = o.deviations.filter((d) => appliesTo(d, t.name))
  const results: Classified[] = raw.map((r) => {
    if (r.pass) return { ...r, outcome: 'pass' }
    const d = mine.find((x) => matches(x, t.name, r.id, r.protocol))
    return d ? { ...r, outcome: 'deviation', kind: d.kind } : { ...r, outcome: 'fail' }
  })
  for (const r of results) if (r.outcome === 'fail') o.log?.(`${t.name}: FAIL ${r.id}: ${r.detail ?? ''}`)
  const stale = mine.filter((d) => {
    const covered = raw.filter((r) => matches(d, t.name, r.id, r.protocol))
    return covered.length > 0 && covered.every((r) => r.pass)
  })
  const ok = await alive(t, t.auth)
  return { target: t.name, version: t.version, access: t.access, results, stale, alive: ok, ms: Date.now() - started }
}

export const BUILT_IN = ['mosquitto', 'mosquitto-auth', 'mqchat-open', 'mqchat-chat'] as const

export interface Limits { maxPacket: number, maxLevels: number }

/** A built-in target started for the run, or a broker already listening at HOST:PORT (open access). */
export async function startTarget (spec: string, limits: Limits): Promise<RunningTarget> {
  switch (spec) {
    case 'mosquitto': return startMosquitto('open')
    case 'mosquitto-auth': return startMosquitto('auth')
    case 'mqchat-open': return startMqchat('open')
    case 'mqchat-chat': return startMqchat('auth')
  }
  const m = /^(.+):(\d+)$/.exec(spec)
  if (!m) throw new Error(`unknown target "${spec}" (one of ${BUILT_IN.join(', ')}, or HOST:PORT)`)
  return { name: spec, host: m[1]!, port: Number(m[2]), kind: 'reference', access: 'open', maxPacketSize: limits.maxPacket, maxTopicLevels: limits.maxLevels, version: `broker at ${spec}`, stop: async () => {} }
}

/**
 * Runs every target, each started before and stopped after its own run.
 * Mosquitto's targets and mqchat's run side by side (two lanes), since each
 * case waits mostly on the network; results come back in the order asked.
 */
export async function runTargets (specs: string[], o: RunOptions & { limits: Limits }): Promise<TargetRun[]> {
  const lanes = new Map<string, string[]>()
  for (const s of specs) {
    const lane = s.startsWith('mqchat') ? 'mqchat' : s.startsWith('mosquitto') ? 'mosquitto' : s
    lanes.set(lane, [...(lanes.get(lane) ?? []), s])
  }
  const byName = new Map<string, TargetRun>()
  await Promise.all([...lanes.values()].map(async (lane) => {
    for (const spec of lane) {
      o.log?.(`starting ${spec}`)
      const t = await startTarget(spec, o.limits)
      try {
        const run = await runTarget(t, o)
        byName.set(spec, run)
        const count = (x: Outcome): number => run.results.filter((r) => r.outcome === x).length
        o.log?.(`${t.name} (${t.version}): ${run.results.length} cases, ${count('pass')} passed, ${count('deviation')} listed deviations, ${count('fail')} unexpected failures, ${run.stale.length} stale deviations, ${(run.ms / 1000).toFixed(1)} s`)
      } finally {
        await t.stop()
      }
    }
  }))
  return specs.map((s) => byName.get(s)!)
}
