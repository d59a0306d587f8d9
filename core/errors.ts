// Domain refusals. `code` is the stable machine code clients rely on (it
// appears in HTTP error bodies and in inbox `error` events); `status` is the
// HTTP status the API answers with.
export class DomainError extends Error {
  /** `details`: machine-readable fields a client needs to fix the request (added to the error body and the `error` event). */
  constructor (readonly code: string, message: string, readonly status: number = 400, readonly details?: Record<string, unknown>) {
    super(message)
  }
}

export const notFound = (what: string): DomainError => new DomainError('not_found', `${what} not found`, 404)
export const forbidden = (message: string): DomainError => new DomainError('forbidden', message, 403)
