// RFC 6120 §11.1: an XMPP stream is restricted XML. No DTD (so no entity
// declarations: "billion laughs" and external entities cannot happen), no
// comments, no processing instructions. The XML parser (ltx) would silently
// swallow a DTD, so the raw text is checked before it: in well-formed XML a
// "<" is always markup, so "<!" and "<?" can only start what is forbidden.
// The XML declaration at the very start of a stream is the one exception.

export class RestrictedXml {
  #carry = ''
  #atStart = true

  /** The forbidden construct `chunk` contains (with the end of the previous chunk), or undefined. */
  check (chunk: string): string | undefined {
    let text = this.#carry + chunk
    if (this.#atStart) {
      const t = text.replace(/^\s+/, '')
      if (t.length < 5 && '<?xml'.startsWith(t)) { this.#carry = text; return undefined }
      if (t.startsWith('<?xml')) {
        const end = t.indexOf('?>')
        if (end < 0) {
          if (t.length > 200) return 'an unterminated XML declaration'
          this.#carry = text
          return undefined
        }
        text = t.slice(end + 2)
      }
      this.#atStart = false
    }
    const bang = text.indexOf('<!')
    if (bang >= 0) {
      const rest = text.slice(bang)
      if (rest.startsWith('<!--')) return 'a comment'
      if (rest.startsWith('<![CDATA[')) return 'a CDATA section'
      // Too short to tell which yet: wait for the next chunk (it is refused either way).
      if ('<!--'.startsWith(rest) || '<![CDATA['.startsWith(rest)) { this.#carry = rest; return undefined }
      return 'a DTD or entity declaration'
    }
    if (text.includes('<?')) return 'a processing instruction'
    // A "<" at the end may be the start of one of them.
    this.#carry = text.endsWith('<') ? '<' : ''
    return undefined
  }

  /** A new stream (after STARTTLS or SASL) may start with its own XML declaration. */
  restart (): void {
    this.#carry = ''
    this.#atStart = true
  }
}
