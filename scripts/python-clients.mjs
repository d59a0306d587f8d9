// The Python clients the tests drive, from PyPI: paho-mqtt, pinned with its
// hash in test/clients/requirements.txt, installed once into a virtual
// environment in the cache outside the clone (MQCHAT_CACHE_DIR, default
// ~/.cache/mqchat) that later runs reuse. A new pin makes a new environment.
// Returns the environment's python.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const cache = process.env.MQCHAT_CACHE_DIR ?? join(homedir(), '.cache', 'mqchat')

export function ensurePythonClients (say) {
  const requirements = join(fileURLToPath(new URL('..', import.meta.url)), 'test', 'clients', 'requirements.txt')
  const pin = createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 12)
  const venv = join(cache, `python-clients-${pin}`)
  const python = join(venv, 'bin', 'python')
  const stamp = join(venv, 'installed')
  if (existsSync(stamp)) return python
  say(`installing paho-mqtt from PyPI (${requirements}) into ${venv} (first run only)`)
  rmSync(venv, { recursive: true, force: true })
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: 'inherit' })
    if (r.status !== 0) { say(`failed: ${cmd} ${args.join(' ')}`); process.exit(1) }
  }
  run('/usr/bin/python3', ['-m', 'venv', venv])
  run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--require-hashes', '--only-binary=:all:', '-r', requirements])
  writeFileSync(stamp, new Date().toISOString() + '\n')
  return python
}
