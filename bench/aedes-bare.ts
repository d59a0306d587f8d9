// The bare-aedes reference of the benchmarks: aedes with its in-memory
// persistence and no hooks, on a TCP port of loopback. Prints its port.
//   node dist/bench/aedes-bare.js [port]
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const aedes = new Aedes()
await aedes.listen()
const server = createServer((socket) => aedes.handle(socket))
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})
process.on('SIGTERM', () => { server.close(); aedes.close(() => process.exit(0)) })
