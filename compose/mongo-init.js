// Run by the mongo-init service (mongosh): initiate replica set rs0 once, then
// wait until it has a primary, so mqchat starts against a writable database.
const members = [
  { _id: 0, host: 'mongo-1:27017' },
  { _id: 1, host: 'mongo-2:27017' },
  { _id: 2, host: 'mongo-3:27017' }
]
try {
  rs.status()
  print('replica set rs0 exists')
} catch (e) {
  print('initiating replica set rs0')
  rs.initiate({ _id: 'rs0', members })
}
for (let i = 0; i < 120; i++) {
  let primary = false
  try { primary = rs.status().members.some((m) => m.stateStr === 'PRIMARY') } catch (e) { /* still initiating */ }
  if (primary) { print('rs0 has a primary'); quit(0) }
  sleep(1000)
}
print('rs0 has no primary after 120 s')
quit(1)
