#!/usr/bin/env node
// npm run bench [-- --full] [--only NAME ...]: runs the benchmark scenarios
// against mqchat and the references on this machine, writes the results as
// JSON under bench/results/ (with machine facts, commit and configuration)
// and the summary in bench/README.md.
import { execFileSync } from 'node:child_process'
import { cpus, tmpdir, totalmem } from 'node:os'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
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
import { PROFILED_NODES, startBenchTarget, type BenchTarget, type TargetName } from './targets.js'

export const SCENARIOS = ['chat-pairs', 'connections', 'group-fanout', 'offline-catchup', 'reconnect-storm']

const HELP = `Usage: npm run bench [-- options]

  --full          full sizes (default: quick sizes, a few minutes in all)
  --local-only    skip the cluster profile (by default each scenario also runs on a
                  cluster: 2 brokers, 2 bridge workers, the API, Redis, FerretDB)
  --no-profile    skip the profiled run (by default scenario 1 runs once more on
                  mqchat, and on the cluster's broker-1 and bridge-1, under node
                  --cpu-prof; the summary of where their CPU time goes is part
                  of the results)
  --only NAME     repeatable: run only these scenarios (${SCENARIOS.join(', ')})
  --mqtt-version 4|5
                  the MQTT version of the 1:1 chat clients (chat-pairs), on every
                  target (default 4, MQTT 3.1.1). A run at 5 writes its results
                  file only: bench/README.md and the charts stay at 3.1.1
  -h, --help      this text

Results: bench/results/<time>-<commit>.json and bench/results/latest.json; the
summary and charts in bench/README.md and bench/charts/ (latest.json, the
README and the charts are rewritten by runs of every scenario, not by --only). Exit status 1 when a
scenario produced no figures or lost a message (duplicates are counted and
reported: delivery is at least once).`

export interface Size { pairs: PairsOptions, fanout: FanoutOptions, catchup: CatchupOptions, connections: ConnectionsOptions, storm: StormOptions }

/**
 * The cluster profile's sizes where they differ. 1:1 chat runs the same
 * pairs as the local profile, so both are compared under one load. Issue
 * 19's targets set the catch-up (1,000 messages) and storm (1,000 devices
 * × 2) sizes; fan-out sends fewer messages, and fewer sessions connect,
 * since every device is a registered user and registering goes through the
 * cluster's MongoDB (about 130 a second here).
 */
function clusterSize (s: Size, full: boolean): Size {
  if (full) return { ...s, connections: { ...s.connections, count: 5000 }, fanout: { ...s.fanout, messages: 20 }, catchup: { ...s.catchup, messages: 1000 }, storm: { ...s.storm, devices: 1000, perDevice: 2 } }
  return { ...s, fanout: { ...s.fanout, members: 256, messages: 5 }, catchup: { ...s.catchup, messages: 100 }, storm: { ...s.storm, devices: 100, perDevice: 2 } }
}

const QUICK: Size = { pairs: { pairs: 20, workers: 1, payloadBytes: 160, durationMs: 3000, warmupMs: 500, window: 10 }, fanout: { members: 1024, messages: 20, payloadBytes: 160 }, catchup: { messages: 2000, payloadBytes: 160 }, connections: { count: 2000, concurrency: 200 }, storm: { devices: 1000, perDevice: 5, concurrency: 500, payloadBytes: 160 } }
const FULL: Size = { pairs: { pairs: 200, workers: 2, payloadBytes: 160, durationMs: 20_000, warmupMs: 5000, window: 10 }, fanout: { members: 1024, messages: 100, payloadBytes: 160 }, catchup: { messages: 10_000, payloadBytes: 160 }, connections: { count: 15_000, concurrency: 500 }, storm: { devices: 8000, perDevice: 5, concurrency: 1000, payloadBytes: 160 } }

function machine (): Record<string, unknown> {
  const c = cpus()
  let commit = 'unknown'
  try { commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim() } catch {}
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}`, commit }
}

/** Targets running now: stopped on SIGINT/SIGTERM, so an interrupted run leaves no servers behind. */
const running = new Set<BenchTarget>()
async function tracked (p: Promise<BenchTarget>): Promise<BenchTarget> {
  const t = await p
  running.add(t)
  const stop = t.stop
  t.stop = async () => { running.delete(t); await stop() }
  return t
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`[bench] ${signal}: stopping ${running.size} target(s)\n`)
    void Promise.allSettled([...running].map((t) => t.stop())).then(() => process.exit(130))
  })
}

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({ options: { full: { type: 'boolean' }, 'local-only': { type: 'boolean' }, 'no-profile': { type: 'boolean' }, only: { type: 'string', multiple: true }, 'mqtt-version': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) { process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`); return 2 }
  if (args.help === true) { process.stdout.write(HELP + '\n'); return 0 }
  const unknown = (args.only ?? []).filter((x) => !SCENARIOS.includes(x))
  if (unknown.length > 0) { process.stderr.write(`unknown scenario ${unknown.join(', ')} (one of ${SCENARIOS.join(', ')})\n`); return 2 }
  const version = args['mqtt-version'] ?? '4'
  if (version !== '4' && version !== '5') { process.stderr.write(`--mqtt-version: 4 or 5, not ${version}\n`); return 2 }
  const mqttVersion = version === '5' ? 5 : 4
  const base = args.full === true ? FULL : QUICK
  const size: Size = { ...base, pairs: { ...base.pairs, mqttVersion } }
  const log = (s: string): void => { process.stdout.write(`[bench] ${s}\n`) }
  const want = (s: string): boolean => args.only === undefined || args.only.includes(s)
  const started = new Date()
  const results: Record<string, unknown> = {}
  const ours: TargetName[] = args['local-only'] === true ? ['mqchat'] : ['mqchat', 'mqchat-cluster']
  // Each scenario on every target it applies to, a fresh broker each time, in
  // the order of the report. The references have no groups and no chat
  // history, so fan-out and catch-up run on mqchat only (both profiles).
  const refs: TargetName[] = [...ours, 'mosquitto', 'aedes']
  const scenarios = [
    ['chat-pairs', refs, (z: Size) => z.pairs, (t: BenchTarget, z: Size) => chatPairs(t, z.pairs, log)],
    ['connections', refs, (z: Size) => z.connections, (t: BenchTarget, z: Size) => connections(t, z.connections, log)],
    ['reconnect-storm', refs, (z: Size) => z.storm, (t: BenchTarget, z: Size) => reconnectStorm(t, z.storm, log)],
    ['group-fanout', ours, (z: Size) => z.fanout, (t: BenchTarget, z: Size) => groupFanout(t, z.fanout, log)],
    ['offline-catchup', ours, (z: Size) => z.catchup, (t: BenchTarget, z: Size) => offlineCatchup(t, z.catchup, log)]
  ] as const
  for (const [scenario, targets, options, run] of scenarios) {
    if (!want(scenario)) continue
    const per: Record<string, unknown> = {}
    for (const name of targets) {
      const t = await tracked(startBenchTarget(name))
      try {
        log(`${scenario} on ${t.version}`)
        const cluster = name === 'mqchat-cluster'
        const z = cluster ? clusterSize(size, args.full === true) : size
        per[name] = { version: t.version, ...(cluster ? { options: options(z) } : {}), ...(await run(t, z)) }
      } catch (err) {
        // What the server said about it: its warnings and errors (every node's in the cluster).
        const said = (t.logs?.() ?? '').split('\n').filter((l) => l.startsWith('---') || /"level":(40|50|60)/.test(l))
        if (said.some((l) => !l.startsWith('---'))) log(`${scenario} on ${t.name} failed; the server logged:\n${said.join('\n')}`)
        throw err
      } finally { await t.stop() }
    }
    results[scenario] = { options: options(size), targets: per }
  }
  if (args['no-profile'] !== true && want('chat-pairs')) {
    // Scenario 1 once more under the CPU profiler: mqchat, and in the cluster its first broker and first bridge worker.
    for (const name of ours) {
      const cluster = name === 'mqchat-cluster'
      const dir = mkdtempSync(join(tmpdir(), 'mqchat-prof-'))
      try {
        const t = await tracked(startBenchTarget(name, dir))
        try {
          log(`chat-pairs on ${t.version}, under the CPU profiler`)
          await chatPairs(t, cluster ? clusterSize(size, args.full === true).pairs : size.pairs, log)
        } finally { await t.stop() }
        for (const node of cluster ? PROFILED_NODES : ['mqchat']) {
          const at = cluster ? join(dir, node) : dir
          const file = existsSync(at) ? readdirSync(at).find((f) => f.endsWith('.cpuprofile')) : undefined
          if (!file) throw new Error(`no CPU profile written in ${at}`)
          const summary = summarise(join(at, file))
          const key = cluster ? `profile ${node}` : 'profile'
          results[key] = { scenario: 'chat-pairs', target: cluster ? `mqchat-cluster ${node}` : 'mqchat', ...summary }
          for (const a of summary.byArea.slice(0, 8)) log(`${key}: ${a.pct} % ${a.area}`)
          for (const f of summary.topFunctions.slice(0, 8)) log(`${key}: ${f.pct} % ${f.fn} (${f.where})`)
        }
      } finally { rmSync(dir, { recursive: true, force: true }) }
    }
  }
  const out = { started: started.toISOString(), size: args.full === true ? 'full' : 'quick', mqttVersion, machine: machine(), results }
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}-${String(out.machine.commit).slice(0, 8)}.json`)
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  log(`results: ${file}`)
  if (args.only === undefined && mqttVersion === 4) {
    writeFileSync(join(dir, 'latest.json'), JSON.stringify(out, null, 2) + '\n')
    const { markdown, charts } = render(out as BenchOutput, `results/${basename(file)}`)
    mkdirSync(join(ROOT, 'bench', 'charts'), { recursive: true })
    for (const [name, svg] of Object.entries(charts)) writeFileSync(join(ROOT, 'bench', 'charts', name), svg)
    writeSection(join(ROOT, 'bench', 'README.md'), markdown)
    log('bench/README.md and bench/charts/ rewritten')
  } else {
    log(`a partial run (${args.only !== undefined ? '--only' : 'MQTT 5 clients'}): bench/README.md and bench/charts/ left as they are`)
  }
  const bad = problems(out as BenchOutput)
  for (const b of bad) log(`PROBLEM: ${b}`)
  if (bad.length > 0) return 1
  return 0
}

main().then((code) => process.exit(code), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1) })
