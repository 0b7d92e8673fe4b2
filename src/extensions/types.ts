import type { z } from 'zod'
import type { Logger } from 'pino'
import type { TerminalHandler } from '../pipeline/types.js'
import type { ServiceMap } from '../pipeline/services.js'
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
  /** The gateway's listeners: which have a client_ca (the authorization server's default tls_client_auth trust). */
  readonly listeners?: ReadonlyArray<{ readonly address: string, readonly clientCa: boolean }>
  /** `certbound validate`: check everything, write nothing (no state_dir, no key store). */
  readonly dryRun?: boolean
}

/**
 * An internal route: a path the core itself answers (the authorization server's token endpoint…). It goes through
 * the router and the same plugin chain, response and log phases as a proxied route; `handle` stands where the proxy
 * would. Paths match exactly and before every user route; a user route with the same path is a load error.
 */
export interface InternalRoute {
  /** One of the section's `routeNames`: top-level plugins attach with `route: <name>`; logs and metrics use it. */
  readonly name: string
  readonly paths: readonly string[]
  readonly handle: TerminalHandler
}

/** What an extension serves: internal routes, and services for plugins (deps.local). */
export interface ExtensionInstance {
  /** The routes it answers; each name must be one of the extension's `routeNames`. */
  readonly routes?: readonly InternalRoute[]
  /** In-process services registered under typed keys, found by plugins through deps.local. */
  readonly services?: ServiceMap
  /** The OAuth clients an authorization server knows, with their token counts (admin dashboard). */
  dashboardClients?(): readonly ClientActivityRow[]
  close?(): Promise<void>
}

/** A top-level config section owned by a part of the core (e.g. `authorization_server`). */
export interface GatewayExtension<S extends z.ZodType = z.ZodType> {
  readonly section: string
  readonly schema: S
  /**
   * The names of the internal routes the section creates, known before it is created so that the config can
   * attach plugins to them (`plugins: [{ name: …, route: authorization_server.token }]`) and no user route can take
   * the name.
   */
  readonly routeNames: readonly string[]
  create(config: z.output<S>, deps: ExtensionDeps): ExtensionInstance | Promise<ExtensionInstance>
}
