import type { IncomingMessage, ServerResponse } from 'node:http'
import type { z } from 'zod'
import type { Logger } from 'pino'
import type { TlsIdentity } from '../server/peer.js'
import type { HttpClient } from '../http-client/types.js'
import type { PathKey } from '../config/diagnostic.js'
import type { RevocationMetrics } from '../auth/revocation/metrics.js'
import type { Clock, StateStore } from '../store/types.js'
import type { RedisConnectionInput } from '../store/schema.js'
import type { ClientActivityRow } from '../authorization-server/client-activity.js'

export interface ExtensionDeps {
  readonly baseDir: string
  resolvePath(p: string): string
  readonly logger: Logger
  readonly http: HttpClient
  /** The gateway's listeners once bound (for building absolute URLs such as the issuer). */
  readonly where: readonly PathKey[]
  /** Shared state, as PluginDeps.store. */
  readonly store: StateStore
  /** The clock, as PluginDeps.now. */
  readonly now: Clock
  /** As PluginDeps.openStore. */
  openStore(redis: RedisConnectionInput): StateStore
  /** State handed on from this extension's previous instance across reloads (PluginDeps.stash). */
  readonly stash?: Map<string, unknown>
  readonly revocationMetrics?: RevocationMetrics
}

/** What an extension serves: requests handled before routing, and services for plugins (deps.local). */
export interface ExtensionInstance {
  /**
   * Handle a request before routing. Return true when the extension answered (it owns `res`), false to let
   * the router handle it. Must decide quickly from the path; called for every request on every listener.
   */
  handle?(req: IncomingMessage, res: ServerResponse, ctx: { tls: TlsIdentity | null, listenerTls: boolean, requestId: string, path: string, query: string, log: Logger }): boolean | Promise<boolean>
  /** In-process services registered under string keys, found by plugins through deps.local. */
  readonly services?: ReadonlyMap<string, unknown>
  /** Paths this extension serves, so routes can't shadow them silently (logged at load). */
  readonly paths?: readonly string[]
  /** The OAuth clients an authorization server knows, with their token counts (admin dashboard). */
  dashboardClients?(): readonly ClientActivityRow[]
  close?(): Promise<void>
}

/** A top-level config section owned by a part of the core (e.g. `authorization_server`). */
export interface GatewayExtension<S extends z.ZodType = z.ZodType> {
  readonly section: string
  readonly schema: S
  create(config: z.output<S>, deps: ExtensionDeps): ExtensionInstance | Promise<ExtensionInstance>
}
