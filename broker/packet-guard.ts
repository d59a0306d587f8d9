// Maximum MQTT packet size. aedes (1.2) has no such option and mqtt-packet
// buffers a whole packet before parsing it, so a client could make the broker
// hold a 256 MB packet. This watches the bytes aedes reads from a connection
// (the 'data' event fires for every chunk read(), without changing how aedes
// consumes the stream), decodes each fixed header's remaining length, and
// destroys the connection as soon as a header announces a packet over the limit.
import type { Duplex } from 'node:stream'

export function guardPacketSize (conn: Duplex, maxBytes: number, onViolation: (size: number) => void): void {
  let state: 'type' | 'length' | 'body' = 'type'
  let length = 0
  let multiplier = 1
  let headerBytes = 0
  let remaining = 0

  conn.on('data', (chunk: Buffer) => {
    let i = 0
    while (i < chunk.length) {
      if (state === 'body') {
        const take = Math.min(remaining, chunk.length - i)
        remaining -= take
        i += take
        if (remaining === 0) state = 'type'
        continue
      }
      const byte = chunk[i++]
      if (state === 'type') {
        state = 'length'
        length = 0
        multiplier = 1
        headerBytes = 1
        continue
      }
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      headerBytes++
      if ((byte & 0x80) !== 0 && headerBytes < 5) continue
      if (length + headerBytes > maxBytes) {
        onViolation(length + headerBytes)
        conn.destroy()
        return
      }
      remaining = length
      state = remaining === 0 ? 'type' : 'body'
    }
  })
}
