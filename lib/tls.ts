// The server's TLS certificate, from PEM files, for every TLS listener (MQTT
// over TLS and WSS, HTTPS, XMPP). reload() reads the files again (on SIGHUP):
// connections already open keep their session, new handshakes get the new
// certificate. A reload that fails (a missing file, a key that does not
// match) keeps the certificate in use and says why. TLS 1.2 and later, with
// the runtime's default ciphers.
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'

export const MIN_TLS_VERSION = 'TLSv1.2'

export class TlsCertificate {
  #options: SecureContextOptions
  #context: SecureContext
  #servers: TlsServer[] = []

  constructor (readonly certPath: string, readonly keyPath: string, private readonly log: Logger) {
    this.#options = this.read()
    this.#context = createSecureContext(this.#options)
  }

  private read (): SecureContextOptions {
    return { cert: readFileSync(this.certPath), key: readFileSync(this.keyPath), minVersion: MIN_TLS_VERSION }
  }

  /** The current context, for a TLS socket made by hand. */
  get context (): SecureContext { return this.#context }
  /** The current options, to create a TLS or HTTPS server with. */
  get options (): SecureContextOptions { return this.#options }

  /** A server whose new handshakes should follow reloads. */
  attach (server: TlsServer): void { this.#servers.push(server) }

  /** Reads the files again; true when the new certificate is in use. */
  reload (): boolean {
    let options: SecureContextOptions
    let context: SecureContext
    try {
      options = this.read()
      context = createSecureContext(options)
    } catch (err) {
      this.log.error({ err, cert: this.certPath, key: this.keyPath }, 'TLS certificate reload failed; the previous certificate stays in use')
      return false
    }
    this.#options = options
    this.#context = context
    for (const s of this.#servers) s.setSecureContext(options)
    this.log.info({ cert: this.certPath }, 'TLS certificate reloaded: new connections use it')
    return true
  }
}
