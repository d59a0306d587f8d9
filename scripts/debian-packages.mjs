// Debian packages the tests and benchmarks talk to, installed with apt-get
// (through sudo when not root) when their commands are missing.
import { spawnSync } from 'node:child_process'

/** Whether a command is on PATH; `py:<module>` checks Debian's Python 3 (/usr/bin/python3, not a python3 earlier on PATH) for a module instead. */
export function have (cmd) {
  if (cmd.startsWith('py:')) return spawnSync('/usr/bin/python3', ['-c', `import ${cmd.slice(3)}`], { stdio: 'ignore' }).status === 0
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

export function ensureDebianPackages (say, pkgs) {
  const missing = pkgs.filter(([cmd]) => !have(cmd))
  if (missing.length === 0) return
  const names = [...new Set(missing.map(([, pkg]) => pkg))]
  say(`installing Debian packages ${names.join(', ')} (needed by: ${missing.map(([c]) => c).join(', ')})`)
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : []
  const run = (args) => {
    const r = spawnSync(sudo[0] ?? args[0], sudo.length ? args : args.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    if (r.status !== 0) throw new Error(`failed: ${args.join(' ')}`)
  }
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', ...names])
}
