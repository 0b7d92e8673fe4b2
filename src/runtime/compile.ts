import { resolve } from 'node:path'
import type { Logger } from 'pino'
import type { LoadedConfig, ResolvedPlugin, ResolvedRoute, ResolvedService } from '../config/validate.js'
import { ConfigError, formatPath } from '../config/diagnostic.js'
import type { PluginDeps, PluginInstance, LocalServices } from '../pipeline/types.js'
import { PluginConfigError } from '../pipeline/types.js'
import type { GatewayExtension, ExtensionInstance } from '../extensions/types.js'
import { Router, type RouteSpec } from '../router/router.js'
import type { CompiledRoute, CompiledService } from '../router/types.js'
import { StripSet } from '../proxy/headers.js'
import { UpstreamPools } from '../proxy/pools.js'
import { createHttpClient, type HttpClient } from '../http-client/index.js'
import { CidrSet } from '../net/cidr.js'
import type { RevocationMetrics } from '../auth/revocation/metrics.js'
import type { Clock, StateStore } from '../store/types.js'
import { StorePool } from '../store/pool.js'

/** Everything a request needs, built once per config load and frozen; swapped atomically on reload. */
export interface Runtime {
  readonly config: LoadedConfig
  readonly router: Router
  readonly routes: readonly CompiledRoute[]
  readonly strip: StripSet
  readonly pools: UpstreamPools
  readonly http: HttpClient
  readonly instances: ReadonlyArray<{ plugin: ResolvedPlugin, instance: PluginInstance }>
  readonly extensions: readonly ExtensionInstance[]
  /** A plugin needs TLS listeners to ask for client certificates. */
  readonly requestClientCertificate: boolean
  readonly trustedIps: CidrSet
  readonly adminAllow: CidrSet
  /** Requests in flight on this runtime; close() waits for them. */
  inflight: number
  ready(): boolean
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
}

/** Create plugin and extension instances, compile routes and the router. Throws ConfigError. */
export async function compileRuntime (cfg: LoadedConfig, opts: CompileOptions): Promise<Runtime> {
  const src = cfg.source
  const http = createHttpClient({ trustedCa: cfg.trustedCa })
  const localMap = new Map<string, unknown>()
  const local: LocalServices = { get: <T>(k: string) => localMap.get(k) as T | undefined }
  const resolvePath = (p: string): string => resolve(cfg.baseDir, p)
  const openStore = openStoreFor(opts, cfg.trustedCa)
  const extensions: ExtensionInstance[] = []
  const cleanup: Array<() => Promise<void>> = [() => http.close()]
  const fail = async (): Promise<never> => {
    await Promise.allSettled(cleanup.map(c => c()))
    throw new ConfigError(cfg.file, [...src.diagnostics].sort((a, b) => a.line - b.line || a.col - b.col))
  }

  for (const ext of opts.extensions) {
    const sec = cfg.sections[ext.section]
    if (sec === undefined) continue
    try {
      const inst = await ext.create(sec.value as never, { baseDir: cfg.baseDir, resolvePath, logger: opts.logger.child({ component: ext.section }), http, where: sec.path, store: opts.store, now: opts.now, stash: opts.stash, revocationMetrics: opts.revocationMetrics, openStore })
      extensions.push(inst)
      if (inst.close !== undefined) cleanup.push(() => inst.close!())
      for (const [k, v] of inst.services ?? []) localMap.set(k, v)
    } catch (e) {
      if (e instanceof PluginConfigError) src.report([...sec.path, ...e.path], e.code, e.message)
      else src.report(sec.path, 'CB_CFG_SECTION', (e as Error).message)
    }
  }

  const instances = new Map<string, { plugin: ResolvedPlugin, instance: PluginInstance }>()
  for (const rp of cfg.pluginEntries) {
    const where = formatPath(rp.path)
    const deps: PluginDeps = { baseDir: cfg.baseDir, resolvePath, logger: opts.logger.child({ plugin: rp.def.name }), http, local, where, stash: opts.stash, store: opts.store, now: opts.now, revocationMetrics: opts.revocationMetrics, openStore }
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
  for (const inst of instances.values()) {
    for (const h of inst.instance.identityHeaders ?? []) stripNames.add(h.toLowerCase())
    if (inst.instance.requestClientCertificate === true) requestClientCertificate = true
  }
  cfg.routes.forEach((r, order) => {
    const chain = r.plugins.map(p => instances.get(p.key)!)
    checkChain(cfg, r, chain)
    const route = compileRoute(r, services.get(r.service.name)!, chain)
    routes.push(route)
    specs.push({ route, paths: r.paths, methods: r.methods, hosts: r.hosts, headers: r.headers, regexPriority: r.regexPriority, order })
  })
  if (src.diagnostics.length > 0) return await fail()

  const pools = new UpstreamPools(cfg.trustedCa)
  cleanup.unshift(() => pools.close())
  const all = [...instances.values()]
  const runtime: Runtime = {
    config: cfg,
    router: new Router(specs),
    routes,
    strip: new StripSet(stripNames),
    pools,
    http,
    instances: all,
    extensions,
    requestClientCertificate,
    trustedIps: new CidrSet(cfg.settings.trusted_ips),
    adminAllow: new CidrSet(cfg.settings.admin_allow),
    inflight: 0,
    ready: () => all.every(i => i.instance.ready === undefined || i.instance.ready()),
    async close (drainMs: number) {
      const deadline = Date.now() + drainMs
      while (runtime.inflight > 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
      await Promise.allSettled(cleanup.map(c => c()))
    },
  }
  return runtime
}

/** A route whose chain reads `credential` must have a token plugin before that plugin. */
function checkChain (cfg: LoadedConfig, r: ResolvedRoute, chain: Array<{ plugin: ResolvedPlugin, instance: PluginInstance }>): void {
  let provided = false
  for (const { plugin, instance } of chain) {
    if (instance.needsCredential === true && !provided) {
      cfg.source.report([...plugin.path, 'name'], 'CB_CFG_CHAIN',
        `plugin "${plugin.def.name}" reads the verified credential, but no token plugin (openid-connect, token-introspection) runs before it on route "${r.name}"`)
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

function compileRoute (r: ResolvedRoute, service: CompiledService, chain: Array<{ plugin: ResolvedPlugin, instance: PluginInstance }>): CompiledRoute {
  const access = []; const response = []; const log = []
  for (const { instance } of chain) {
    if (instance.access !== undefined) access.push(instance.access.bind(instance))
    if (instance.log !== undefined) log.push(instance.log.bind(instance))
  }
  for (let i = chain.length - 1; i >= 0; i--) {
    const inst = chain[i].instance
    if (inst.response !== undefined) response.push(inst.response.bind(inst))
  }
  return Object.freeze({
    name: r.name,
    where: formatPath(r.path),
    service,
    stripPath: r.stripPath,
    preserveHost: r.preserveHost,
    pathHandling: r.pathHandling,
    protocols: new Set(r.protocols),
    access,
    response,
    log,
    plugins: chain.map(c => c.instance),
    pluginNames: chain.map(c => c.plugin.def.name),
  })
}

function openStoreFor (opts: CompileOptions, trustedCa: readonly string[]): PluginDeps['openStore'] {
  const pool = opts.pool ?? new StorePool({ now: opts.now, dryRun: true })
  return function openStore (redis) { return pool.open(redis, trustedCa) }
}
