// A self-signed certificate for tests, made with openssl.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

/** Writes cert.pem and key.pem for `host` (CN and DNS subject alternative name) into `dir`; returns their paths. */
export function selfSignedCert (dir: string, host: string): { cert: string, key: string } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`], { stdio: 'ignore' })
  return { cert, key }
}
