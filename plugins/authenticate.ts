// CONNECT: client id = username = device id, password = device token.
// Anything else gets CONNACK "not authorized" (3.1.1 return code 5) and nothing more.
// MQTT 5 tells the two apart: a revoked device gets 0x87 (Not authorized: its
// token will never work again; register anew), any other refusal 0x86 (Bad
// User Name or Password). aedes maps 3.1.1's return codes 4 and 5 to those.
// The one exception is a connection opened inside this process for a device
// already signed in (plugins/in-process.ts): it needs no password.
import type { Client } from 'aedes'
import type { AuthenticateHook } from './hooks.js'
import type { DeviceService } from '../core/devices.js'
import { bindDevice } from './session.js'
import { vouchedDevice } from './in-process.js'

const NOT_AUTHORIZED = 5
/** 3.1.1's "bad user name or password", which aedes sends to an MQTT 5 client as 0x86. */
const BAD_CREDENTIALS = 4

export function authenticate (devices: DeviceService, onRefused: (clientId: string) => void): AuthenticateHook {
  return (client: Client, username: string | undefined, password: Buffer | undefined, done) => {
    const device = username !== client.id
      ? undefined
      : vouchedDevice(client.conn) === client.id
        ? devices.active(client.id)
        : password ? devices.authenticate(password.toString('utf8'), client.id) : undefined
    if (!device) {
      onRefused(client.id)
      const revoked = client.version === 5 && username === client.id && (devices.get(client.id)?.revokedAt ?? null) !== null
      const returnCode = client.version === 5 && !revoked ? BAD_CREDENTIALS : NOT_AUTHORIZED
      const err = Object.assign(new Error(revoked ? 'this device was revoked' : 'not authorized'), { returnCode })
      return done(err as Parameters<typeof done>[0], false)
    }
    bindDevice(client, device)
    done(null, true)
  }
}
