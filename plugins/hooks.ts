// aedes declares its hook types without exporting them; these name them.
import type { AedesOptions } from 'aedes'

export type AuthenticateHook = NonNullable<AedesOptions['authenticate']>
export type AuthorizePublishHook = NonNullable<AedesOptions['authorizePublish']>
export type AuthorizeSubscribeHook = NonNullable<AedesOptions['authorizeSubscribe']>
export type AuthorizeForwardHook = NonNullable<AedesOptions['authorizeForward']>
