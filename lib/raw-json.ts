// JSON with stored JSON text spliced in as it is. A message body is kept as
// the JSON text it arrived as; readers send it on without parsing it again,
// so no stored row (however it nests) can make a reader fail.
import { randomBytes } from 'node:crypto'

/** JSON text to be written into a response as it is. It must be valid JSON (a stored body is: it was written by JSON.stringify). */
export class RawJson {
  constructor (readonly text: string) {}
}

/**
 * JSON.stringify, with every RawJson written as its text. Each one is first
 * written as a string holding a random marker, which nothing else in the
 * value can hold, and then replaced.
 */
export function stringifyWithRaw (value: unknown): string {
  const marker = `raw-${randomBytes(12).toString('hex')}-`
  const raws: string[] = []
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (!(v instanceof RawJson)) return v
    raws.push(v.text)
    return `${marker}${raws.length - 1}`
  })
  if (raws.length === 0) return text
  return text.replace(new RegExp(`"${marker}(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)] as string)
}
