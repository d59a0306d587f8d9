// CLI profiles: one JSON file per profile under $MQCHAT_CLI_HOME
// (default ~/.config/mqchat), holding the server URL and the device's credentials.
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { CliError, EXIT } from './errors.js'

export interface Profile {
  server: string
  phone?: string
  user_id?: string
  device_id?: string
  token?: string
}

export const cliHome = (): string => process.env.MQCHAT_CLI_HOME ?? join(homedir(), '.config', 'mqchat')
export const profileName = (flag?: string): string => flag ?? process.env.MQCHAT_CLI_PROFILE ?? 'default'
const fileOf = (name: string): string => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new CliError(`bad profile name "${name}"`, EXIT.usage)
  return join(cliHome(), `${name}.json`)
}

export function readProfile (name: string): Profile | undefined {
  try {
    return JSON.parse(readFileSync(fileOf(name), 'utf8')) as Profile
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new CliError(`cannot read profile ${fileOf(name)}: ${(err as Error).message}`, EXIT.failure)
  }
}

export function writeProfile (name: string, p: Profile): string {
  mkdirSync(cliHome(), { recursive: true, mode: 0o700 })
  const file = fileOf(name)
  writeFileSync(file, JSON.stringify(p, null, 2) + '\n', { mode: 0o600 })
  chmodSync(file, 0o600)
  return file
}

/** The profile of a registered device, or a clear error telling how to get one. */
export function requireDeviceProfile (name: string): Required<Pick<Profile, 'server' | 'user_id' | 'device_id' | 'token'>> & Profile {
  const p = readProfile(name)
  if (!p?.token || !p.device_id || !p.user_id) {
    throw new CliError(`profile "${name}" has no registered device; run: mqchat register <phone> then mqchat verify <phone> <code>`, EXIT.auth)
  }
  return p as Required<Pick<Profile, 'server' | 'user_id' | 'device_id' | 'token'>> & Profile
}
