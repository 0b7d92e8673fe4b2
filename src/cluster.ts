import cluster, { type Worker } from 'node:cluster'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from 'pino'
import { Gateway, VERSION } from './gateway.js'
import { ConfigError, formatDiagnostics } from './config/diagnostic.js'
import { createAdminServer } from './observability/admin.js'
import { GatewayMetrics } from './observability/metrics.js'
import { CidrSet } from './net/cidr.js'
import type { LoadedConfig } from './config/validate.js'

type ToWorker = { type: 'reload', text?: string } | { type: 'shutdown' }
type FromWorker = { type: 'ready', hash: string, ready: boolean } | { type: 'status', ready: boolean, hash: string } | { type: 'reloaded', ok: boolean, hash?: string }

/**
 * gateway.workers: N. The primary validates the config, forks N workers that each run the full gateway on
 * the same listeners (the kernel spreads connections: SCHED_NONE avoids funnelling every connection through
 * the primary), serves the admin listener with metrics aggregated over the workers, forwards reloads and
 * shutdown, and restarts a crashed worker.
 */
export async function runPrimary (configFile: string, cfg: LoadedConfig, logger: Logger): Promise<void> {
  const n = cfg.settings.workers
  const workers = new Map<number, { worker: Worker, ready: boolean, hash: string }>()
  let stopping = false
  let current = cfg
  const startedAt = new Date()
  const metrics = new GatewayMetrics()
  const aggregator = new AggregatorRegistry()

  const fork = (): void => {
    const w = cluster.fork({ CERTBOUND_WORKER: '1' })
    workers.set(w.id, { worker: w, ready: false, hash: '' })
    w.on('message', (m: FromWorker) => {
      const e = workers.get(w.id)
      if (e === undefined || typeof m !== 'object' || m === null) return
      if (m.type === 'ready' || m.type === 'status') { e.ready = m.ready; e.hash = m.hash }
      if (m.type === 'reloaded' && m.ok && m.hash !== undefined) e.hash = m.hash
    })
  }
  cluster.on('exit', (w, code, signal) => {
    workers.delete(w.id)
    if (stopping) return
    logger.error({ worker: w.process.pid, code, signal }, 'worker exited; starting a new one')
    setTimeout(fork, 500).unref()
  })
  for (let i = 0; i < n; i++) fork()

  const broadcast = (m: ToWorker): void => { for (const { worker } of workers.values()) worker.send(m) }
  const reload = async (text?: string): Promise<{ ok: true } | { ok: false, errors: string, diagnostics: readonly unknown[] }> => {
    try {
      current = await Gateway.check(configFile, { configText: text })
    } catch (e) {
      if (e instanceof ConfigError) {
        logger.error({ errors: e.diagnostics.length }, 'config reload refused; the running config is unchanged')
        return { ok: false, errors: formatDiagnostics(e.file, e.diagnostics), diagnostics: e.diagnostics }
      }
      return { ok: false, errors: (e as Error).message, diagnostics: [] }
    }
    broadcast({ type: 'reload', text })
    return { ok: true }
  }

  let admin: ReturnType<typeof createAdminServer> | undefined
  if (cfg.adminListen !== undefined) {
    admin = createAdminServer({
      metrics,
      metricsText: () => aggregator.clusterMetrics(),
      status: () => {
        const ws = [...workers.values()]
        return {
          ready: !stopping && ws.length === n && ws.every(w => w.ready),
          config_hash: current.hash,
          started_at: startedAt.toISOString(),
          uptime_s: Math.round((Date.now() - startedAt.getTime()) / 1000),
          version: VERSION,
          workers: ws.length,
        }
      },
      reload: (yaml) => reload(yaml),
      allow: () => new CidrSet(current.settings.admin_allow),
    })
    await new Promise<void>((res) => admin!.listen(cfg.adminListen!.port, cfg.adminListen!.host, () => res()))
  }
  logger.info({ workers: n, admin: cfg.adminListen }, 'certbound primary started')

  process.on('SIGHUP', () => { void reload() })
  const stop = (): void => {
    if (stopping) return
    stopping = true
    broadcast({ type: 'shutdown' })
    admin?.close()
    const deadline = setTimeout(() => process.exit(0), current.settings.limits.drain_timeout + 2000)
    deadline.unref()
    const check = setInterval(() => { if (workers.size === 0) { clearInterval(check); process.exit(0) } }, 50)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/** A worker: the full gateway without the admin listener, driven by the primary's messages. */
export async function runWorker (configFile: string, logger: Logger): Promise<void> {
  const send = (m: FromWorker): void => { if (process.send !== undefined) process.send(m) }
  void logger
  const gw = await Gateway.start({ configFile, admin: false, onReload: (r) => send({ type: 'reloaded', ok: r.ok, hash: r.ok ? r.hash : undefined }) })
  AggregatorRegistry.setRegistries([gw.metrics.registry])
  const report = (): void => { const s = gw.status(); send({ type: 'status', ready: s.ready, hash: s.config_hash }) }
  send({ type: 'ready', hash: gw.status().config_hash, ready: gw.status().ready })
  const timer = setInterval(report, 1000)
  timer.unref()
  process.on('message', (m: ToWorker) => {
    if (m.type === 'reload') void gw.reload(m.text ?? readFileSync(resolve(configFile), 'utf8'))
    if (m.type === 'shutdown') { clearInterval(timer); void gw.close().then(() => process.exit(0)) }
  })
  // signals go to the whole process group; the primary coordinates, workers wait for its message
  process.on('SIGINT', () => undefined)
  process.on('SIGTERM', () => { void gw.close().then(() => process.exit(0)) })
  process.on('SIGHUP', () => undefined)
}
