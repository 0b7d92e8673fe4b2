import { resolve } from 'node:path'
import type { Logger } from 'pino'
import type { LoadedConfig, ResolvedPlugin, ResolvedRoute, ResolvedService } from '../config/validate.js'
import { ConfigError, formatPath, type PathKey } from '../config/diagnostic.js'
import { sortDiagnostics } from '../config/config-set.js'
import { CONSUMER_HEADERS, createConsumerDirectory } from '../pipeline/consumers.js'
import type { PluginDeps, PluginInstance } from '../pipeline/types.js'
import { ServiceMap } from '../pipeline/services.js'
import { PluginConfigError } from '../pipeline/types.js'
import type { GatewayExtension, ExtensionInstance, InternalRoute } from '../extensions/types.js'
import { Router, type RouteSpec } from '../router/router.js'
import type { CompiledRoute, CompiledService } from '../router/types.js'
import { StripSet } from '../proxy/headers.js'
import { UpstreamPools } from '../proxy/pools.js'
import { createHttpClient, type HttpClient } from '../http-client/index.js'
import { CidrSet } from '../net/cidr.js'
import { InFlight } from './in-flight.js'
import type { RevocationMetrics } from '../auth/revocation/metrics.js'
import type { TokenCacheMetrics } from '../auth/token-cache-metrics.js'
import type { ConnectHoldMetrics } from '../proxy/connect-hold.js'
import type { Clock, StateStore } from '../store/types.js'
import { StorePool } from '../store/pool.js'

/** Everything a request needs, built once per config load and frozen; swapped atomically on reload. */
export interface Runtime {
  readonly config: LoadedConfig
  readonly router: Router
  readonly routes: readonly CompiledRoute[]
  /** The sections' internal routes (the authorization server's endpoints), matched before `routes`. */
  readonly internalRoutes: readonly CompiledRoute[]
  readonly strip: StripSet
  readonly pools: UpstreamPools
  readonly http: HttpClient
  readonly instances: ReadonlyArray<{ plugin: ResolvedPlugin, instance: PluginInstance }>
  readonly extensions: readonly ExtensionInstance[]
  /** A plugin needs TLS listeners to ask for client certificates. */
  readonly requestClientCertificate: boolean
  readonly trustedIps: CidrSet
  readonly adminAllow: CidrSet
  /** Requests and WebSocket tunnels in flight on this runtime; close() waits for them. */
  readonly inflight: InFlight
  ready(): boolean
  /**
   * Wait for the requests and tunnels in flight (the event of the count reaching zero) up to `drainMs`, close the
   * tunnels still open, then release pools, plugins and sections.
   */
  close(drainMs: number): Promise<void>
}

export interface CompileOptions {
  logger: Logger
  extensions: readonly GatewayExtension[]
  /** PluginDeps.stash: state plugin instances hand on to their successors across reloads. */
  stash?: Map<string, unknown>
  /** The gateway's shared-state store (lives across reloads). */
  store: StateStore
  now: Clock
  /** deps.openStore's connections (absent: a dry-run pool is made for this compile). */
  pool?: StorePool
  /** PluginDeps.revocationMetrics. */
  revocationMetrics?: RevocationMetrics
  /** PluginDeps.tokenCacheMetrics. */
  tokenCacheMetrics?: TokenCacheMetrics
  /** The upstream pools' connect-failure holds (certbound_upstream_fail_fast_total). */
  upstreamHoldMetrics?: ConnectHoldMetrics
  /** A plugin's or section's close() failed (logged and counted by the gateway, never swallowed). */
  onCloseError?: (err: unknown) => void
  /** `certbound validate`: extensions check without writing anything. */
  dryRun?: boolean
}

/** Create plugin and extension instances, compile routes and the router. Throws ConfigError. */
export async function compileRuntime (cfg: LoadedConfig, opts: CompileOptions): Promise<Runtime> {
  const src = cfg.source
  const http = createHttpClient({ trustedCa: cfg.trustedCa })
  const local = new ServiceMap()
  const openStore = openStoreFor(opts, cfg.trustedCa)
  const extensions: Array<{ section: string, path: readonly PathKey[], instance: ExtensionInstance }> = []
  const cleanup: Array<() => Promise<void>> = [() => http.close()]
  const fail = async (): Promise<never> => {
    await Promise.allSettled(cleanup.map(c => c()))
    throw new ConfigError(cfg.files, sortDiagnostics(src.diagnostics, cfg.files))
  }

  for (const ext of opts.extensions) {
    const sec = cfg.sections[ext.section]
    if (sec === undefined) continue
    try {
      // relative paths resolve against the file the section came from (several files: `-c a.yml -c b.yml`)
      const dir = src.dirOf(sec.path)
      const inst = await ext.create(sec.value as never, { baseDir: dir, resolvePath: (p: string) => resolve(dir, p), logger: opts.logger.child({ component: ext.section }), http, where: sec.path, store: opts.store, now: opts.now, stash: opts.stash, revocationMetrics: opts.revocationMetrics, dryRun: opts.dryRun, openStore, listeners: cfg.listeners.map(l => ({ address: l.address, clientCa: l.tls?.ca !== undefined })) })
      extensions.push({ section: ext.section, path: sec.path, instance: inst })
      if (inst.close !== undefined) cleanup.push(() => inst.close!())
      if (inst.services !== undefined) local.addAll(inst.services)
    } catch (e) {
      if (e instanceof PluginConfigError) src.report([...sec.path, ...e.path], e.code, e.message)
      else src.report(sec.path, 'CB_CFG_SECTION', (e as Error).message)
    }
  }

  const consumers = createConsumerDirectory(cfg.consumers)
  const instances = new Map<string, { plugin: ResolvedPlugin, instance: PluginInstance }>()
  const trustedIps = new CidrSet(cfg.settings.trusted_ips)
  for (const rp of cfg.pluginEntries) {
    const where = formatPath(rp.path)
    const dir = src.dirOf(rp.path)
    const deps: PluginDeps = { baseDir: dir, resolvePath: (p: string) => resolve(dir, p), logger: opts.logger.child({ plugin: rp.def.name }), http, local, where, stash: opts.stash, store: opts.store, now: opts.now, revocationMetrics: opts.revocationMetrics, tokenCacheMetrics: opts.tokenCacheMetrics, consumers, openStore, trustedIps }
    try {
      const instance = await rp.def.create(rp.config as never, deps)
      instances.set(rp.key, { plugin: rp, instance })
      if (instance.close !== undefined) cleanup.push(() => instance.close!())
    } catch (e) {
      if (e instanceof PluginConfigError) src.report([...rp.path, 'config', ...e.path], e.code, e.message)
      else src.report([...rp.path, 'config'], 'CB_CFG_PLUGIN', `plugin "${rp.def.name}" could not start: ${(e as Error).message}`)
    }
  }
  if (src.diagnostics.length > 0) return await fail()

  const services = new Map<string, CompiledService>()
  for (const s of cfg.services) services.set(s.name, compileService(s))
  const specs: RouteSpec[] = []
  const routes: CompiledRoute[] = []
  const stripNames = new Set<string>()
  let requestClientCertificate = false
  // strip before set: no client may pose as a consumer, whichever plugins the route has (Kong's X-Consumer-*)
  for (const h of CONSUMER_HEADERS) stripNames.add(h)
  for (const inst of instances.values()) {
    for (const h of inst.instance.identityHeaders ?? []) stripNames.add(h.toLowerCase())
    if (inst.instance.requestClientCertificate === true) requestClientCertificate = true
  }
  cfg.routes.forEach((r, order) => {
    const chain = r.plugins.map(p => instances.get(p.key)!)
    checkChain(cfg, r.name, chain)
    const route = compileRoute(r, services.get(r.service.name)!, chain)
    routes.push(route)
    specs.push({ route, paths: r.paths, methods: r.methods, hosts: r.hosts, headers: r.headers, regexPriority: r.regexPriority, order })
  })
  const internalRoutes: CompiledRoute[] = []
  for (const ext of extensions) {
    for (const ir of ext.instance.routes ?? []) {
      const plugins = cfg.internalRoutes.get(ir.name)
      if (plugins === undefined) throw new TypeError(`${ext.section} created route "${ir.name}", which is not one of its routeNames`)
      const chain = plugins.map(p => instances.get(p.key)!)
      checkChain(cfg, ir.name, chain)
      const route = compileInternalRoute(ir, formatPath(ext.path), chain)
      internalRoutes.push(route)
      specs.push({ route, paths: ir.paths, methods: [], hosts: [], headers: {}, regexPriority: 0, order: -1, exact: true })
      reportConflicts(cfg, ir)
    }
  }
  checkClientCertificateReachable(cfg, instances)
  if (src.diagnostics.length > 0) return await fail()

  const pools = new UpstreamPools(cfg.trustedCa, { now: opts.now, logger: opts.logger.child({ component: 'proxy' }), metrics: opts.upstreamHoldMetrics })
  cleanup.unshift(() => pools.close())
  const all = [...instances.values()]
  const inflight = new InFlight()
  const runtime: Runtime = {
    config: cfg,
    router: new Router(specs),
    routes,
    internalRoutes,
    strip: new StripSet(stripNames),
    pools,
    http,
    instances: all,
    extensions: extensions.map(e => e.instance),
    requestClientCertificate,
    trustedIps,
    adminAllow: new CidrSet(cfg.settings.admin_allow),
    inflight,
    ready: () => all.every(i => i.instance.ready === undefined || i.instance.ready()),
    async close (drainMs: number) {
      if (!await inflight.idle(drainMs)) {
        const tunnels = inflight.closeTunnels()
        opts.logger.warn({ in_flight: inflight.count, tunnels_closed: tunnels, drain_timeout: drainMs }, 'drain timeout: closing what is still in flight')
      }
      const results = await Promise.allSettled(cleanup.map(c => c()))
      for (const r of results) if (r.status === 'rejected') opts.onCloseError?.(r.reason)
    },
  }
  return runtime
}

/**
 * A plugin that needs the client certificate, with no TLS listener to ask for one, refuses every request (401):
 * a Kong file has no listeners (they are in kong.conf), so a decK file run as it is would fail silently at the
 * first request. Say so at load instead. A certificate from a trusted proxy's header (certificate_header) needs
 * no TLS listener. A plugin that only may use one (optional binding; strict mTLS with DPoP also allowed) says so
 * with requireClientCertificate: false.
 */
function checkClientCertificateReachable (cfg: LoadedConfig, instances: ReadonlyMap<string, { plugin: ResolvedPlugin, instance: PluginInstance }>): void {
  if (cfg.listeners.some(l => l.tls !== undefined)) return
  const reported = new Set<string>()
  for (const r of cfg.routes) {
    for (const p of r.plugins) {
      const inst = instances.get(p.key)
      if (inst === undefined || (inst.instance.requireClientCertificate ?? inst.instance.requestClientCertificate) !== true || reported.has(p.key)) continue
      if ((p.config as { certificate_header?: unknown } | null)?.certificate_header !== undefined) continue
      reported.add(p.key)
      cfg.source.report([...p.path, 'name'], 'CB_CFG_NO_TLS_LISTENER',
        `plugin "${p.def.name}" on route "${r.name}" needs the client certificate, but no listener has tls: every request would be refused. ` +
        'Add gateway.listen[].tls (cert, key, client_ca): a Kong file has no listeners, certbound\'s are in its gateway: section')
    }
  }
}

/**
 * Internal routes are matched first, by exact path: a user route with the very same path would never see a request,
 * so it is a load error rather than a silent shadow. (A wider prefix such as `/` or `/oauth2` is not a conflict: it
 * keeps serving every other path.)
 */
function reportConflicts (cfg: LoadedConfig, ir: InternalRoute): void {
  for (const r of cfg.routes) {
    r.paths.forEach((p, i) => {
      if (!ir.paths.includes(p)) return
      cfg.source.report([...r.path, 'paths', i], 'CB_CFG_CONFLICT',
        `path ${p} is served by the internal route "${ir.name}"; attach plugins to it with a top-level plugin entry (route: ${ir.name}) instead of a route`)
    })
  }
}

/** A route whose chain reads `credential` must have a token plugin before that plugin. */
function checkChain (cfg: LoadedConfig, routeName: string, chain: Chain): void {
  let provided = false
  for (const { plugin, instance } of chain) {
    if (instance.needsCredential === true && !provided) {
      cfg.source.report([...plugin.path, 'name'], 'CB_CFG_CHAIN',
        `plugin "${plugin.def.name}" reads the verified credential, but no token plugin (one that verifies a credential) runs before it on route "${routeName}"`)
    }
    if (instance.providesCredential === true) provided = true
  }
}

function compileService (s: ResolvedService): CompiledService {
  const defaultPort = s.protocol === 'https' ? 443 : 80
  const host = s.host.includes(':') ? `[${s.host}]` : s.host
  const basePath = s.path
  return {
    name: s.name,
    resolved: s,
    origin: `${s.protocol}://${host}:${s.port}`,
    hostHeader: s.port === defaultPort ? host : `${host}:${s.port}`,
    basePath,
    basePathEndsWithSlash: basePath.endsWith('/'),
  }
}

type Chain = Array<{ plugin: ResolvedPlugin, instance: PluginInstance }>

/** The phase handlers of a chain, bound once: access and log in priority order, response in reverse. */
function phases (chain: Chain): Pick<CompiledRoute, 'access' | 'response' | 'log' | 'plugins' | 'pluginNames'> {
  const access = []; const response = []; const log = []
  for (const { instance } of chain) {
    if (instance.access !== undefined) access.push(instance.access.bind(instance))
    if (instance.log !== undefined) log.push(instance.log.bind(instance))
  }
  for (let i = chain.length - 1; i >= 0; i--) {
    const inst = chain[i].instance
    if (inst.response !== undefined) response.push(inst.response.bind(inst))
  }
  return { access, response, log, plugins: chain.map(c => c.instance), pluginNames: chain.map(c => c.plugin.def.name) }
}

function compileInternalRoute (ir: InternalRoute, where: string, chain: Chain): CompiledRoute {
  return Object.freeze({
    name: ir.name,
    where,
    service: undefined,
    terminal: ir.handle,
    stripPath: false,
    preserveHost: false,
    pathHandling: 'v0' as const,
    protocols: new Set(['http', 'https'] as const),
    ...phases(chain),
  })
}

function compileRoute (r: ResolvedRoute, service: CompiledService, chain: Chain): CompiledRoute {
  return Object.freeze({
    name: r.name,
    where: formatPath(r.path),
    service,
    terminal: undefined,
    stripPath: r.stripPath,
    preserveHost: r.preserveHost,
    pathHandling: r.pathHandling,
    protocols: new Set(r.protocols),
    ...phases(chain),
  })
}

function openStoreFor (opts: CompileOptions, trustedCa: readonly string[]): PluginDeps['openStore'] {
  const pool = opts.pool ?? new StorePool({ now: opts.now, dryRun: true })
  return function openStore (redis) { return pool.open(redis, trustedCa) }
}
