// The device behind an authenticated MQTT client, recorded at CONNECT.
import type { Device } from '../store/types.js'

const devices = new WeakMap<object, Device>()

export const bindDevice = (client: object, device: Device): void => { devices.set(client, device) }
export const deviceOf = (client: object | null | undefined): Device | undefined => client ? devices.get(client) : undefined
