// The benchmark report: its smoke check must catch runs without figures or
// with lost messages (CI relies on it), and ratios are mqchat over the reference.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { barChart, problems, render, type BenchOutput } from '../../bench/report.js'
import { parseCommandStats, perMessage } from '../../bench/redis-commands.js'
import { describeByProcess, lastCounters, perMessageByProcess, type CountsByNode, type NodeCounts } from '../../bench/store-commands.js'

const run = (over: Record<string, unknown> = {}): BenchOutput => ({
  started: '2026-11-22T00:00:00.000Z',
  size: 'quick',
  machine: { cpu: 'test', cores: 2, memoryBytes: 2 ** 30, node: 'v20', commit: 'abc' },
  results: {
    'chat-pairs': {
      options: { pairs: 2, payloadBytes: 160, window: 10 },
      targets: {
        mqchat: { version: 'm', maxRate: 1000, serverCores: 1, generatorCores: 0.2, latency: [{ load: 0.25, achievedRate: 250, p50Ms: 1, p99Ms: 2, p999Ms: 3 }], ...over },
        mosquitto: { version: 'q', maxRate: 20000, serverCores: 0.5, generatorCores: 1, latency: [] }
      }
    },
    'reconnect-storm': { options: { devices: 10, perDevice: 5 }, targets: { mqchat: { version: 'm', allConnectedMs: 10, drainedMs: 12, lost: 0, duplicates: 0 } } }
  }
})

test('a complete run has no problems; its table gives mqchat\'s ratio to the reference', () => {
  assert.deepEqual(problems(run()), [])
  const { markdown, charts } = render(run(), 'results/x.json')
  assert.match(markdown, /\| mqchat \(m\) \| 1,000 \| 0.050× \|/)
  assert.match(markdown, /\| mqchat \(m\) \|[^\n]*\| 1,000 µs \|/, 'server CPU per delivered message: 1 core at 1,000 msg/s')
  assert.match(markdown, /\| mosquitto \(q\) \|[^\n]*\| 25 µs \|/)
  assert.ok(charts['throughput.svg']?.startsWith('<svg'))
})

test('missing figures, lost or duplicated messages and failed connections are problems', () => {
  assert.deepEqual(problems(run({ maxRate: 0 })), ['chat-pairs on mqchat: no maxRate'])
  assert.deepEqual(problems(run({ maxRate: Number.NaN })), ['chat-pairs on mqchat: no maxRate'])
  assert.deepEqual(problems(run({ lost: 3 })), ['chat-pairs on mqchat: lost 3'])
  assert.deepEqual(problems(run({ count: 10, connected: 9 })), ['chat-pairs on mqchat: 9 of 10 connected'])
})

test('bar charts scale to the largest value and skip missing ones', () => {
  const svg = barChart('t', 'u', ['a'], [{ name: 'x', values: [10] }, { name: 'y', values: [5] }, { name: 'z', values: [Number.NaN] }])
  const heights = [...svg.matchAll(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([\d.]+)" fill="#[0-9a-f]+"><title>/g)].map((m) => Number(m[1]))
  assert.equal(heights.length, 2)
  assert.ok(Math.abs(heights[0]! - 2 * heights[1]!) < 1e-6, 'bar heights are proportional')
})

test('the connections table says how its heap was read', () => {
  const conns = (afterGc: boolean): BenchOutput => {
    const r = run()
    r.results.connections = {
      options: { count: 10, concurrency: 5 },
      targets: { mqchat: { version: 'm', count: 10, connected: 10, connectPerSec: 100, rssPerConnBytes: 4096, heapPerConnBytes: 2048, ...(afterGc ? { heapAfterGc: true } : {}) } }
    }
    return r
  }
  assert.match(render(conns(true), 'x').markdown, /heap in use per connection \(after a forced GC\)[^\n]*\n[^\n]*\n\| mqchat \(m\) \|[^\n]*\| 4\.0 KiB \| 2\.0 KiB \|/)
  assert.match(render(conns(false), 'x').markdown, /heap in use per connection \(no forced GC\)/)
})

test('Redis commands per delivered message: counted from INFO commandstats between two readings, the reading itself left out, and reported for the cluster', () => {
  const before = parseCommandStats('# Commandstats\r\ncmdstat_xadd:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=1,usec=9\r\n')
  const after = parseCommandStats('# Commandstats\r\ncmdstat_xadd:calls=110,usec=50\r\ncmdstat_evalsha:calls=300,usec=9\r\ncmdstat_info:calls=2,usec=9\r\n')
  const r = perMessage(before, after, 100)
  assert.deepEqual(r, { total: 4, byCommand: [{ command: 'evalsha', perMessage: 3 }, { command: 'xadd', perMessage: 1 }] })
  const out = run()
  ;(out.results['chat-pairs'] as { targets: Record<string, Record<string, unknown>> }).targets['mqchat-cluster'] = { version: 'c', maxRate: 100, serverCores: 1, generatorCores: 0.1, latency: [], redisCommands: r }
  assert.match(render(out, 'x').markdown, /Redis commands per delivered message[^\n]*: 4\.0 — evalsha 3\.00, xadd 1\.00\./)
})

test('per-process command counts: the latest SIGUSR2 line of each log, and the difference per message', () => {
  const line = (mongo: Record<string, number>, redis: Record<string, number>): string =>
    JSON.stringify({ level: 30, msg: 'counters', counters: { mongoCommands: mongo, redisCommands: redis } })
  const log = ['{"level":30,"msg":"ready"}', line({ insert: 10 }, { xadd: 5 }), line({ insert: 30, find: 2 }, { xadd: 45, eval: 40 }), '{"level":30,"ms'].join('\n')
  const last = lastCounters(log)
  assert.equal(last.lines, 2)
  assert.deepEqual(last.counts, { mongo: { insert: 30, find: 2 }, redis: { xadd: 45, eval: 40 } })
  const before: CountsByNode = new Map([['broker-1', { mongo: { insert: 10 }, redis: { xadd: 5 } }]])
  const after: CountsByNode = new Map<string, NodeCounts>([['broker-1', last.counts!], ['bridge-1', { mongo: { insert: 20 }, redis: {} }]])
  const redis = perMessageByProcess(before, after, 'redis', 20)
  assert.equal(redis.total, 4)
  assert.deepEqual(redis.byProcess.map((p) => [p.name, p.perMessage]), [['bridge-1', 0], ['broker-1', 4]])
  assert.deepEqual(redis.byProcess[1]!.byCommand, [{ command: 'xadd', perMessage: 2 }, { command: 'eval', perMessage: 2 }])
  const mongo = perMessageByProcess(before, after, 'mongo', 20)
  assert.equal(mongo.total, 2.1)
  assert.match(describeByProcess(mongo), /^bridge-1 1\.00 \(insert 1\.00\); broker-1 1\.10 \(insert 1\.00, find 0\.10\)$/)
})
