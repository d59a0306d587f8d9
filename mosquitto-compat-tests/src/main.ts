#!/usr/bin/env node
// mosquitto-compat-tests: replay Mosquitto's MQTT vectors and our behaviour
// cases against brokers, classify every result against deviations.txt, and
// (with --write-readme) regenerate the results table in README.md.
//
//   node dist/mosquitto-compat-tests/src/main.js [options]
//   npm run compat            (all four built-in targets, README rewritten)
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadDeviations } from './deviations.js'
import { renderResults, writeReadme } from './report.js'
import { BUILT_IN, runTargets } from './suite.js'
import { DEFAULT_VECTORS, HERE } from './targets.js'
import { loadVectors } from './vectors.js'


const HELP = `Usage: mosquitto-compat-tests [options]

Runs the MQTT conformance suite: Mosquitto's packet vectors (MQTT 3.1, 3.1.1, 5)
and our behaviour cases, against brokers it starts itself or one you name.

  --target NAME|HOST:PORT  repeatable. Built in: ${BUILT_IN.join(', ')}
                           (started on free loopback ports and stopped afterwards).
                           HOST:PORT runs the open-access cases against a broker
                           already running there. Default: all built-in targets.
  --max-packet BYTES       for HOST:PORT targets: the broker's packet size limit; the size case
                           sends a packet just under it and one just over it (default 1048576)
  --max-levels N           for HOST:PORT targets: the broker's topic level limit (default 100)
  --only TEXT              repeatable: only cases whose id contains TEXT
  --vectors DIR            vector directory (default ../shared/mqtt-vectors/mosquitto)
  --deviations FILE        expected deviations (default mosquitto-compat-tests/deviations.txt)
  --write-readme           rewrite the results table in mosquitto-compat-tests/README.md
  --json FILE              write every result as JSON
  -h, --help               this text

Exit status: 0 when every case passed or is a listed deviation and no listed
deviation has stopped happening; 1 otherwise; 2 on bad usage.`

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({
      options: {
        target: { type: 'string', multiple: true },
        only: { type: 'string', multiple: true },
        vectors: { type: 'string' },
        deviations: { type: 'string' },
        'max-packet': { type: 'string' },
        'max-levels': { type: 'string' },
        'write-readme': { type: 'boolean' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`)
    return 2
  }
  if (args.help === true) { process.stdout.write(HELP + '\n'); return 0 }
  const specs = args.target ?? [...BUILT_IN]
  if (args['write-readme'] === true && (args.only !== undefined || specs.join() !== BUILT_IN.join())) {
    process.stderr.write('--write-readme needs the whole suite on the built-in targets (no --target, no --only)\n')
    return 2
  }
  const vectors = loadVectors(args.vectors ?? DEFAULT_VECTORS)
  const deviations = loadDeviations(args.deviations ?? join(HERE, 'deviations.txt'))
  const limits = { maxPacket: Number(args['max-packet'] ?? 1048576), maxLevels: Number(args['max-levels'] ?? 100) }
  if (!Number.isInteger(limits.maxPacket) || !Number.isInteger(limits.maxLevels)) { process.stderr.write('--max-packet and --max-levels take whole numbers\n'); return 2 }
  const log = (l: string): void => { process.stdout.write(`[compat] ${l}\n`) }
  const runs = await runTargets(specs, { vectors, deviations, only: args.only, log, limits })
  const section = renderResults(runs, deviations)
  if (args.json !== undefined) writeFileSync(args.json, JSON.stringify(runs, null, 2) + '\n')
  if (args['write-readme'] === true) {
    writeReadme(join(HERE, 'README.md'), section)
    process.stdout.write('[compat] README.md results table rewritten\n')
  } else {
    process.stdout.write(section + '\n')
  }
  const bad = runs.some((r) => !r.alive || r.stale.length > 0 || r.results.some((x) => x.outcome === 'fail'))
  return bad ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().then((code) => process.exit(code), (err: Error) => { process.stderr.write(`${err.stack ?? err.message}\n`); process.exit(1) })
}
