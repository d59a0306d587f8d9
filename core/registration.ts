// Registration by phone number and one-time code. A verified phone gets a
// user (created on first verification) and a new device with its token.
import { randomInt, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import type { DirectoryStore } from '../store/types.js'
import { memoryCounters, type Counter, type CounterFactory } from '../lib/rate.js'
import { DomainError } from './errors.js'
import { hashSecret, newUserId } from './ids.js'
import type { DeviceService } from './devices.js'

/** Delivers a one-time code to a phone (SMS gateway, …). */
export interface CodeSender { send (phone: string, code: string, expiresIn: number): Promise<void> }

/** The default sender: writes the code to the server log. */
export class LogCodeSender implements CodeSender {
  constructor (private readonly log: Logger) {}
  async send (phone: string, code: string): Promise<void> {
    this.log.info({ phone, code }, 'one-time registration code (log sender)')
  }
}

/** POSTs {"phone","code","expires_in"} to an operator's endpoint (an SMS gateway adapter); any 2xx is delivered. */
export class WebhookCodeSender implements CodeSender {
  constructor (private readonly url: string, private readonly secret: string) {}
  async send (phone: string, code: string, expiresIn: number): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (this.secret) headers.authorization = `Bearer ${this.secret}`
    let res: Response
    try {
      res = await fetch(this.url, { method: 'POST', headers, body: JSON.stringify({ phone, code, expires_in: expiresIn }), signal: AbortSignal.timeout(5000) })
    } catch (err) {
      throw new DomainError('code_delivery_failed', `the code could not be sent: ${(err as Error).message}`, 502)
    }
    if (!res.ok) throw new DomainError('code_delivery_failed', `the code could not be sent: the gateway answered ${res.status}`, 502)
  }
}

export const PHONE_PATTERN = '^\\+[1-9][0-9]{6,14}$'

export interface RegistrationOptions {
  ttlSeconds: number
  maxAttempts: number
  perPhonePerHour: number
  perIpPerHour: number
  returnCodes: boolean
  /** Where attempts are counted (default: in memory; the cluster profile: Redis). */
  counters?: CounterFactory
}

export class RegistrationService {
  #perPhone: Counter
  #perIp: Counter

  constructor (
    private readonly directory: DirectoryStore,
    private readonly devices: DeviceService,
    private readonly sender: CodeSender,
    private readonly opts: RegistrationOptions
  ) {
    const counters = opts.counters ?? memoryCounters
    this.#perPhone = counters('otp-phone', opts.perPhonePerHour, 3_600_000)
    this.#perIp = counters('otp-ip', opts.perIpPerHour, 3_600_000)
  }

  /** Charges the client address; a refused request charges nothing else. */
  private async limitAddress (ip: string): Promise<void> {
    if (!await this.#perIp.hit(ip)) throw new DomainError('rate_limited', 'too many registration attempts from this address; try again later', 429)
  }

  /**
   * Sends a code, unless one sent earlier is still valid: then nothing is
   * sent and that code stays as it is (someone else asking for the same
   * number cancels nothing; the code went to the phone, whoever asked).
   * Only codes actually sent count against the phone's hourly budget.
   */
  async requestCode (phone: string, ip: string): Promise<{ expiresIn: number, code?: string, sent: boolean }> {
    await this.limitAddress(ip)
    const pending = await this.directory.getCode(phone)
    const now = Date.now()
    if (pending && pending.expiresAt > now) return { expiresIn: Math.ceil((pending.expiresAt - now) / 1000), sent: false }
    if (!await this.#perPhone.hit(phone)) throw new DomainError('rate_limited', 'too many codes for this number this hour; use one you received, or try again later', 429)
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
    await this.directory.putCode({ phone, codeHash: hashSecret(`${phone}:${code}`), expiresAt: Date.now() + this.opts.ttlSeconds * 1000, attempts: 0 })
    try {
      await this.sender.send(phone, code, this.opts.ttlSeconds)
    } catch (err) {
      await this.directory.deleteCode(phone)
      throw err
    }
    return this.opts.returnCodes ? { expiresIn: this.opts.ttlSeconds, code, sent: true } : { expiresIn: this.opts.ttlSeconds, sent: true }
  }

  /**
   * Checks and uses up a code sent to `phone` (it confirms that the caller
   * holds the number now). Guesses are bounded per code (maxAttempts, then it
   * is void) and per address.
   */
  async confirm (phone: string, code: string, ip: string): Promise<void> {
    await this.limitAddress(ip)
    const stored = await this.directory.getCode(phone)
    const invalid = new DomainError('invalid_code', 'the code is wrong, expired or already used; request a new one', 401)
    if (!stored || stored.expiresAt <= Date.now()) throw invalid
    const presented = Buffer.from(hashSecret(`${phone}:${code}`), 'hex')
    if (!timingSafeEqual(presented, Buffer.from(stored.codeHash, 'hex'))) {
      if (await this.directory.countAttempt(phone) >= this.opts.maxAttempts) await this.directory.deleteCode(phone)
      throw invalid
    }
    await this.directory.deleteCode(phone)
  }

  async verify (phone: string, code: string, ip: string, deviceName: string): Promise<{ userId: string, deviceId: string, token: string, newUser: boolean }> {
    await this.confirm(phone, code, ip)
    let user = await this.directory.getUserByPhone(phone)
    if (user !== undefined && this.devices.isBanned(user.id)) throw new DomainError('banned', 'this account is banned by the server\'s operator', 403)
    const newUser = user === undefined
    if (!user) {
      user = { id: newUserId(), phone, createdAt: Date.now() }
      await this.directory.createUser(user)
    }
    // The phone number is the account's root of trust: a verification makes the new primary device, and every
    // earlier device of the user (a lost or stolen phone, the devices linked from it) is revoked.
    for (const earlier of this.devices.list(user.id)) await this.devices.revoke(user.id, earlier.id)
    const { device, token } = await this.devices.create(user.id, deviceName)
    return { userId: user.id, deviceId: device.id, token, newUser }
  }
}
