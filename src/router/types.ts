import type { ResolvedService } from '../config/validate.js'
import type { PluginInstance } from '../pipeline/types.js'
import type { RequestContext } from '../pipeline/context.js'
import type { UpstreamHead, TerminalHandler } from '../pipeline/types.js'

/**
 * A route compiled at load: matchers, the plugin chain in priority order, and precomputed upstream data.
 * A proxied route has a `service`; an internal route (the authorization server's endpoints) has a `terminal`
 * handler instead, and goes through the same router, plugin chain, response and log phases.
 */
export interface CompiledRoute {
  readonly name: string
  readonly where: string
  /** The upstream; undefined on an internal route. */
  readonly service: CompiledService | undefined
  /** The handler that answers an internal route (where a proxied route forwards). */
  readonly terminal: TerminalHandler | undefined
  readonly stripPath: boolean
  readonly preserveHost: boolean
  readonly pathHandling: 'v0' | 'v1'
  readonly protocols: ReadonlySet<'http' | 'https'>
  /** Access handlers, priority order, bound once at load. */
  readonly access: ReadonlyArray<(ctx: RequestContext) => void | Promise<void>>
  /** Response handlers, reverse priority order. */
  readonly response: ReadonlyArray<(ctx: RequestContext, head: UpstreamHead) => void>
  readonly log: ReadonlyArray<(ctx: RequestContext, status: number) => void>
  readonly plugins: readonly PluginInstance[]
  readonly pluginNames: readonly string[]
}

export interface CompiledService {
  readonly name: string
  readonly resolved: ResolvedService
  /** `http://host:port` */
  readonly origin: string
  /** Host header value when preserve_host is off (port omitted when default). */
  readonly hostHeader: string
  /** Service path without a trailing slash ('' for none). */
  readonly basePath: string
  readonly basePathEndsWithSlash: boolean
}

/** The result of matching a request: the route and the part of the path a strip_path route removes. */
export interface RouteMatch {
  readonly route: CompiledRoute
  /** Length of the matched prefix to strip (0 if none). */
  readonly stripLength: number
}
