// `mqchat admin`: the operator's commands, over the admin listener
// (api/admin.ts) with the admin token.
import { readFileSync } from 'node:fs'
import { CliError, EXIT } from './errors.js'
import { call } from './http.js'

export interface AdminOptions { url: string, token: string, json: boolean }

/** The admin token: --token-file, else $MQCHAT_ADMIN_TOKEN. */
export function adminToken (tokenFile: string | undefined): string {
  const token = tokenFile !== undefined ? readFileSync(tokenFile, 'utf8').trim() : process.env.MQCHAT_ADMIN_TOKEN ?? ''
  if (token === '') throw new CliError('the admin token is needed: set MQCHAT_ADMIN_TOKEN or pass --token-file FILE', EXIT.usage)
  return token
}

type Json = Record<string, any>

export async function admin (args: string[], o: AdminOptions, usage: string): Promise<number> {
  const get = async (path: string): Promise<Json> => await call<Json>(o.url, 'GET', path, { token: o.token })
  const send = async (method: string, path: string): Promise<Json> => await call<Json>(o.url, method, path, { token: o.token })
  const print = (value: unknown, human: string): void => { process.stdout.write((o.json ? JSON.stringify(value) : human) + '\n') }
  const [what, sub, arg] = args
  const enc = encodeURIComponent
  if (what === 'stats') {
    const r = await get('/admin/v1/stats')
    const kv = (rec: Record<string, number>): string => Object.entries(rec).map(([k, v]) => `${k} ${v}`).join(', ') || '-'
    print(r, `node ${r.node}: ${r.connections} connections, ${r.messages_per_second} messages/s (last minute), ${r.messages_total} messages since start\nqueues: ${kv(r.queues)}\nstores: ${kv(r.stores)}`)
    return EXIT.ok
  }
  if (what === 'users' && sub === 'find' && arg !== undefined) {
    const r = await get(`/admin/v1/users?${arg.startsWith('u_') ? `id=${enc(arg)}` : `phone=${enc(arg)}`}`)
    if (o.json) for (const u of r.users) print(u, '')
    else process.stdout.write(r.users.map((u: Json) => `${u.user_id}  ${u.phone}  ${u.devices} devices${u.banned === true ? '  BANNED' : ''}  since ${new Date(u.created_at).toISOString()}`).join('\n') + (r.users.length > 0 ? '\n' : '(nobody)\n'))
    return EXIT.ok
  }
  if (what === 'user' && arg !== undefined) {
    const path = `/admin/v1/users/${enc(arg)}`
    if (sub === 'show') {
      const u = await get(path)
      print(u, `${u.user_id}  ${u.phone}${u.name !== null ? `  "${u.name}"` : ''}${u.banned === true ? '  BANNED' : ''}\ndevices: ${u.devices.map((d: Json) => `${d.device_id} (${d.kind}, ${d.name})`).join(', ') || '-'}\nchats: ${u.chats.join(', ') || '-'}\ncontacts uploaded: ${u.contacts}`)
      return EXIT.ok
    }
    if (sub === 'ban' || sub === 'unban') {
      const r = await send(sub === 'ban' ? 'POST' : 'DELETE', `${path}/ban`)
      print(r, sub === 'ban' ? `${arg} banned: their devices are disconnected and refused` : `${arg} may sign in again`)
      return EXIT.ok
    }
    if (sub === 'delete') {
      const r = await send('DELETE', path)
      print(r, `${arg} erased: left ${r.chats} chats, ${r.messages} messages deleted, ${r.media} media files deleted`)
      return EXIT.ok
    }
  }
  if (what === 'chat' && sub === 'show' && arg !== undefined) {
    const c = await get(`/admin/v1/chats/${enc(arg)}`)
    print(c, `${c.chat_id}  ${c.kind}${c.name !== null ? ` "${c.name}"` : ''}  e2ee ${c.e2ee}${c.disappearing !== null ? `  disappearing ${c.disappearing} s` : ''}  last seq ${c.last_seq}\nmembers: ${c.members.map((m: Json) => `${m.user_id}${m.role === 'admin' ? ' (admin)' : ''}`).join(', ')}`)
    return EXIT.ok
  }
  if (what === 'device' && sub === 'revoke' && arg !== undefined) {
    const r = await send('DELETE', `/admin/v1/devices/${enc(arg)}`)
    print(r, `${arg} (of ${r.user_id}) revoked`)
    return EXIT.ok
  }
  throw new CliError(`unknown admin command\n\n${usage}`, EXIT.usage)
}
