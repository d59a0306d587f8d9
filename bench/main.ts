#!/usr/bin/env node
// npm run bench [-- --full] [--only NAME ...]: runs the benchmark scenarios
// against mqchat and the references on this machine, writes the results as
// JSON under bench/results/ (with machine facts, commit and configuration)
// and the summary in bench/README.md.
import { execFileSync } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ROOT } from '../mosquitto-compat-tests/src/targets.js'
import { chatPairs, type PairsOptions } from './scenarios/chat-pairs.js'
import { groupFanout, type FanoutOptions } from './scenarios/group-fanout.js'
import { offlineCatchup, type CatchupOptions } from './scenarios/offline-catchup.js'
import { startBenchTarget, type TargetName } from './targets.js'

export const SCENARIOS = ['chat-pairs', 'group-fanout', 'offline-catchup']

const HELP = `Usage: npm run bench [-- options]

  --full          full sizes (default: quick sizes, a few minutes in all)
  --only NAME     repeatable: run only these scenarios (${SCENARIOS.join(', ')})
  -h, --help      this text

Results: bench/results/<time>-<commit>.json and bench/results/latest.json.`

export interface Size { pairs: PairsOptions, fanout: FanoutOptions, catchup: CatchupOptions }

const QUICK: Size = { pairs: { pairs: 20, workers: 1, payloadBytes: 160, durationMs: 5000, warmupMs: 1000, window: 10 }, fanout: { members: 1024, messages: 20, payloadBytes: 160 }, catchup: { messages: 2000, payloadBytes: 160 } }
const FULL: Size = { pairs: { pairs: 200, workers: 2, payloadBytes: 160, durationMs: 20_000, warmupMs: 5000, window: 10 }, fanout: { members: 1024, messages: 100, payloadBytes: 160 }, catchup: { messages: 10_000, payloadBytes: 160 } }

function machine (): Record<string, unknown> {
  const c = cpus()
  let commit = 'unknown'
  try { commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim() } catch {}
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}`, commit }
}

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({ options: { full: { type: 'boolean' }, only: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } } }).values
  } catch (err) { process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`); return 2 }
  if (args.help === true) { process.stdout.write(HELP + '\n'); return 0 }
  const size = args.full === true ? FULL : QUICK
  const log = (s: string): void => { process.stdout.write(`[bench] ${s}\n`) }
  const want = (s: string): boolean => args.only === undefined || args.only.includes(s)
  const started = new Date()
  const results: Record<string, unknown> = {}
  if (want('chat-pairs')) {
    const per: Record<string, unknown> = {}
    for (const name of ['mqchat', 'mosquitto', 'aedes'] as TargetName[]) {
      const t = await startBenchTarget(name)
      try {
        log(`chat-pairs on ${t.version}`)
        per[name] = { version: t.version, ...(await chatPairs(t, size.pairs, log)) }
      } finally { await t.stop() }
    }
    results['chat-pairs'] = { options: size.pairs, targets: per }
  }
  // mqchat only: the references have no groups and no offline history of their own.
  for (const [name, run] of [
    ['group-fanout', async (t: Awaited<ReturnType<typeof startBenchTarget>>) => groupFanout(t, size.fanout, log)],
    ['offline-catchup', async (t: Awaited<ReturnType<typeof startBenchTarget>>) => offlineCatchup(t, size.catchup, log)]
  ] as const) {
    if (!want(name)) continue
    const t = await startBenchTarget('mqchat')
    try {
      log(`${name} on ${t.version}`)
      results[name] = { options: name === 'group-fanout' ? size.fanout : size.catchup, targets: { mqchat: { version: t.version, ...(await run(t)) } } }
    } finally { await t.stop() }
  }
  const out = { started: started.toISOString(), size: args.full === true ? 'full' : 'quick', machine: machine(), results }
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}-${String(out.machine.commit).slice(0, 8)}.json`)
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(out, null, 2) + '\n')
  log(`results: ${file}`)
  return 0
}

main().then((code) => process.exit(code), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1) })
