// qlobber ships no type declarations; these cover the parts mqchat uses.
declare module 'qlobber' {
  interface QlobberOptions { separator?: string; wildcard_one?: string; wildcard_some?: string; match_empty_levels?: boolean }
  export class QlobberTrue {
    constructor (options?: QlobberOptions)
    add (topic: string): this
    test (topic: string): boolean
  }
}
declare module 'qlobber/aedes/qlobber-sub.js' {
  interface QlobberOptions { separator?: string; wildcard_one?: string; wildcard_some?: string }
  export default class QlobberSub {
    constructor (options?: QlobberOptions)
    add (topic: string, sub: Record<string, unknown>): this
    remove (topic: string, sub: { clientId: string; topic: string }): this
    match (topic: string): Array<Record<string, unknown>>
    subscriptionsCount: number
  }
}
