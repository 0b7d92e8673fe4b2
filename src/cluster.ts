import cluster, { type Worker } from 'node:cluster'
import { writeSync } from 'node:fs'
import { basename } from 'node:path'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from 'pino'
import { Gateway, VERSION, tlsFilesOf } from './gateway.js'
import { ConfigError, formatDiagnostics, type Diagnostic } from './config/diagnostic.js'
import { watchConfigFiles, type ConfigWatch } from './config/watch.js'
import { createAdminServer } from './observability/admin.js'
import { GatewayMetrics } from './observability/metrics.js'
import { drainLogs } from './observability/logger.js'
import { CidrSet } from './net/cidr.js'
import type { LoadedConfig } from './config/validate.js'
import type { ConfigText } from './config/config-set.js'
import { readConfigTexts } from './config/files.js'

/** A config as sent to workers: the files' texts, or one POST /config text. */
type Texts = string | readonly ConfigText[]

import { IpcStore, StoreHost } from './store/ipc.js'
import { MemoryStore } from './store/memory.js'
import { storeBackend } from './store/schema.js'
import { systemClock, type StoreStatus } from './store/types.js'
import { ReloadHistory } from './observability/dashboard/reload-history.js'
import { mergeSnapshots, type StatsSnapshot } from './observability/dashboard/stats.js'
import { buildSummary, mergeClientRows, mergeStoreStatus } from './observability/dashboard/summary.js'
import type { ClientActivityRow } from './authorization-server/client-activity.js'
import type { HeldStopSignals } from './runtime/stop-signals.js'

type ToWorker = { type: 'start', text: Texts, ipcStore?: boolean } | { type: 'reload', id: number, text: Texts } | { type: 'shutdown' } | { type: 'dashboard', id: number }
type DashboardData = { stats: StatsSnapshot, clients: ClientActivityRow[] | undefined, store: StoreStatus }
type FromWorker =
  | { type: 'hello' }
  | { type: 'ready', hash: string, ready: boolean }
  | { type: 'status', ready: boolean, hash: string, store?: StoreStatus }
  | { type: 'reloaded', id: number, ok: boolean, hash?: string, errors?: string }
  | { type: 'dashboard', id: number, data: DashboardData }

/** How long the primary waits for every worker to apply a reload before answering. */
const RELOAD_ACK_MS = 30_000
/** How long the dashboard waits for the workers' counters; a worker that is late is left out of that poll. */
const DASHBOARD_ANSWER_MS = 1_000
/** A worker that dies younger than this is crash-looping: its restart is delayed more each time (up to 10 s). */
const STABLE_MS = 5_000
const RESTART_MIN_MS = 500
const RESTART_MAX_MS = 10_000

type ClusterReload = { ok: true } | { ok: false, errors: string, diagnostics: readonly Diagnostic[] }

interface WorkerEntry { worker: Worker, ready: boolean, hash: string, startedAt: number, store?: StoreStatus }

export interface PrimaryOptions {
  /** The config text `cfg` was validated from: what workers start with. */
  readonly text: readonly ConfigText[]
  /** Reload when the config file or a listener's TLS file changes. */
  readonly watch: boolean
  /** SIGTERM/SIGINT held since before the config was read: they stop the primary once it can (src/runtime/stop-signals.ts). */
  readonly held: HeldStopSignals
}

/**
 * gateway.workers: N. The primary validates the config, forks N workers that each run the full gateway on
 * the same listeners (the kernel spreads connections: SCHED_NONE avoids funnelling every connection through
 * the primary), serves the admin listener with metrics aggregated over the workers, forwards reloads and
 * shutdown, and restarts a crashed worker. Workers get the config text from the primary (never the file), so a
 * config applied with POST /config survives a worker's restart, and every worker runs the text that was validated.
 */
export async function runPrimary (configFile: string | readonly string[], cfg: LoadedConfig, logger: Logger, opts: PrimaryOptions): Promise<void> {
  const n = cfg.settings.workers
  const workers = new Map<number, WorkerEntry>()
  let stopping = false
  let current = cfg
  let liveText: Texts = opts.text
  let restartDelay = RESTART_MIN_MS
  const startedAt = new Date()
  const metrics = new GatewayMetrics()
  const aggregator = new AggregatorRegistry()
  let reloadSeq = 0
  const acks = new Map<number, { waiting: Set<number>, failures: string[], done(): void }>()
  // gateway.store memory: this process owns the state every worker shares (redis: each worker connects itself)
  const storeHost = storeBackend(cfg.settings.store) === 'memory' ? new StoreHost(new MemoryStore({ now: systemClock, maxKeys: cfg.settings.store?.max_keys })) : undefined
  const reloads = new ReloadHistory()
  let dashboardSeq = 0
  const dashboardAsks = new Map<number, { waiting: Set<number>, got: DashboardData[], done(): void }>()

  const settle = (id: number): void => {
    const a = acks.get(id)
    if (a !== undefined && a.waiting.size === 0) { acks.delete(id); a.done() }
  }

  const fork = (): void => {
    const w = cluster.fork({ CERTBOUND_WORKER: '1' })
    workers.set(w.id, { worker: w, ready: false, hash: '', startedAt: Date.now() })
    // a send to a worker that just died fails asynchronously; its exit is handled below
    w.on('error', (err: Error) => { logger.warn({ worker: w.process.pid, err: err.message }, 'worker IPC error') })
    w.on('message', (m: FromWorker) => {
      const e = workers.get(w.id)
      if (e === undefined || typeof m !== 'object' || m === null) return
      if (storeHost?.handle({ id: w.id, send: (x) => { w.send(x) } }, m) === true) return
      if (m.type === 'hello') w.send({ type: 'start', text: liveText, ipcStore: storeHost !== undefined } satisfies ToWorker)
      if (m.type === 'ready' || m.type === 'status') { e.ready = m.ready; e.hash = m.hash }
      if (m.type === 'status') e.store = m.store
      if (m.type === 'dashboard') {
        const a = dashboardAsks.get(m.id)
        if (a !== undefined && a.waiting.delete(w.id)) { a.got.push(m.data); if (a.waiting.size === 0) a.done() }
      }
      if (m.type === 'reloaded') {
        if (m.ok && m.hash !== undefined) e.hash = m.hash
        const a = acks.get(m.id)
        if (a !== undefined) {
          if (!m.ok) a.failures.push(`worker ${w.process.pid}: ${m.errors ?? 'refused'}`)
          a.waiting.delete(w.id)
          settle(m.id)
        }
      }
    })
  }
  cluster.on('exit', (w, code, signal) => {
    const e = workers.get(w.id)
    workers.delete(w.id)
    storeHost?.gone(w.id)
    for (const [id, a] of acks) { if (a.waiting.delete(w.id)) settle(id) }
    if (stopping) return
    const lived = e === undefined ? 0 : Date.now() - e.startedAt
    restartDelay = lived < STABLE_MS ? Math.min(restartDelay * 2, RESTART_MAX_MS) : RESTART_MIN_MS
    logger.error({ worker: w.process.pid, code, signal, restart_in_ms: restartDelay }, 'worker exited; starting a new one')
    setTimeout(() => { if (!stopping) fork() }, restartDelay).unref()
  })
  for (let i = 0; i < n; i++) fork()

  /** Send a reload to every live worker; resolves with the failures once each answered (or RELOAD_ACK_MS passed). */
  const broadcastReload = (text: Texts): Promise<string[]> => new Promise((done) => {
    const id = ++reloadSeq
    const failures: string[] = []
    const waiting = new Set(workers.keys())
    const timer = setTimeout(() => {
      for (const wid of waiting) failures.push(`worker ${workers.get(wid)?.worker.process.pid ?? wid}: no answer within ${RELOAD_ACK_MS} ms`)
      acks.delete(id)
      done(failures)
    }, RELOAD_ACK_MS)
    acks.set(id, { waiting, failures, done: () => { clearTimeout(timer); done(failures) } })
    for (const wid of waiting) workers.get(wid)?.worker.send({ type: 'reload', id, text } satisfies ToWorker)
    settle(id)
  })

  let reloading: Promise<unknown> = Promise.resolve()
  const doReload = async (given?: Texts): Promise<ClusterReload> => {
    let text: Texts
    let next: LoadedConfig
    try {
      text = given ?? readConfigTexts(typeof configFile === 'string' ? [configFile] : configFile)
      next = await Gateway.check(configFile, { configText: text })
    } catch (e) {
      if (e instanceof ConfigError) {
        logger.error({ errors: e.diagnostics.length, diagnostics: e.diagnostics.map(d => `${basename(d.file)}:${d.line}:${d.col} ${d.code} ${d.path}: ${d.message}`) }, 'config reload refused; the running config is unchanged')
        return { ok: false, errors: formatDiagnostics(e.files, e.diagnostics), diagnostics: e.diagnostics }
      }
      logger.error({ err: (e as Error).message }, 'config reload failed; the running config is unchanged')
      return { ok: false, errors: (e as Error).message, diagnostics: [] }
    }
    const failures = await broadcastReload(text)
    if (failures.length > 0) {
      logger.error({ failures }, 'config reload refused by a worker')
      return { ok: false, errors: failures.join('\n'), diagnostics: [] }
    }
    current = next
    liveText = text
    watcher?.setFiles(tlsFilesOf(next))
    logger.info({ config_hash: next.hash, workers: workers.size, lifecycle: true }, 'config reloaded on every worker')
    return { ok: true }
  }
  /** Reloads are serialised, as in a single process. */
  const reload = (text?: Texts): Promise<ClusterReload> => {
    const r = reloading.then(() => doReload(text)).then((res) => { reloads.record(res.ok ? { ok: true, hash: current.hash } : res); return res })
    reloading = r.catch(() => undefined)
    return r
  }

  let watcher: ConfigWatch | undefined
  if (opts.watch) {
    watcher = watchConfigFiles({
      configFile,
      initialText: opts.text,
      onConfig: (text) => { void reload(text) },
      onFiles: () => { void reload(liveText) },
    })
    watcher.setFiles(tlsFilesOf(cfg))
  }

  /** Every live worker's dashboard counters (those that answer within DASHBOARD_ANSWER_MS). */
  const askWorkers = (): Promise<DashboardData[]> => new Promise((done) => {
    const id = ++dashboardSeq
    const got: DashboardData[] = []
    const waiting = new Set(workers.keys())
    const finish = (): void => { clearTimeout(timer); dashboardAsks.delete(id); done(got) }
    const timer = setTimeout(finish, DASHBOARD_ANSWER_MS)
    dashboardAsks.set(id, { waiting, got, done: finish })
    for (const wid of waiting) workers.get(wid)?.worker.send({ type: 'dashboard', id } satisfies ToWorker)
    if (waiting.size === 0) finish()
  })

  const statusOf = () => {
    const ws = [...workers.values()]
    const reasons: string[] = []
    if (stopping) reasons.push('stopping')
    if (ws.length < n) reasons.push(`${ws.length} of ${n} workers running`)
    for (const w of ws) if (!w.ready) reasons.push(`worker ${w.worker.process.pid} is not ready`)
    return {
      ready: reasons.length === 0,
      config_hash: current.hash,
      started_at: startedAt.toISOString(),
      uptime_s: Math.round((Date.now() - startedAt.getTime()) / 1000),
      version: VERSION,
      workers: ws.length,
      // memory: the primary's own store; redis: as the workers report it (connected only if every worker is)
      store: storeHost?.owner.status() ?? (ws.some(w => w.store !== undefined) ? mergeStoreStatus(ws.flatMap(w => w.store ?? [])) : { backend: 'redis', connected: false, detail: 'no worker has reported yet' }),
      worker_status: ws.map(w => ({ pid: w.worker.process.pid ?? 0, ready: w.ready, config_hash: w.hash })),
      reasons: reasons.length > 0 ? reasons : undefined,
    }
  }

  let admin: ReturnType<typeof createAdminServer> | undefined
  if (cfg.adminListen !== undefined) {
    admin = createAdminServer({
      metrics,
      metricsText: () => aggregator.clusterMetrics(),
      status: statusOf,
      reload: (yaml) => reload(yaml),
      allow: () => new CidrSet(current.settings.admin_allow),
      dashboard: {
        settings: () => current.settings.admin_dashboard,
        summary: async () => {
          const data = await askWorkers()
          return buildSummary({
            now: Date.now(),
            config: current,
            // workers that answered in time: fewer than `workers` means these counts are partial
            status: { ...statusOf(), reporting_workers: data.length },
            stats: mergeSnapshots(data.length > 0 ? data.map(d => d.stats) : [metrics.dashboard.snapshot()]),
            clients: mergeClientRows(data.map(d => d.clients)),
            reloads: reloads.summary(),
            store: mergeStoreStatus(data.map(d => d.store)),
          })
        },
      },
    })
    await new Promise<void>((res) => admin!.listen(cfg.adminListen!.port, cfg.adminListen!.host, () => res()))
  }
  logger.info({ workers: n, admin: cfg.adminListen, watch: opts.watch, lifecycle: true }, 'certbound primary started')

  process.on('SIGHUP', () => { void reload() })
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal, lifecycle: true }, 'stopping: workers drain their in-flight requests')
    watcher?.close()
    for (const { worker } of workers.values()) worker.send({ type: 'shutdown' } satisfies ToWorker)
    admin?.closeAllConnections()
    admin?.close()
    // workers enforce drain_timeout themselves; this only guards against one that hangs
    const deadline = setTimeout(() => {
      for (const { worker } of workers.values()) worker.process.kill('SIGKILL')
      process.exit(0)
    }, current.settings.limits.drain_timeout + 2000)
    deadline.unref()
    const check = setInterval(() => { if (workers.size === 0) { clearInterval(check); logger.flush(); process.exit(0) } }, 50)
  }
  opts.held.release(stop)
}

/**
 * A worker: the full gateway without the admin listener, driven by the primary's messages. It asks for its
 * config text first; messages that arrive while it starts are queued, so a reload sent meanwhile is not lost.
 */
export async function runWorker (configFile: string | readonly string[]): Promise<void> {
  const send = (m: FromWorker): void => { if (process.send !== undefined) process.send(m) }
  const running: { gw: Gateway | undefined } = { gw: undefined }
  // signals go to the whole process group; the primary coordinates, workers wait for its message
  process.on('SIGINT', () => undefined)
  process.on('SIGHUP', function workerSighup () {
    // the primary reloads and tells every worker; a SIGHUP to one worker alone would change nothing, say where to send it
    const log = running.gw?.logger
    const line = { signal: 'SIGHUP', primary_pid: process.ppid, lifecycle: true }
    const msg = `SIGHUP received by a worker is not acted on: send it to the primary (pid ${process.ppid}), which reloads every worker`
    if (log !== undefined) log.warn(line, msg)
    else writeSync(1, JSON.stringify({ level: 'warn', pid: process.pid, time: new Date().toISOString(), msg, ...line }) + '\n')
  })
  const exitAfter = (g: Gateway): void => { void g.close().then(() => drainLogs(g.logger)).then(() => process.exit(0)) }
  process.on('SIGTERM', () => { if (running.gw === undefined) process.exit(0); else exitAfter(running.gw) })
  const queued: ToWorker[] = []
  let onStart: ((m: { text: Texts, ipcStore?: boolean }) => void) | undefined
  // store replies and revocation pushes are handled at once, also while the gateway starts (it awaits them)
  const ipc = new IpcStore((m) => { process.send?.(m) }, systemClock)
  const handle = (g: Gateway, m: ToWorker): void => {
    if (m.type === 'reload') void g.reload(m.text).then(r => send({ type: 'reloaded', id: m.id, ok: r.ok, hash: r.ok ? r.hash : undefined, errors: r.ok ? undefined : r.errors }))
    if (m.type === 'shutdown') exitAfter(g)
    if (m.type === 'dashboard') send({ type: 'dashboard', id: m.id, data: g.dashboardData() })
  }
  process.on('message', (m: ToWorker) => {
    if (typeof m !== 'object' || m === null) return
    if (ipc.handleMessage(m)) return
    if (m.type === 'start') { onStart?.(m); return }
    if (running.gw === undefined) queued.push(m)
    else handle(running.gw, m)
  })
  const { text, ipcStore } = await new Promise<{ text: Texts, ipcStore?: boolean }>((res) => { onStart = res; send({ type: 'hello' }) })
  onStart = undefined
  if (ipcStore === true) await ipc.sync()
  const g = await Gateway.start({ configFile, configText: text, admin: false, store: ipcStore === true ? ipc : undefined })
  running.gw = g
  // constructing one registers prom-client's worker-side listener that answers the primary's /metrics
  // requests; setRegistries alone does not, and the primary's /metrics would wait forever
  void new AggregatorRegistry()
  AggregatorRegistry.setRegistries([g.metrics.registry])
  const report = (): void => { const s = g.status(); send({ type: 'status', ready: s.ready, hash: s.config_hash, store: s.store }) }
  send({ type: 'ready', hash: g.status().config_hash, ready: g.status().ready })
  const timer = setInterval(report, 1000)
  timer.unref()
  for (const m of queued.splice(0)) handle(g, m)
}
