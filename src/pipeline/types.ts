import type { ConsumerDirectory } from './consumers.js'
import type { z } from 'zod'
import type { Logger } from 'pino'
import type { RequestContext } from './context.js'
import type { HttpClient } from '../http-client/types.js'
import type { RevocationMetrics } from '../auth/revocation/metrics.js'
import type { TokenCacheMetrics } from '../auth/token-cache-metrics.js'
import type { Clock, StateStore } from '../store/types.js'
import type { ConfigErrorCode } from '../errors/codes.js'
import type { CidrSet } from '../net/cidr.js'
import type { RedisConnectionInput } from '../store/schema.js'

/** The upstream response head, as seen by `response` handlers (which may change headers). */
export interface UpstreamHead {
  status: number
  readonly headers: Record<string, string | string[] | undefined>
}

/**
 * What a terminal handler answers (an internal route's handler, in place of the proxy). The response phase sees
 * it as an UpstreamHead before it is written, so plugins treat internal and proxied answers alike.
 */
export interface TerminalResponse {
  status: number
  /** Response headers (lower-case names); content-length and x-request-id are set by the writer. */
  headers: Record<string, string | string[] | undefined>
  body?: string | Buffer
}

/** An internal route's handler: runs after the access phase, where a proxied route would forward. */
export type TerminalHandler = (ctx: RequestContext) => TerminalResponse | Promise<TerminalResponse>

export interface PluginInstance {
  /** Runs before proxying, in priority order. Return to continue; throw a GatewayError to answer. */
  access?(ctx: RequestContext): void | Promise<void>
  /** Runs on the upstream response head, in reverse priority order. */
  response?(ctx: RequestContext, head: UpstreamHead): void
  /** Runs after the response is sent. Never throws. */
  log?(ctx: RequestContext, status: number): void
  /** Headers this instance may set upstream: stripped from every client request gateway-wide (strip before set). */
  readonly identityHeaders?: readonly string[]
  /** True if this instance verifies a token and sets `ctx.credential`. */
  readonly providesCredential?: boolean
  /** True if this instance reads `ctx.credential` (a token plugin must run before it). */
  readonly needsCredential?: boolean
  /**
   * True if the route needs the TLS handshake to ask for a client certificate (Kong's tls-handshake-modifier,
   * mtls-auth): TLS listeners configured with client_certificate: none then request one (never require).
   */
  readonly requestClientCertificate?: boolean
  /**
   * True if every request on the route is refused without a client certificate (RFC 8705 §3 strict binding with
   * no other proof allowed): with no TLS listener that is a load error (CB_CFG_NO_TLS_LISTENER). Defaults to
   * requestClientCertificate, for plugins that ask for a certificate only because they need one (mtls-auth).
   */
  readonly requireClientCertificate?: boolean
  /** For readiness (/status/ready): false while a resource this instance needs has never been reachable. */
  ready?(): boolean
  /** Start background work (prefetching keys) once listening. Never throws. */
  start?(): void
  /** Release resources on shutdown and reload. */
  close?(): Promise<void>
}

import type { LocalServices } from './services.js'
export type { LocalServices }

export interface PluginDeps {
  /** Directory of the config file: relative paths in plugin config resolve against it. */
  readonly baseDir: string
  resolvePath(p: string): string
  readonly logger: Logger
  /** Outbound HTTP (IdPs), trusting gateway.trusted_certificates in addition to the system CAs. */
  readonly http: HttpClient
  readonly local: LocalServices
  /** Where the instance sits, for log messages: `services[0].routes[1].plugins[0]`. */
  readonly where: string
  /**
   * Kept for the life of the gateway, across reloads (Kong's shared cache): what an instance learnt from the
   * outside world — an IdP's metadata and public keys — so that its successor in the next config starts from it
   * instead of from nothing (a reload while the IdP is down must not turn a working route into 503s). Keys are
   * chosen by the plugin and must include every setting the value depends on. Absent in `certbound validate`.
   */
  readonly stash?: Map<string, unknown>
  /** Shared state (TTL values, set-if-absent, counters, revocations, notification): the same on every worker and node. */
  readonly store: StateStore
  /** The clock (epoch ms) every TTL, window and expiry is computed from; tests move it instead of sleeping. */
  readonly now: Clock
  /**
   * `gateway.trusted_ips`: proxies whose X-Forwarded-For is believed (see `clientAddress` in src/net/client-address.ts).
   * Absent (hand-built deps): no proxy is trusted.
   */
  readonly trustedIps?: CidrSet
  /**
   * A StateStore on a Redis of the plugin's own (its config embeds `redisConnectionSchema` from src/store/schema.ts),
   * pooled by connection and kept across reloads; call its close() from the instance's close(). Trusts
   * gateway.trusted_certificates for rediss://. `certbound validate` gets a memory store and connects nowhere.
   */
  openStore(redis: RedisConnectionInput): StateStore
  /** Revocation-check metrics (GatewayMetrics.revocation); absent in `certbound validate`. */
  readonly revocationMetrics?: RevocationMetrics
  /** Verified-token cache metrics (GatewayMetrics.tokenCache); absent in `certbound validate`. */
  readonly tokenCacheMetrics?: TokenCacheMetrics
  /** The config's `consumers:` (Kong's consumer mapping: mtls-auth consumer_by, openid-connect consumer_claim). */
  readonly consumers?: ConsumerDirectory
}

/** Thrown by `create` for a problem found in the config (a file that doesn't parse...): reported with position. */
export class PluginConfigError extends Error {
  constructor (readonly path: ReadonlyArray<string | number>, message: string, readonly code: ConfigErrorCode = 'CB_CFG_PLUGIN') {
    super(message)
    this.name = 'PluginConfigError'
  }
}

/**
 * A plugin: a name (the YAML `name:`), a priority (higher runs first, unique), a zod schema for its
 * `config`, and a factory called once per configured instance at load.
 */
export interface PluginDefinition<S extends z.ZodType = z.ZodType> {
  readonly name: string
  readonly priority: number
  readonly description: string
  readonly schema: S
  create(config: z.output<S>, deps: PluginDeps): PluginInstance | Promise<PluginInstance>
}

/** Identity helper that keeps the schema's type for `create`. */
export function definePlugin<S extends z.ZodType> (def: PluginDefinition<S>): PluginDefinition<S> {
  return def
}
