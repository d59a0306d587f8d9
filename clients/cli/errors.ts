// Exit codes scripts can rely on (documented in `mqchat --help` and the README).
export const EXIT = {
  ok: 0,
  failure: 1, // anything unexpected
  usage: 2, // bad command line
  refused: 3, // the server refused the request (its error code is printed)
  auth: 4, // not registered, wrong or revoked token
  unreachable: 5 // the server could not be reached or did not answer in time
} as const

export class CliError extends Error {
  constructor (message: string, readonly exitCode: number, readonly code?: string) {
    super(message)
  }
}
