// The CLI's end-to-end encryption primitives: vodozemac (Olm and Megolm),
// through the committed WebAssembly build of clients/cli/e2ee (see
// scripts/build-e2ee.mjs). Loaded on first use, so commands that encrypt
// nothing never pay for it.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type * as Binding from './e2ee/pkg/mqchat_e2ee.js'

export type Vodozemac = typeof Binding
let loaded: Vodozemac | undefined

export function vodozemac (): Vodozemac {
  // From dist/clients/cli/ to the repository's clients/cli/e2ee/pkg (a CommonJS module).
  loaded ??= createRequire(import.meta.url)(fileURLToPath(new URL('../../../clients/cli/e2ee/pkg/mqchat_e2ee.js', import.meta.url))) as Vodozemac
  return loaded
}
