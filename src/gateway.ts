import { basename, resolve as resolvePath } from 'node:path'
import type { Server } from 'node:http'
import { createSecureContext } from 'node:tls'
import type { Logger, DestinationStream } from 'pino'
import { loadConfigTexts, type LoadedConfig, type ResolvedListener } from './config/validate.js'
import type { ConfigText } from './config/config-set.js'
import { expandConfigPaths, readConfigTexts } from './config/files.js'
import { ConfigError, formatDiagnostics, type Diagnostic } from './config/diagnostic.js'
import { watchConfigFiles, type ConfigWatch } from './config/watch.js'
import { loadPlugins } from './plugins-registry.js'
import { loadExtensions } from './extensions/registry.js'
import { compileRuntime, type Runtime } from './runtime/compile.js'
import { createLogger, logDestination } from './observability/logger.js'
import { GatewayMetrics } from './observability/metrics.js'
import { createAdminServer } from './observability/admin.js'
import { ReloadHistory } from './observability/dashboard/reload-history.js'
import { buildSummary, type DashboardSummary } from './observability/dashboard/summary.js'
import type { StatsSnapshot } from './observability/dashboard/stats.js'
import type { ClientActivityRow } from './authorization-server/client-activity.js'
import { createRequestHandler } from './server/handler.js'
import { applyLimits, createListener, effectiveMode, listen, tlsOptions, type BoundListener, type ListenerHandlers } from './server/listeners.js'
import type { ListenerInfo } from './server/handler.js'
import type { GatewayExtension } from './extensions/types.js'
import type { z } from 'zod'
import { MemoryStore } from './store/memory.js'
import { createSecretBox } from './store/secret-box.js'
import { systemClock, type Clock, type StateStore, type StoreStatus } from './store/types.js'
import { createStore, storeStarted } from './store/create.js'
import { storeBackend } from './store/schema.js'
import { StorePool } from './store/pool.js'
import { allocatorInUse } from './observability/allocator.js'

export const VERSION = '0.2.1'

export interface GatewayOptions {
  /** The config: a file, or several files and directories merged as decK merges them (`-c a.yml -c dir/`). */
  configFile: string | readonly string[]
  /**
   * Config text to use instead of reading the files: one text (a POST /config body; paths resolve against the
   * first file's directory) or the texts of several files.
   */
  configText?: string | readonly ConfigText[]
  logger?: Logger
  logDestination?: DestinationStream
  env?: NodeJS.ProcessEnv
  /** Reload when the config file or a listener's TLS file changes (debounced; `certbound start` default). */
  watchConfig?: boolean
  /** Prometheus default process metrics. */
  defaultMetrics?: boolean
  /** Serve the admin listener (false in cluster workers: the primary serves it). */
  admin?: boolean
  /** Called after every applied reload (cluster workers report to the primary). */
  onReload?: (r: ReloadResult) => void
  /** The clock for every TTL, window and expiry (default the system clock); tests pass one they move. */
  now?: Clock
  /** The shared-state store to use instead of the one gateway.store describes (a cluster worker's IpcStore). */
  store?: StateStore
}

export type ReloadResult = { ok: true, hash: string } | { ok: false, errors: string, diagnostics: readonly Diagnostic[] }

export interface ListenerAddress { readonly url: string, readonly host: string, readonly port: number, readonly tls: boolean, readonly mode: string }

/**
 * The lifecycle: load → validate → compile → listen; reload swaps the compiled runtime atomically and closes
 * the old one after its in-flight requests; close stops accepting, drains, and releases in reverse order.
 */
export class Gateway {
  readonly logger: Logger
  readonly metrics: GatewayMetrics
  /** Reloads as the admin dashboard lists them. */
  readonly reloads = new ReloadHistory()
  private runtime!: Runtime
  private bound: BoundListener[] = []
  private admin: Server | undefined
  private adminPort = 0
  private readonly startedAt = new Date()
  private reloading: Promise<ReloadResult> | undefined
  private watcher: ConfigWatch | undefined
  /** The texts the live config was loaded from (the files', or a POST /config body). */
  private liveText: ConfigText[] | undefined
  /** PluginDeps.stash: lives as long as this gateway, across reloads. */
  private readonly stash = new Map<string, unknown>()
  private closed = false
  private plugins!: Awaited<ReturnType<typeof loadPlugins>>
  private extensions!: GatewayExtension[]
  /** Shared state (gateway.store, chosen at start): outlives reloads; closed last. */
  get store (): StateStore { return this.sharedStore }
  private sharedStore: StateStore
  /** deps.openStore's pooled connections. */
  private readonly pool: StorePool
  /** gateway.store as started: a reload cannot change it. */
  private storeConfig = ''
  readonly now: Clock

  private constructor (private readonly opts: GatewayOptions) {
    this.logger = opts.logger ?? createLogger({ destination: opts.logDestination })
    this.metrics = new GatewayMetrics({ defaultMetrics: opts.defaultMetrics })
    this.now = opts.now ?? systemClock
    // replaced at start by what gateway.store asks for; `check` keeps this one, which writes no file
    this.sharedStore = new MemoryStore({ now: this.now, writeFiles: false })
    this.pool = new StorePool({ now: this.now, logger: this.logger, observer: this.metrics })
    const dest = logDestination(this.logger)
    if (dest !== undefined) this.metrics.trackLogDrops(() => dest.dropped)
  }

  /** Validate and compile a config without listening (certbound validate). Throws ConfigError. */
  static async check (configFile: string | readonly string[], opts: { env?: NodeJS.ProcessEnv, logger?: Logger, configText?: string | readonly ConfigText[], dryRun?: boolean } = {}): Promise<LoadedConfig> {
    const g = new Gateway({ configFile, env: opts.env, logger: opts.logger ?? createLogger({ level: 'silent' }), configText: opts.configText })
    await g.init()
    const cfg = await g.load(g.texts(opts.configText))
    // compiled against memory, but reporting the configured backend: a plugin that needs a Redis store (rate-limiting
    // policy redis) decides here as it will at start
    if (storeBackend(cfg.settings.store) !== 'memory') {
      const secret = cfg.settings.store?.secret
      g.sharedStore = new MemoryStore({ now: g.now, writeFiles: false, standInFor: storeBackend(cfg.settings.store), secretBox: secret === undefined ? undefined : createSecretBox(secret) })
    }
    const rt = await compileRuntime(cfg, { logger: g.logger, extensions: g.extensions, store: g.store, now: g.now, dryRun: opts.dryRun })
    await g.store.close()
    await rt.close(0)
    return cfg
  }

  static async start (opts: GatewayOptions): Promise<Gateway> {
    const g = new Gateway(opts)
    await g.init()
    const text = g.texts(opts.configText)
    const cfg = await g.load(text)
    g.sharedStore = opts.store ?? createStore(cfg.settings.store, { now: g.now, logger: g.logger, observer: g.metrics, trustedCa: cfg.trustedCa })
    g.storeConfig = JSON.stringify(cfg.settings.store)
    await storeStarted(g.store)
    try {
      g.runtime = await compileRuntime(cfg, { logger: g.logger, extensions: g.extensions, stash: g.stash, store: g.store, now: g.now, pool: g.pool, revocationMetrics: g.metrics.revocation, tokenCacheMetrics: g.metrics.tokenCache, upstreamHoldMetrics: g.metrics.upstreamHolds, onCloseError: (e) => g.closeFailed('plugin or section', e) })
    } catch (e) {
      await g.store.close()
      await g.pool.close()
      throw e
    }
    g.liveText = text
    if (opts.logger === undefined) g.logger.level = cfg.settings.log_level
    const dest = logDestination(g.logger)
    if (dest !== undefined) dest.maxQueuedBytes = cfg.settings.access_log_buffer
    try {
      await g.listenAll()
    } catch (e) {
      await g.close(0)
      throw e
    }
    for (const { instance } of g.runtime.instances) instance.start?.()
    if (opts.watchConfig === true) g.watchFiles(text)
    g.logger.info({ listeners: g.addresses().map(a => `${a.url} (${a.mode})`), admin: g.adminUrl, config_hash: cfg.hash, routes: g.runtime.routes.length, allocator: allocatorInUse(), lifecycle: true }, 'certbound started')
    return g
  }

  private async init (): Promise<void> {
    this.plugins = await loadPlugins()
    this.extensions = await loadExtensions()
  }

  private sectionSchemas (): Map<string, z.ZodType> {
    return new Map(this.extensions.map(e => [e.section, e.schema]))
  }

  private get configPaths (): readonly string[] {
    return typeof this.opts.configFile === 'string' ? [this.opts.configFile] : this.opts.configFile
  }

  /**
   * The texts to load: given ones, or the files' (throws ConfigError, CB_CFG_FILE). One given text stands for the
   * whole config as if it were the first file (a POST /config body).
   */
  private texts (given?: string | readonly ConfigText[]): ConfigText[] {
    if (given === undefined) return readConfigTexts(this.configPaths)
    if (typeof given !== 'string') return [...given]
    const first = expandConfigPaths(this.configPaths.slice(0, 1)).files[0] ?? resolvePath(this.configPaths[0] ?? 'gateway.yml')
    return [{ file: first, text: given }]
  }

  private async load (texts?: readonly ConfigText[]): Promise<LoadedConfig> {
    return loadConfigTexts(texts ?? this.texts(), { plugins: this.plugins, env: this.opts.env, sections: this.sectionSchemas(), internalRoutes: new Map(this.extensions.map(e => [e.section, e.routeNames])) })
  }

  private async listenAll (): Promise<void> {
    const rt = this.runtime
    const handler = createHandlerPair(this)
    for (const [i, l] of rt.config.listeners.entries()) {
      const b = createListener(l, i, rt.config.settings.limits, rt.requestClientCertificate, this.metrics, handler)
      this.bound.push(b)
      await listen(b)
    }
    const a = rt.config.adminListen
    if (a !== undefined && this.opts.admin !== false) {
      this.admin = createAdminServer({
        metrics: this.metrics,
        status: () => this.status(),
        reload: (yaml) => this.reload(yaml),
        allow: () => this.runtime.adminAllow,
        dashboard: { summary: () => this.dashboardSummary(), settings: () => this.runtime.config.settings.admin_dashboard },
      })
      await new Promise<void>((res, rej) => {
        this.admin!.once('error', rej)
        this.admin!.listen(a.port, a.host, () => { this.admin!.off('error', rej); const ad = this.admin!.address(); if (ad !== null && typeof ad === 'object') this.adminPort = ad.port; res() })
      })
    }
  }

  /** The live runtime (read per request: a reload swaps it atomically). */
  current (): Runtime { return this.runtime }

  addresses (): ListenerAddress[] {
    return this.bound.map(b => {
      const host = b.host.includes(':') ? `[${b.host}]` : b.host
      return { url: `${b.info.tls ? 'https' : 'http'}://${host}:${b.port}`, host: b.host, port: b.port, tls: b.info.tls, mode: b.mode }
    })
  }

  get adminUrl (): string | undefined {
    const a = this.runtime?.config.adminListen
    return a === undefined || this.admin === undefined ? undefined : `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${this.adminPort}`
  }

  status (): { ready: boolean, config_hash: string, started_at: string, uptime_s: number, version: string, store: StoreStatus, reasons?: string[] } {
    const reasons: string[] = []
    if (this.closed) reasons.push('stopping')
    const store = this.store.status()
    if (!store.connected) reasons.push(`store (${store.backend}) is not connected${store.detail !== undefined ? ': ' + store.detail : ''}`)
    for (const { plugin, instance } of this.runtime.instances) if (instance.ready !== undefined && !instance.ready()) reasons.push(`${plugin.def.name} at ${plugin.key} is not ready`)
    return {
      ready: reasons.length === 0,
      config_hash: this.runtime.config.hash,
      started_at: this.startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      version: VERSION,
      store,
      reasons: reasons.length > 0 ? reasons : undefined,
    }
  }

  /** This process's dashboard data: what a cluster worker sends the primary. */
  dashboardData (): { stats: StatsSnapshot, clients: ClientActivityRow[] | undefined, store: StoreStatus } {
    let clients: ClientActivityRow[] | undefined
    for (const e of this.runtime.extensions) if (e.dashboardClients !== undefined) (clients ??= []).push(...e.dashboardClients())
    return { stats: this.metrics.dashboard.snapshot(), clients, store: this.store.status() }
  }

  /** GET /api/summary (admin listener). */
  async dashboardSummary (): Promise<DashboardSummary> {
    const d = this.dashboardData()
    return buildSummary({
      now: Date.now(),
      config: this.runtime.config,
      status: this.status(),
      stats: d.stats,
      clients: d.clients,
      reloads: this.reloads.summary(),
      store: d.store,
    })
  }

  /**
   * Reload: validate fully and compile a new runtime; only then swap it in and close the old one after its
   * in-flight requests. An invalid config changes nothing. Reloads are serialised. `text` is the new config;
   * without it the config file is read again (SIGHUP), which also undoes a config applied by POST /config.
   */
  async reload (text?: string | readonly ConfigText[]): Promise<ReloadResult> {
    while (this.reloading !== undefined) await this.reloading.catch(() => undefined)
    if (this.closed) return { ok: false, errors: 'the gateway is stopping', diagnostics: [] }
    this.reloading = this.doReload(text)
    try {
      const r = await this.reloading
      this.reloads.record(r)
      this.opts.onReload?.(r)
      return r
    } finally { this.reloading = undefined }
  }

  private async doReload (given?: string | readonly ConfigText[]): Promise<ReloadResult> {
    let next: Runtime
    let text: ConfigText[]
    try {
      text = this.texts(given)
      const cfg = await this.load(text)
      if (JSON.stringify(cfg.settings.store) !== this.storeConfig) {
        cfg.source.report(['gateway', 'store'], 'CB_CFG_INVALID', 'gateway.store cannot change on a reload (the shared state would split): restart to apply it')
        throw new ConfigError(cfg.file, [...cfg.source.diagnostics])
      }
      next = await compileRuntime(cfg, { logger: this.logger, extensions: this.extensions, stash: this.stash, store: this.store, now: this.now, pool: this.pool, revocationMetrics: this.metrics.revocation, tokenCacheMetrics: this.metrics.tokenCache, upstreamHoldMetrics: this.metrics.upstreamHolds, onCloseError: (e) => this.closeFailed('plugin or section', e) })
    } catch (e) {
      this.metrics.reloads.inc({ result: 'invalid' })
      if (e instanceof ConfigError) {
        this.logger.error({ errors: e.diagnostics.length, diagnostics: e.diagnostics.map(d => `${basename(d.file)}:${d.line}:${d.col} ${d.code} ${d.path}: ${d.message}`) }, 'config reload refused; the running config is unchanged')
        return { ok: false, errors: formatDiagnostics(e.files, e.diagnostics), diagnostics: e.diagnostics }
      }
      this.logger.error({ err: e }, 'config reload failed; the running config is unchanged')
      return { ok: false, errors: (e as Error).message, diagnostics: [] }
    }
    if (this.closed) {
      await next.close(0)
      return { ok: false, errors: 'the gateway is stopping', diagnostics: [] }
    }
    const prev = this.runtime
    try {
      await this.applyListeners(next)
    } catch (e) {
      await next.close(0)
      this.metrics.reloads.inc({ result: 'invalid' })
      this.logger.error({ err: e }, 'config reload refused: listeners could not be updated; the running config is unchanged')
      return { ok: false, errors: (e as Error).message, diagnostics: [] }
    }
    this.runtime = next
    this.liveText = text
    this.watcher?.setFiles(tlsFilesOf(next.config))
    for (const { instance } of next.instances) instance.start?.()
    this.metrics.reloads.inc({ result: 'applied' })
    const dest = logDestination(this.logger)
    if (dest !== undefined) dest.maxQueuedBytes = next.config.settings.access_log_buffer
    this.logger.info({ config_hash: next.config.hash, previous: prev.config.hash, routes: next.routes.length, lifecycle: true }, 'config reloaded')
    void prev.close(prev.config.settings.limits.drain_timeout).catch((err: unknown) => this.closeFailed('previous runtime', err))
    return { ok: true, hash: next.config.hash }
  }

  /**
   * Make the listeners match `next`, all or nothing: every new TLS context is built first (a key that does not
   * match its certificate fails here, before anything changed), then new addresses are bound (undone if one
   * fails), and only then are kept listeners switched — setSecureContext applies to new handshakes, open
   * connections keep theirs — and removed listeners drained. Sessions of the old context do not resume.
   */
  private async applyListeners (next: Runtime): Promise<void> {
    const old = this.bound
    const plan: Array<{ l: ResolvedListener, i: number, found: BoundListener | undefined }> = []
    const taken = new Set<BoundListener>()
    for (const [i, l] of next.config.listeners.entries()) {
      const found = old.find(b => b.host === l.host && (b.port === l.port || l.port === 0) && b.info.tls === (l.tls !== undefined) && !taken.has(b))
      if (found !== undefined) taken.add(found)
      plan.push({ l, i, found })
    }
    const contexts = new Map<ResolvedListener, ReturnType<typeof tlsOptions>>()
    for (const { l } of plan) {
      if (l.tls === undefined) continue
      const o = tlsOptions(l, next.requestClientCertificate)
      createSecureContext(o) // throws on a key/certificate mismatch or an unusable cipher list
      contexts.set(l, o)
    }
    const handler = createHandlerPair(this)
    const added: BoundListener[] = []
    try {
      for (const p of plan) {
        if (p.found !== undefined) continue
        const b = createListener(p.l, p.i, next.config.settings.limits, next.requestClientCertificate, this.metrics, handler)
        await listen(b)
        added.push(b)
      }
    } catch (e) {
      await Promise.all(added.map(b => closeListener(b, 0)))
      throw e
    }
    const keep: BoundListener[] = []
    for (const p of plan) {
      const b = p.found ?? added.shift()!
      if (p.found !== undefined && p.l.tls !== undefined) {
        const o = contexts.get(p.l)!
        const srv = p.found.server as Server & { setSecureContext(o: object): void, requestCert?: boolean, rejectUnauthorized?: boolean }
        srv.setSecureContext(o)
        srv.requestCert = o.requestCert
        srv.rejectUnauthorized = o.rejectUnauthorized
        p.found.mode = effectiveMode(p.l, next.requestClientCertificate)
      }
      if (p.found !== undefined) applyLimits(p.found, next.config.settings.limits)
      keep.push(b)
    }
    for (const b of old) if (!taken.has(b)) void closeListener(b, next.config.settings.limits.drain_timeout)
    this.bound = keep
  }

  private watchFiles (initialText: readonly ConfigText[] | undefined): void {
    this.watcher = watchConfigFiles({
      configFile: this.opts.configFile,
      initialText,
      onConfig: (text) => { void this.reload(text) },
      // a certificate, key or client CA changed: reload the live config (which may have come from POST /config)
      onFiles: () => { void this.reload(this.liveText) },
    })
    this.watcher.setFiles(tlsFilesOf(this.runtime.config))
  }

  /** A close that failed has no one to answer to: logged and counted (certbound_suppressed_errors_total{where="close"}). */
  private closeFailed (what: string, err: unknown): void {
    this.metrics.suppressed('close')
    this.logger.error({ err, what }, 'close failed')
  }

  /** Stop accepting, let in-flight requests finish up to drain_timeout, close pools and plugins. */
  async close (drainMs?: number): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.watcher?.close()
    const drain = drainMs ?? this.runtime?.config.settings.limits.drain_timeout ?? 0
    await Promise.all(this.bound.map(b => closeListener(b, drain)))
    if (this.admin !== undefined) {
      this.admin.closeAllConnections()
      await new Promise<void>(r => this.admin!.close(() => r()))
    }
    if (this.runtime !== undefined) await this.runtime.close(drain)
    await this.pool.close()
    await this.store.close()
    this.logger.info({ lifecycle: true }, 'certbound stopped')
    // the last lines must reach stdout before the process exits; a destination that never calls back must not hang it
    await new Promise<void>(r => { setTimeout(r, 1000).unref(); try { this.logger.flush(() => r()) } catch { r() } })
  }
}

/** The files behind the listeners' TLS settings and gateway.trusted_certificates: a change reloads. */
export function tlsFilesOf (cfg: LoadedConfig): string[] {
  const out: string[] = []
  for (const l of cfg.settings.listen) {
    if (l.tls === undefined) continue
    out.push(l.tls.cert, l.tls.key)
    if (l.tls.client_ca !== undefined) out.push(...(Array.isArray(l.tls.client_ca) ? l.tls.client_ca : [l.tls.client_ca]))
  }
  const t = cfg.settings.trusted_certificates
  if (t !== undefined) out.push(...(Array.isArray(t) ? t : [t]))
  const dir = cfg.source.dirOf(['gateway'])
  return out.map(f => resolvePath(dir, f))
}

function createHandlerPair (g: Gateway) {
  return (info: ListenerInfo): ListenerHandlers => {
    const h = createRequestHandler({ runtime: () => g.current(), logger: g.logger, metrics: g.metrics }, info)
    return {
      request (req, res) { void h.handle(req, res) },
      upgrade (req, socket, head) { void h.handleUpgrade(req, socket, head) },
    }
  }
}

/**
 * Stop accepting, close idle keep-alive connections as they become idle, and wait — on the sockets' close events,
 * not a poll — for the rest up to `drainMs`; then destroy what is left (WebSocket tunnels included).
 */
async function closeListener (b: BoundListener, drainMs: number): Promise<void> {
  const closed = new Promise<void>(r => b.server.close(() => r()))
  const srv = b.server
  // a response that ends on a keep-alive connection leaves it idle: close it then (the response in progress on a
  // socket is node's _httpMessage, as listeners.ts reads it; later requests on the connection come as 'request')
  type Res = { once(e: 'finish', f: () => void): void }
  const onFinish = (): void => { setImmediate(() => srv.closeIdleConnections()) }
  const onRequest = (_req: unknown, res: Res): void => { res.once('finish', onFinish) }
  srv.on('request', onRequest)
  for (const s of b.sockets) (s as unknown as { _httpMessage?: Res | null })._httpMessage?.once('finish', onFinish)
  srv.closeIdleConnections()
  if (b.sockets.size > 0 && drainMs > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, drainMs)
      const check = (): void => { if (b.sockets.size === 0) { clearTimeout(timer); resolve() } }
      for (const s of b.sockets) s.once('close', () => setImmediate(check))
    })
  }
  srv.off('request', onRequest)
  srv.closeAllConnections()
  for (const s of b.sockets) s.destroy()
  await closed
}
