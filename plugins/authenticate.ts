// CONNECT: client id = username = device id, password = device token.
// Anything else gets CONNACK "not authorized" (3.1.1 return code 5) and nothing more.
// The one exception is a connection opened inside this process for a device
// already signed in (plugins/in-process.ts): it needs no password.
import type { Client } from 'aedes'
import type { AuthenticateHook } from './hooks.js'
import type { DeviceService } from '../core/devices.js'
import { bindDevice } from './session.js'
import { vouchedDevice } from './in-process.js'

const NOT_AUTHORIZED = 5

export function authenticate (devices: DeviceService, onRefused: (clientId: string) => void): AuthenticateHook {
  return (client: Client, username: string | undefined, password: Buffer | undefined, done) => {
    const device = username !== client.id
      ? undefined
      : vouchedDevice(client.conn) === client.id
        ? devices.active(client.id)
        : password ? devices.authenticate(password.toString('utf8'), client.id) : undefined
    if (!device) {
      onRefused(client.id)
      const err = Object.assign(new Error('not authorized'), { returnCode: NOT_AUTHORIZED })
      return done(err as Parameters<typeof done>[0], false)
    }
    bindDevice(client, device)
    done(null, true)
  }
}
