#!/usr/bin/env node
// npm run bench [-- --full] [--only NAME ...]: runs the benchmark scenarios
// against mqchat and the references on this machine, writes the results as
// JSON under bench/results/ (with machine facts, commit and configuration)
// and the summary in bench/README.md.
import { execFileSync } from 'node:child_process'
import { cpus, tmpdir, totalmem } from 'node:os'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT } from '../mosquitto-compat-tests/src/targets.js'
import { chatPairs, type PairsOptions } from './scenarios/chat-pairs.js'
import { groupFanout, type FanoutOptions } from './scenarios/group-fanout.js'
import { offlineCatchup, type CatchupOptions } from './scenarios/offline-catchup.js'
import { connections, type ConnectionsOptions } from './scenarios/connections.js'
import { reconnectStorm, type StormOptions } from './scenarios/reconnect-storm.js'
import { summarise } from './profile.js'
import { problems, render, writeSection, type BenchOutput } from './report.js'
import { startBenchTarget, type BenchTarget, type TargetName } from './targets.js'

export const SCENARIOS = ['chat-pairs', 'connections', 'group-fanout', 'offline-catchup', 'reconnect-storm']

const HELP = `Usage: npm run bench [-- options]

  --full          full sizes (default: quick sizes, a few minutes in all)
  --no-profile    skip the profiled run (by default scenario 1 runs once more on
                  mqchat under node --cpu-prof, and the summary of where its CPU
                  time goes is part of the results)
  --only NAME     repeatable: run only these scenarios (${SCENARIOS.join(', ')})
  -h, --help      this text

Results: bench/results/<time>-<commit>.json and bench/results/latest.json; the
summary and charts in bench/README.md and bench/charts/. Exit status 1 when a
scenario produced no figures or lost or duplicated a message.`

export interface Size { pairs: PairsOptions, fanout: FanoutOptions, catchup: CatchupOptions, connections: ConnectionsOptions, storm: StormOptions }

const QUICK: Size = { pairs: { pairs: 20, workers: 1, payloadBytes: 160, durationMs: 3000, warmupMs: 500, window: 10 }, fanout: { members: 1024, messages: 20, payloadBytes: 160 }, catchup: { messages: 2000, payloadBytes: 160 }, connections: { count: 2000, concurrency: 200 }, storm: { devices: 1000, perDevice: 5, concurrency: 500, payloadBytes: 160 } }
const FULL: Size = { pairs: { pairs: 200, workers: 2, payloadBytes: 160, durationMs: 20_000, warmupMs: 5000, window: 10 }, fanout: { members: 1024, messages: 100, payloadBytes: 160 }, catchup: { messages: 10_000, payloadBytes: 160 }, connections: { count: 15_000, concurrency: 500 }, storm: { devices: 8000, perDevice: 5, concurrency: 1000, payloadBytes: 160 } }

function machine (): Record<string, unknown> {
  const c = cpus()
  let commit = 'unknown'
  try { commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim() } catch {}
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}`, commit }
}

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({ options: { full: { type: 'boolean' }, 'no-profile': { type: 'boolean' }, only: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) { process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`); return 2 }
  if (args.help === true) { process.stdout.write(HELP + '\n'); return 0 }
  const unknown = (args.only ?? []).filter((x) => !SCENARIOS.includes(x))
  if (unknown.length > 0) { process.stderr.write(`unknown scenario ${unknown.join(', ')} (one of ${SCENARIOS.join(', ')})\n`); return 2 }
  const size = args.full === true ? FULL : QUICK
  const log = (s: string): void => { process.stdout.write(`[bench] ${s}\n`) }
  const want = (s: string): boolean => args.only === undefined || args.only.includes(s)
  const started = new Date()
  const results: Record<string, unknown> = {}
  // Scenarios with references: each on mqchat, Mosquitto and bare aedes, a fresh broker each time.
  const withRefs = [
    ['chat-pairs', size.pairs, (t: BenchTarget) => chatPairs(t, size.pairs, log)],
    ['connections', size.connections, (t: BenchTarget) => connections(t, size.connections, log)],
    ['reconnect-storm', size.storm, (t: BenchTarget) => reconnectStorm(t, size.storm, log)]
  ] as const
  for (const [scenario, options, run] of withRefs) {
    if (!want(scenario)) continue
    const per: Record<string, unknown> = {}
    for (const name of ['mqchat', 'mosquitto', 'aedes'] as TargetName[]) {
      const t = await startBenchTarget(name)
      try {
        log(`${scenario} on ${t.version}`)
        per[name] = { version: t.version, ...(await run(t)) }
      } finally { await t.stop() }
    }
    results[scenario] = { options, targets: per }
  }
  // mqchat only: the references have no groups and no offline history of their own.
  for (const [name, run] of [
    ['group-fanout', async (t: BenchTarget) => groupFanout(t, size.fanout, log)],
    ['offline-catchup', async (t: BenchTarget) => offlineCatchup(t, size.catchup, log)]
  ] as const) {
    if (!want(name)) continue
    const t = await startBenchTarget('mqchat')
    try {
      log(`${name} on ${t.version}`)
      results[name] = { options: name === 'group-fanout' ? size.fanout : size.catchup, targets: { mqchat: { version: t.version, ...(await run(t)) } } }
    } finally { await t.stop() }
  }
  if (args['no-profile'] !== true && want('chat-pairs')) {
    const dir = mkdtempSync(join(tmpdir(), 'mqchat-prof-'))
    const t = await startBenchTarget('mqchat', dir)
    try {
      log(`chat-pairs on ${t.version}, under the CPU profiler`)
      await chatPairs(t, size.pairs, log)
    } finally { await t.stop() }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
    if (!file) throw new Error(`no CPU profile written in ${dir}`)
    const summary = summarise(join(dir, file))
    results.profile = { scenario: 'chat-pairs', target: 'mqchat', ...summary }
    for (const a of summary.byArea.slice(0, 12)) log(`profile: ${a.pct} % ${a.area}`)
    for (const f of summary.topFunctions.slice(0, 12)) log(`profile: ${f.pct} % ${f.fn} (${f.where})`)
    rmSync(dir, { recursive: true, force: true })
  }
  const out = { started: started.toISOString(), size: args.full === true ? 'full' : 'quick', machine: machine(), results }
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}-${String(out.machine.commit).slice(0, 8)}.json`)
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(out, null, 2) + '\n')
  log(`results: ${file}`)
  const { markdown, charts } = render(out as BenchOutput, `results/${basename(file)}`)
  mkdirSync(join(ROOT, 'bench', 'charts'), { recursive: true })
  for (const [name, svg] of Object.entries(charts)) writeFileSync(join(ROOT, 'bench', 'charts', name), svg)
  writeSection(join(ROOT, 'bench', 'README.md'), markdown)
  log('bench/README.md and bench/charts/ rewritten')
  const bad = problems(out as BenchOutput)
  for (const b of bad) log(`PROBLEM: ${b}`)
  if (bad.length > 0) return 1
  return 0
}

main().then((code) => process.exit(code), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1) })
