// The Node versions the server runs on: 22.13 and later (Node 22 and 24 are
// the supported LTS lines). Earlier versions lack node:sqlite without a flag.
export const MIN_NODE = [22, 13] as const

/** Why this Node cannot run the server, or undefined when it can. */
export function unsupportedNode (version: string = process.versions.node): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return undefined
  return `mqchat serve needs Node ${MIN_NODE.join('.')} or later (Node 22 or 24 LTS); this is Node ${version}. ` +
    'Run it with `npm start`, which uses the Node that `npm install` put in node_modules, or install a supported Node.'
}
