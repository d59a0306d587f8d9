// Connections the server opens to its own broker for a device that has
// already signed in another way: the XMPP gateway's device links, after SASL
// (SCRAM never shows the server the token). The stream object itself is the
// credential: it exists only inside this process, so no network peer can
// present it.
const vouched = new WeakMap<object, string>()

/** The device `conn` (a stream handed to aedes.handle) connects as. */
export function vouchFor (conn: object, deviceId: string): void { vouched.set(conn, deviceId) }

/** The device vouched for on this connection, if any. */
export function vouchedDevice (conn: object): string | undefined { return vouched.get(conn) }
