import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { sendJson } from '../errors/respond.js'
import type { GatewayMetrics } from './metrics.js'
import type { CidrSet } from '../net/cidr.js'
import type { AdminDashboardConfig } from '../config/admin-dashboard.js'
import type { DashboardSummary } from './dashboard/summary.js'
import { serveDashboard } from './dashboard/serve.js'

export interface AdminDeps {
  metrics: GatewayMetrics
  status(): {
    ready: boolean, config_hash: string, started_at: string, uptime_s: number, version: string, reasons?: string[]
    /** gateway.workers: the workers running, and each one's pid, readiness and config. */
    workers?: number, worker_status?: Array<{ pid: number, ready: boolean, config_hash: string }>
  }
  /** Apply a new config (YAML text); resolves with diagnostics text on failure. */
  reload?(yaml: string): Promise<{ ok: true } | { ok: false, errors: string, diagnostics: readonly unknown[] }>
  allow(): CidrSet
  metricsText?(): Promise<string>
  /** GET / (the dashboard page) and GET /api/summary; absent: 404. */
  dashboard?: {
    summary(): Promise<DashboardSummary>
    settings(): AdminDashboardConfig
  }
}

const MAX_CONFIG_BYTES = 4 * 1024 * 1024

/**
 * GET /status (liveness), /status/ready (readiness), /metrics (Prometheus); POST /config (Kong DB-less style);
 * GET / (dashboard) and GET /api/summary (its JSON), for admin_allow addresses.
 */
export function createAdminServer (deps: AdminDeps): Server {
  return createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => { void route(deps, req, res) })
}

async function route (deps: AdminDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  try {
    if (req.method === 'GET' && (path === '/status' || path === '/status/live')) {
      return sendJson(res, 200, { status: 'ok', ...deps.status() })
    }
    if (req.method === 'GET' && path === '/status/ready') {
      const s = deps.status()
      return sendJson(res, s.ready ? 200 : 503, { ready: s.ready, config_hash: s.config_hash, reasons: s.reasons })
    }
    if (req.method === 'GET' && path === '/metrics') {
      const text = deps.metricsText !== undefined ? await deps.metricsText() : await deps.metrics.registry.metrics()
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType, 'cache-control': 'no-store' })
      return void res.end(text)
    }
    if (deps.dashboard !== undefined && (path === '/' || path === '/api/summary')) {
      return await serveDashboard(deps.dashboard, deps.allow(), path, req, res)
    }
    if (path === '/config') {
      if (req.method !== 'POST') return sendJson(res, 405, { message: 'use POST with an application/yaml body' }, { allow: 'POST' })
      if (!deps.allow().has(req.socket.remoteAddress)) return sendJson(res, 403, { message: 'POST /config is allowed from gateway.admin_allow addresses only' })
      if (deps.reload === undefined) return sendJson(res, 501, { message: 'reload is not available' })
      const ct = req.headers['content-type'] ?? ''
      if (!/^(application|text)\/(x-)?yaml\b/i.test(ct)) return sendJson(res, 415, { message: 'Content-Type must be application/yaml' })
      const chunks: Buffer[] = []
      let size = 0
      for await (const c of req) {
        size += (c as Buffer).length
        if (size > MAX_CONFIG_BYTES) return sendJson(res, 413, { message: `config larger than ${MAX_CONFIG_BYTES} bytes` }, { connection: 'close' })
        chunks.push(c as Buffer)
      }
      const r = await deps.reload(Buffer.concat(chunks).toString('utf8'))
      if (r.ok) return sendJson(res, 200, { message: 'configuration applied (not written to the config file; SIGHUP re-reads the file)', ...deps.status() })
      return sendJson(res, 400, { message: 'invalid configuration; nothing changed', errors: r.errors, diagnostics: r.diagnostics })
    }
    return sendJson(res, 404, { message: 'Not found' })
  } catch (e) {
    if (!res.headersSent) sendJson(res, 500, { message: (e as Error).message })
  }
}
