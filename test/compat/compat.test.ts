// The MQTT conformance suite (mosquitto-compat-tests/) in `npm test`: every
// vector and behaviour case against Debian's Mosquitto and against mqchat,
// open access and chat ACL. Any failure not listed in deviations.txt fails,
// so does a listed deviation that no longer happens, and so does a README
// table that differs from what this run produced.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadDeviations } from '../../mosquitto-compat-tests/src/deviations.js'
import { readmeSection, renderResults } from '../../mosquitto-compat-tests/src/report.js'
import { BUILT_IN, runTargets, type TargetRun } from '../../mosquitto-compat-tests/src/suite.js'
import { DEFAULT_VECTORS, HERE } from '../../mosquitto-compat-tests/src/targets.js'
import { loadVectors } from '../../mosquitto-compat-tests/src/vectors.js'

const deviations = loadDeviations(join(HERE, 'deviations.txt'))
let runs: TargetRun[] = []

before(async () => {
  const vectors = loadVectors(DEFAULT_VECTORS)
  runs = await runTargets([...BUILT_IN], { vectors, deviations, limits: { maxPacket: 0, maxLevels: 0 }, log: (l) => process.stdout.write(`# [compat] ${l}\n`) })
}, { timeout: 15 * 60_000 })

for (const name of BUILT_IN) {
  test(`${name}: every case passes or is a listed deviation; the broker still answers`, () => {
    const run = runs.find((r) => r.target === name)
    assert.ok(run, `${name} ran`)
    assert.ok(run.results.length > 0, 'cases ran')
    const failures = run.results.filter((r) => r.outcome === 'fail').map((r) => `${r.id}: ${r.detail ?? ''}`)
    assert.deepEqual(failures, [], 'unexpected failures (fix the broker, or list the case in deviations.txt with a reason)')
    assert.deepEqual(run.stale.map((d) => `line ${d.line}: ${d.selector}`), [], 'listed deviations that no longer happen (delete them from deviations.txt)')
    assert.ok(run.alive, 'the broker answers CONNECT and PINGREQ after the run')
  })
}

test('the open-access targets replayed every MQTT 3.1.1 vector', () => {
  const v311 = loadVectors(DEFAULT_VECTORS).filter((c) => c.protocol === '3.1.1').length
  assert.ok(v311 > 250, `${v311} MQTT 3.1.1 vectors loaded`)
  for (const name of ['mosquitto', 'mqchat-open']) {
    assert.equal(runs.find((r) => r.target === name)?.results.filter((r) => r.suite === 'vectors MQTT 3.1.1').length, v311, name)
  }
})

test('mosquitto-compat-tests/README.md shows the results of this run (regenerate with `npm run compat`)', () => {
  const readme = readFileSync(join(HERE, 'README.md'), 'utf8')
  assert.equal(readmeSection(readme), renderResults(runs, deviations))
})
