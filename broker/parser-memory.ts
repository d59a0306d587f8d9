// What each connection's MQTT parser holds, cut to what it needs. Every
// connection has one (aedes' client `_parser`, from mqtt-packet 9), and with
// 10,000 idle sessions its leftovers were a quarter of the heap they took
// (docs/architecture.md § What a connection holds). Both changes reach into
// mqtt-packet's fields, as broker/packet-guard.ts does; test/broker/parser-memory.test.ts
// pins them to the installed version.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// bl's plain list: what mqtt-packet's parser uses of its buffer list (append, consume, read, slice, length) without a stream.
const BufferList = require('bl/BufferList.js') as new () => unknown

interface ParserFields { _list?: { length: number }, settings?: { protocolVersion?: number, bridgeMode?: boolean } }
const parserOf = (client: unknown): ParserFields | undefined => (client as { _parser?: ParserFields })._parser

/**
 * mqtt-packet buffers a connection's unparsed bytes in a BufferListStream, a
 * full Duplex stream it never uses as one (about 1 KiB each). A new
 * connection's empty list is replaced by bl's plain BufferList. (After a
 * parse error the parser makes a stream again; aedes closes that connection.)
 */
export function lightenParser (client: unknown): void {
  const parser = parserOf(client)
  if (parser?._list?.length === 0) parser._list = new BufferList() as { length: number }
}

/** What the parser needs of a connection's CONNECT once it is parsed: its protocol level. Shared by every connection. */
const SETTINGS = new Map([3, 4, 5].map((v) => [v, Object.freeze({ protocolVersion: v })]))

/**
 * The parser keeps the whole CONNECT packet for the connection's life
 * (`settings`) to know its protocol level: the device token, and through it
 * the chunk it was read from (about 3 KiB per connection). Once the
 * connection is ready it keeps the level only.
 */
export function forgetConnectPacket (client: unknown): void {
  const parser = parserOf(client)
  const settings = parser?.settings
  if (!parser || !settings) return
  const kept = SETTINGS.get(settings.protocolVersion ?? 0)
  // A bridge's CONNECT (level | 0x80) also sets how its SUBSCRIBEs are read.
  parser.settings = kept !== undefined && settings.bridgeMode !== true ? kept : { protocolVersion: settings.protocolVersion, bridgeMode: settings.bridgeMode }
}
