import { readFileSync } from 'node:fs'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { dirname, resolve } from 'node:path'
import type { z } from 'zod'
import { ConfigSet, sortDiagnostics, type ConfigText } from './config-set.js'
import { ConfigError, closest, type Diagnostic, type PathKey } from './diagnostic.js'
import { salvaged, salvageEntity, salvageList } from './salvage.js'
import { refuseKongEntities } from './kong-entities.js'
import { resolveConsumers, type ResolvedConsumer } from './consumers.js'
import { consumerSchema, gatewaySchema, listenSchema, pluginEntrySchema, rootSchema, routeSchema, serviceSchema, type GatewaySettings, type PluginEntry, type RootConfig, type RouteConfig, type ServiceConfig } from './schema.js'
import { reportZodIssues } from './zod-issues.js'
import { storeBackend } from '../store/schema.js'
import type { PluginDefinition } from '../pipeline/types.js'

export interface ResolvedTls {
  cert: Buffer
  key: Buffer
  ca: Buffer[] | undefined
  clientCertificate: 'none' | 'request' | 'require'
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  ciphers: string | undefined
}
export interface ResolvedListener { address: string, host: string, port: number, tls: ResolvedTls | undefined }

export interface ResolvedService {
  name: string
  protocol: 'http' | 'https'
  host: string
  port: number
  path: string
  connectTimeout: number
  readTimeout: number
  writeTimeout: number
  retries: number
  /** ms an origin whose connection failed is answered 502 at once (0: never). */
  connectFailureHold: number
  tlsVerify: boolean
}

export interface ResolvedPlugin {
  readonly def: PluginDefinition
  readonly config: unknown
  readonly path: readonly PathKey[]
  /** Stable identity across routes: one instance per configured entry. */
  readonly key: string
}

export interface ResolvedRoute {
  name: string
  path: readonly PathKey[]
  service: ResolvedService
  paths: string[]
  methods: string[]
  hosts: string[]
  headers: Record<string, string[]>
  protocols: Array<'http' | 'https'>
  stripPath: boolean
  preserveHost: boolean
  regexPriority: number
  pathHandling: 'v0' | 'v1'
  plugins: ResolvedPlugin[]
}

/** A validated, resolved config: plain data, no YAML, ready to compile. */
export interface LoadedConfig {
  /** The first config file; `files` has them all (`-c a.yml -c b.yml`, `-c DIR`). */
  readonly file: string
  readonly files: readonly string[]
  /** The first file's directory (entries resolve paths against their own file's: `source.dirOf(path)`). */
  readonly baseDir: string
  /** SHA-256 of the files' text: /status reports it so operators can tell which config is live. */
  readonly hash: string
  readonly settings: GatewaySettings
  readonly listeners: ResolvedListener[]
  readonly adminListen: { host: string, port: number } | undefined
  readonly trustedCa: string[]
  readonly services: ResolvedService[]
  readonly routes: ResolvedRoute[]
  /** Every plugin entry, once (for strip sets and lifecycle). */
  readonly pluginEntries: ResolvedPlugin[]
  /** `consumers:`, by username, id and custom_id (plugins map requests to them). */
  readonly consumers: readonly ResolvedConsumer[]
  readonly raw: RootConfig
  /** Extra top-level sections (authorization_server) with their paths, validated by their owners. */
  readonly sections: Record<string, { value: unknown, path: PathKey[] }>
  /**
   * The plugin chain of each internal route of the present sections, by route name (global plugins, and top-level
   * plugins with `route: <internal route name>`), in priority order.
   */
  readonly internalRoutes: ReadonlyMap<string, ResolvedPlugin[]>
  readonly source: ConfigSet
}

export interface LoadOptions {
  plugins: ReadonlyMap<string, PluginDefinition>
  env?: NodeJS.ProcessEnv
  /** Extra top-level sections: validated by their own schema (and positioned like plugin configs). */
  sections?: ReadonlyMap<string, z.ZodType>
  /** The internal route names each section creates (GatewayExtension.routeNames). */
  internalRoutes?: ReadonlyMap<string, readonly string[]>
}

/** Load a config file; throws ConfigError with every problem found. */
export function loadConfigFile (file: string, opts: LoadOptions): LoadedConfig {
  const abs = resolve(file)
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (err) {
    throw new ConfigError(abs, [{ file: abs, line: 1, col: 1, code: 'CB_CFG_FILE', path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }])
  }
  return loadConfigText(abs, text, opts)
}

/** Validate config text as if it were `file` (paths resolve against its directory). */
export function loadConfigText (file: string, text: string, opts: LoadOptions): LoadedConfig {
  return loadConfigTexts([{ file, text }], opts)
}

/** Validate several files merged as decK merges them (see ConfigSet); throws ConfigError with every problem. */
export function loadConfigTexts (texts: readonly ConfigText[], opts: LoadOptions): LoadedConfig {
  const set = new ConfigSet(texts, opts.env ?? process.env)
  const result = validate(set, opts)
  const ds = set.diagnostics
  if (ds.length > 0 || result === undefined) throw new ConfigError(set.files, dedupe(sortDiagnostics(ds, set.files)))
  return result
}

function dedupe (ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>()
  // a value whose ${{ env }} variable is missing is reported as that, not also as the invalid value it became
  const envAt = new Set(ds.filter(d => d.code === 'CB_CFG_ENV').map(d => `${d.line}:${d.col}`))
  return ds.filter(d => { if (d.code !== 'CB_CFG_ENV' && envAt.has(`${d.line}:${d.col}`)) return false; const k = `${d.line}:${d.col}:${d.code}:${d.path}:${d.message}`; if (seen.has(k)) return false; seen.add(k); return true })
}

function validate (src: ConfigSet, opts: LoadOptions): LoadedConfig | undefined {
  // a YAML syntax error leaves nothing to validate; a missing env variable (already reported) does not stop the rest
  const merged = src.merged
  if (merged === undefined) return undefined // a syntax error, an alias bomb or a non-mapping file: already reported
  const js = refuseKongEntities(src, merged)
  // reportInput: zod 4 leaves issue.input out by default, and the diagnostics need it to tell a wrong type from a missing key
  const parsed = rootSchema.safeParse(js, { reportInput: true })
  if (!parsed.success) reportZodIssues(src, rootSchema, parsed.error.issues, [])
  const baseDir = dirname(src.file)
  const rawRoot = js as Record<string, unknown>
  // keep going where the schema failed: the entries that parse on their own still get their plugin, reference
  // and file checks, so one run reports every problem (the config is refused all the same)
  const root = parsed.success ? parsed.data : salvage(rawRoot)
  const rawServiceNames = new Set(rawNames(rawRoot.services))
  const rawRouteNames = new Set([...rawNames(rawRoot.routes), ...(Array.isArray(rawRoot.services) ? rawRoot.services.flatMap((s: unknown) => rawNames((s as { routes?: unknown } | null)?.routes)) : [])])

  const files = new FileReader(src)
  const settings = root.gateway
  const listeners: ResolvedListener[] = []
  const seenAddr = new Map<string, number>()
  settings?.listen.forEach((l, i) => {
    const p: PathKey[] = ['gateway', 'listen', i]
    const addr = parseAddress(l.address)
    if (addr === undefined) { src.report([...p, 'address'], 'CB_CFG_INVALID', `"${l.address}" is not host:port`); return }
    if (addr.port !== 0) {
      const k = `${addr.host}:${addr.port}`
      if (seenAddr.has(k)) src.report([...p, 'address'], 'CB_CFG_DUPLICATE', `${k} is already used by gateway.listen[${seenAddr.get(k)}]`)
      seenAddr.set(k, i)
    }
    let tls: ResolvedTls | undefined
    if (l.tls !== undefined) {
      const tp = [...p, 'tls']
      const cert = files.certs([...tp, 'cert'], l.tls.cert)
      const key = files.privateKey([...tp, 'key'], l.tls.key)
      // a certificate renewed before its key was written (or the reverse) must not reach a listener
      if (cert !== undefined && key !== undefined && !new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
        src.report([...tp, 'key'], 'CB_CFG_PEM', `${l.tls.key} is not the private key of the certificate in ${l.tls.cert}`)
      }
      const caList = l.tls.client_ca === undefined ? [] : (Array.isArray(l.tls.client_ca) ? l.tls.client_ca : [l.tls.client_ca])
      const ca = caList.map((c, j) => files.certs(Array.isArray(l.tls!.client_ca) ? [...tp, 'client_ca', j] : [...tp, 'client_ca'], c))
      if (l.tls.client_certificate === 'require' && caList.length === 0) {
        src.report([...tp, 'client_certificate'], 'CB_CFG_INVALID', 'require needs client_ca: the CAs client certificates must verify against')
      }
      tls = {
        cert: cert ?? Buffer.alloc(0),
        key: key ?? Buffer.alloc(0),
        ca: ca.length > 0 ? ca.map(c => c ?? Buffer.alloc(0)) : undefined,
        clientCertificate: l.tls.client_certificate,
        minVersion: l.tls.min_version,
        ciphers: l.tls.ciphers,
      }
    }
    listeners.push({ address: l.address, host: addr.host, port: addr.port, tls })
  })
  let adminListen: { host: string, port: number } | undefined
  if (settings?.admin_listen !== undefined) {
    adminListen = parseAddress(settings.admin_listen)
    if (adminListen === undefined) src.report(['gateway', 'admin_listen'], 'CB_CFG_INVALID', `"${settings.admin_listen}" is not host:port`)
  }
  for (const [i, cidr] of (settings?.admin_allow ?? []).entries()) if (!isCidr(cidr)) src.report(['gateway', 'admin_allow', i], 'CB_CFG_INVALID', `"${cidr}" is not an IP address or CIDR`)
  for (const [i, cidr] of (settings?.trusted_ips ?? []).entries()) if (!isCidr(cidr)) src.report(['gateway', 'trusted_ips', i], 'CB_CFG_INVALID', `"${cidr}" is not an IP address or CIDR`)
  const trustedCa: string[] = []
  if (settings?.trusted_certificates !== undefined) {
    const list = Array.isArray(settings.trusted_certificates) ? settings.trusted_certificates : [settings.trusted_certificates]
    list.forEach((f, i) => {
      const b = files.certs(Array.isArray(settings.trusted_certificates) ? ['gateway', 'trusted_certificates', i] : ['gateway', 'trusted_certificates'], f)
      if (b !== undefined) trustedCa.push(...splitPem(b.toString('utf8')))
    })
  }

  // services and routes
  const services: ResolvedService[] = []
  const serviceByName = new Map<string, { svc: ResolvedService, cfg: ServiceConfig, index: number }>()
  root.services.forEach((s, i) => {
    const p: PathKey[] = ['services', i]
    if (serviceByName.has(s.name)) { src.report([...p, 'name'], 'CB_CFG_DUPLICATE', `service name "${s.name}" is already used by ${src.describe(['services', serviceByName.get(s.name)!.index])}`); return }
    const svc = resolveService(src, p, s)
    if (svc === undefined) return
    services.push(svc)
    serviceByName.set(s.name, { svc, cfg: s, index: i })
  })

  interface RouteItem { cfg: RouteConfig, path: PathKey[], serviceName: string | undefined }
  const routeItems: RouteItem[] = []
  root.services.forEach((s, i) => s.routes?.forEach((r, j) => routeItems.push({ cfg: r, path: ['services', i, 'routes', j], serviceName: s.name })))
  root.routes.forEach((r, j) => {
    const p: PathKey[] = ['routes', j]
    const name = r.service === undefined ? undefined : (typeof r.service === 'string' ? r.service : r.service.name)
    if (name === undefined) src.report(p, 'CB_CFG_REQUIRED', 'a top-level route needs service: the service it belongs to')
    else if (!serviceByName.has(name) && !rawServiceNames.has(name)) src.report([...p, 'service'], 'CB_CFG_REFERENCE', `service "${name}" does not exist${hint(name, serviceByName.keys())}`)
    routeItems.push({ cfg: r, path: p, serviceName: name })
  })
  // the internal routes of the sections present: plugins attach to them by name, and no user route takes the name
  const internalNames = new Map<string, string>()
  for (const [section, names] of opts.internalRoutes ?? []) if (rawRoot[section] !== undefined) for (const n of names) internalNames.set(n, section)
  const routeNames = new Map<string, string>()
  routeItems.forEach((it, k) => {
    const name = it.cfg.name ?? `route-${k}`
    if (it.cfg.name !== undefined) {
      if (internalNames.has(name)) src.report([...it.path, 'name'], 'CB_CFG_DUPLICATE', `route name "${name}" is the ${internalNames.get(name)!} endpoint's internal route; attach plugins to it with a top-level plugin entry (route: ${name}) instead`)
      else if (routeNames.has(name)) src.report([...it.path, 'name'], 'CB_CFG_DUPLICATE', `route name "${name}" is already used by ${routeNames.get(name)}`)
      else routeNames.set(name, src.describe(it.path))
    }
    if (!salvaged.has(it.cfg) && (it.cfg.paths?.length ?? 0) === 0 && (it.cfg.hosts?.length ?? 0) === 0 && (it.cfg.methods?.length ?? 0) === 0 && it.cfg.headers === undefined) {
      src.report(it.path, 'CB_CFG_REQUIRED', 'a route needs at least one of paths, hosts, methods, headers')
    }
    it.cfg.paths?.forEach((pth, m) => {
      if (pth.startsWith('~')) {
        try { new RegExp(pth.slice(1)) } catch (e) { src.report([...it.path, 'paths', m], 'CB_CFG_INVALID', `invalid regex: ${(e as Error).message}`) }
      } else if (!pth.startsWith('/')) src.report([...it.path, 'paths', m], 'CB_CFG_INVALID', 'a path must start with "/" (or "~" for a regex)')
    })
  })

  // plugins: validate every entry's config with its own schema; resolve scope by Kong's precedence
  interface Attached { entry: PluginEntry, path: PathKey[], resolved: ResolvedPlugin | undefined }
  const global: Attached[] = []
  const byService = new Map<string, Attached[]>()
  const byRoute = new Map<string, Attached[]>()
  const all: ResolvedPlugin[] = []
  const push = <K>(m: Map<K, Attached[]>, k: K, a: Attached) => { const l = m.get(k); if (l === undefined) m.set(k, [a]); else l.push(a) }
  const checkPlugin = (entry: PluginEntry, path: PathKey[], rawConfig: unknown): ResolvedPlugin | undefined => {
    const def = opts.plugins.get(entry.name)
    if (def === undefined) {
      src.report([...path, 'name'], 'CB_CFG_UNKNOWN_PLUGIN', `unknown plugin "${entry.name}"${hint(entry.name, opts.plugins.keys())}; available: ${[...opts.plugins.keys()].sort().join(', ')}`)
      return undefined
    }
    const cfgPath = [...path, 'config']
    const r = def.schema.safeParse(rawConfig ?? {}, { reportInput: true })
    if (!r.success) { reportZodIssues(src, def.schema, r.error.issues, cfgPath, `plugin "${def.name}"`); return undefined }
    const rp: ResolvedPlugin = { def, config: r.data, path, key: formatKeys(path) }
    all.push(rp)
    return rp
  }
  const rawPluginConfig = (path: PathKey[]): unknown => getIn(rawRoot, [...path, 'config'])
  root.plugins.forEach((entry, i) => {
    const p: PathKey[] = ['plugins', i]
    const rp = entry.enabled ? checkPlugin(entry, p, rawPluginConfig(p)) : undefined
    const a: Attached = { entry, path: p, resolved: rp }
    const rname = entry.route === undefined ? undefined : (typeof entry.route === 'string' ? entry.route : entry.route.name)
    const sname = entry.service === undefined ? undefined : (typeof entry.service === 'string' ? entry.service : entry.service.name)
    if (rname !== undefined) {
      if (routeNames.has(rname) || internalNames.has(rname)) push(byRoute, rname, a)
      else if (!rawRouteNames.has(rname)) src.report([...p, 'route'], 'CB_CFG_REFERENCE', `route "${rname}" does not exist${hint(rname, routeNames.keys())}`)
    } else if (sname !== undefined) {
      if (serviceByName.has(sname)) push(byService, sname, a)
      else if (!rawServiceNames.has(sname)) src.report([...p, 'service'], 'CB_CFG_REFERENCE', `service "${sname}" does not exist${hint(sname, serviceByName.keys())}`)
    } else global.push(a)
  })
  root.services.forEach((s, i) => s.plugins?.forEach((entry, j) => {
    const p: PathKey[] = ['services', i, 'plugins', j]
    if (entry.route !== undefined || entry.service !== undefined) src.report(p, 'CB_CFG_INVALID', 'a nested plugin applies to its parent; route:/service: are for top-level plugins')
    push(byService, s.name, { entry, path: p, resolved: entry.enabled ? checkPlugin(entry, p, rawPluginConfig(p)) : undefined })
  }))
  const routePlugins = new Map<RouteItem, Attached[]>()
  routeItems.forEach((it) => {
    const list: Attached[] = []
    it.cfg.plugins?.forEach((entry, j) => {
      const p: PathKey[] = [...it.path, 'plugins', j]
      if (entry.route !== undefined || entry.service !== undefined) src.report(p, 'CB_CFG_INVALID', 'a nested plugin applies to its parent; route:/service: are for top-level plugins')
      list.push({ entry, path: p, resolved: entry.enabled ? checkPlugin(entry, p, rawPluginConfig(p)) : undefined })
    })
    if (it.cfg.name !== undefined) list.push(...(byRoute.get(it.cfg.name) ?? []))
    routePlugins.set(it, list)
  })
  const dupCheck = (list: Attached[], where: string) => {
    const seen = new Map<string, PathKey[]>()
    for (const a of list) {
      if (seen.has(a.entry.name)) src.report([...a.path, 'name'], 'CB_CFG_DUPLICATE', `plugin "${a.entry.name}" is configured twice on ${where} (also at ${src.describe(seen.get(a.entry.name)!)})`)
      else seen.set(a.entry.name, a.path)
    }
  }
  dupCheck(global, 'the global scope')
  for (const [n, l] of byService) dupCheck(l, `service "${n}"`)
  for (const [it, l] of routePlugins) dupCheck(l, `route ${it.cfg.name ?? src.describe(it.path)}`)
  for (const n of internalNames.keys()) dupCheck(byRoute.get(n) ?? [], `route ${n}`)

  const routes: ResolvedRoute[] = []
  routeItems.forEach((it, k) => {
    const svc = it.serviceName === undefined ? undefined : serviceByName.get(it.serviceName)?.svc
    if (svc === undefined) return
    // Kong's precedence: a plugin on the route beats the same plugin on the service, which beats a global one
    const chosen = new Map<string, Attached>()
    for (const a of global) chosen.set(a.entry.name, a)
    for (const a of byService.get(it.serviceName!) ?? []) chosen.set(a.entry.name, a)
    for (const a of routePlugins.get(it) ?? []) chosen.set(a.entry.name, a)
    const plugins: ResolvedPlugin[] = []
    for (const a of chosen.values()) {
      if (!a.entry.enabled || a.resolved === undefined) continue
      if (a.entry.protocols !== undefined && !a.entry.protocols.some(p => (it.cfg.protocols as string[]).includes(p))) continue
      plugins.push(a.resolved)
    }
    plugins.sort((x, y) => y.def.priority - x.def.priority)
    routes.push({
      name: it.cfg.name ?? `route-${k}`,
      path: it.path,
      service: svc,
      paths: it.cfg.paths ?? [],
      methods: it.cfg.methods ?? [],
      hosts: it.cfg.hosts ?? [],
      headers: it.cfg.headers ?? {},
      protocols: it.cfg.protocols,
      stripPath: it.cfg.strip_path,
      preserveHost: it.cfg.preserve_host,
      regexPriority: it.cfg.regex_priority,
      pathHandling: it.cfg.path_handling,
      plugins,
    })
  })

  // internal routes serve http and https and have no service: global plugins, then the route's own
  const internalRoutes = new Map<string, ResolvedPlugin[]>()
  for (const n of internalNames.keys()) {
    const chosen = new Map<string, Attached>()
    for (const a of global) chosen.set(a.entry.name, a)
    for (const a of byRoute.get(n) ?? []) chosen.set(a.entry.name, a)
    const plugins = [...chosen.values()].flatMap(a => a.entry.enabled && a.resolved !== undefined ? [a.resolved] : [])
    internalRoutes.set(n, plugins.sort((x, y) => y.def.priority - x.def.priority))
  }
  checkStoreSharing(src, root.gateway, rawRoot.authorization_server)

  const sections: Record<string, { value: unknown, path: PathKey[] }> = {}
  for (const [name, schema] of opts.sections ?? []) {
    const value = rawRoot[name]
    if (value === undefined) continue
    const r = schema.safeParse(value, { reportInput: true })
    if (!r.success) reportZodIssues(src, schema, r.error.issues, [name], `section "${name}"`)
    else sections[name] = { value: r.data, path: [name] }
  }
  const consumers = resolveConsumers(src, root.consumers)
  if (!parsed.success || src.diagnostics.length > 0) return undefined
  return {
    file: src.file,
    files: src.files,
    baseDir,
    hash: src.hash,
    settings: root.gateway,
    listeners,
    adminListen,
    trustedCa,
    services,
    routes,
    pluginEntries: all,
    consumers,
    raw: root,
    sections,
    internalRoutes,
    source: src,
  }
}

/** After a schema failure, the root made of what parses (see salvageEntity); every refusal was reported. */
function salvage (raw: Record<string, unknown>): RootConfig {
  const plugins = (v: unknown): unknown[] => salvageList(pluginEntrySchema, v)
  const routes = (v: unknown): unknown[] => salvageList(routeSchema, v, { plugins })
  const gateway = salvageEntity(gatewaySchema, raw.gateway ?? {}, { listen: (v: unknown) => salvageList(listenSchema, v) })
  return {
    _format_version: '3.0',
    gateway: gateway ?? gatewaySchema.parse({}),
    services: salvageList(serviceSchema, raw.services, { routes, plugins }),
    routes: salvageList(routeSchema, raw.routes, { plugins }),
    plugins: salvageList(pluginEntrySchema, raw.plugins),
    consumers: salvageList(consumerSchema, raw.consumers),
  }
}

/** The `name`s in a raw list, valid entries or not: a reference to a refused entry is not also dangling. */
function rawNames (list: unknown): string[] {
  if (!Array.isArray(list)) return []
  return list.flatMap((x: unknown) => typeof (x as { name?: unknown } | null)?.name === 'string' ? [(x as { name: string }).name] : [])
}

function resolveService (src: ConfigSet, p: PathKey[], s: ServiceConfig): ResolvedService | undefined {
  let protocol = s.protocol ?? 'http'; let host = s.host; let port = s.port; let path = s.path ?? ''
  if (s.url !== undefined) {
    if (s.host !== undefined || s.port !== undefined || s.path !== undefined || s.protocol !== undefined) {
      src.report([...p, 'url'], 'CB_CFG_INVALID', 'url cannot be combined with protocol/host/port/path')
    }
    let u: URL
    try { u = new URL(s.url) } catch { src.report([...p, 'url'], 'CB_CFG_INVALID', `"${s.url}" is not a URL`); return undefined }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') { src.report([...p, 'url'], 'CB_CFG_INVALID', 'only http:// and https:// upstreams are supported'); return undefined }
    if (u.search !== '' || u.hash !== '' || u.username !== '') { src.report([...p, 'url'], 'CB_CFG_INVALID', 'the url may not carry a query, fragment or credentials'); return undefined }
    protocol = u.protocol === 'https:' ? 'https' : 'http'
    host = u.hostname.replace(/^\[(.*)\]$/, '$1')
    port = u.port === '' ? undefined : Number(u.port)
    path = u.pathname === '/' && !s.url.replace(/^[a-z]+:\/\/[^/]*/, '').startsWith('/') ? '' : u.pathname
  }
  if (host === undefined || host === '') {
    // a url or host the schema refused (reported) is not also missing
    if (!salvaged.has(s)) src.report(p, 'CB_CFG_REQUIRED', 'a service needs url, or host (with protocol/port/path)')
    return undefined
  }
  if (path !== '' && !path.startsWith('/')) { src.report([...p, 'path'], 'CB_CFG_INVALID', 'path must start with "/"'); return undefined }
  return {
    name: s.name,
    protocol,
    host,
    port: port ?? (protocol === 'https' ? 443 : 80),
    path,
    connectTimeout: s.connect_timeout,
    readTimeout: s.read_timeout,
    writeTimeout: s.write_timeout,
    retries: s.retries,
    connectFailureHold: s.connect_failure_hold,
    tlsVerify: s.tls_verify ?? true,
  }
}

/** Reads referenced files once and reports unreadable or malformed ones at the referencing key. */
class FileReader {
  constructor (private readonly src: ConfigSet) {}

  read (path: PathKey[], f: string): Buffer | undefined {
    try {
      return readFileSync(resolve(this.src.dirOf(path), f))
    } catch (err) {
      this.src.report(path, 'CB_CFG_FILE', `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (paths are resolved relative to the config file)`)
      return undefined
    }
  }

  certs (path: PathKey[], f: string): Buffer | undefined {
    const b = this.read(path, f)
    if (b === undefined) return undefined
    const blocks = splitPem(b.toString('utf8'))
    if (blocks.length === 0) { this.src.report(path, 'CB_CFG_PEM', `${f} holds no PEM certificate (BEGIN CERTIFICATE)`); return undefined }
    for (const [i, block] of blocks.entries()) {
      try { new X509Certificate(block) } catch (e) { this.src.report(path, 'CB_CFG_PEM', `${f}: certificate ${i + 1} is malformed: ${(e as Error).message}`); return undefined }
    }
    return b
  }

  privateKey (path: PathKey[], f: string): Buffer | undefined {
    const b = this.read(path, f)
    if (b === undefined) return undefined
    try { createPrivateKey(b) } catch (e) { this.src.report(path, 'CB_CFG_PEM', `${f} is not a readable private key: ${(e as Error).message}`); return undefined }
    return b
  }
}

/** Split a PEM bundle into its certificate blocks. */
export function splitPem (text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}

export function parseAddress (a: string): { host: string, port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(a.trim())
  if (m === null) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2])
  return { host, port }
}

function isCidr (s: string): boolean {
  const [ip, bits] = s.split('/')
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(ip)
  const v6 = ip.includes(':')
  if (!v4 && !v6) return false
  if (bits === undefined) return true
  const n = Number(bits)
  return Number.isInteger(n) && n >= 0 && n <= (v4 ? 32 : 128)
}

function hint (word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates)
  return c === undefined ? '' : `; did you mean "${c}"?`
}

function getIn (obj: unknown, path: readonly PathKey[]): unknown {
  let cur = obj
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string | number, unknown>)[k]
  }
  return cur
}

function formatKeys (p: readonly PathKey[]): string {
  return p.map((k, i) => typeof k === 'number' ? `[${k}]` : (i === 0 ? k : `.${k}`)).join('')
}

/**
 * Settings that cannot be shared through gateway.store are refused here, with the reason (the rest is made coherent
 * by the store itself: generated keys and revocations go through it on every backend).
 */
function checkStoreSharing (src: ConfigSet, settings: GatewaySettings | undefined, as: unknown): void {
  const store = settings?.store
  if (store === undefined || storeBackend(store) !== 'redis' || store.secret !== undefined) return
  if (as === null || typeof as !== 'object') return
  const a = as as Record<string, unknown>
  if (a.signing_keys !== undefined || a.key_store !== undefined) return
  src.report(['gateway', 'store'], 'CB_CFG_REQUIRED', 'the authorization server generates its signing keys into the store, which every node shares through Redis, encrypted: set gateway.store.secret (≥ 32 characters, e.g. ${{ env "CERTBOUND_STORE_SECRET" }}), or give authorization_server.signing_keys (PEM files every node has)', 'secret')
}
