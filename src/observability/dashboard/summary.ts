import type { LoadedConfig } from '../../config/validate.js'
import type { ClientActivityRow } from '../../authorization-server/client-activity.js'
import { RECENT_SLOTS, SLOT_MS, SLOTS, quantileMs, type StatsSnapshot } from './stats.js'
import { reasonLabel, reasonStatus } from './reasons.js'
import type { ReloadHistory } from './reload-history.js'
import type { StoreStatus } from '../../store/types.js'

/** Certificates expiring within this many days are flagged (an expired client certificate is a classic outage). */
export const EXPIRY_WARNING_DAYS = 30
const DAY_MS = 86_400_000
const CLASS_NAMES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

/**
 * GET /api/summary: what the dashboard page renders, documented in docs/admin-dashboard.md. Public data only:
 * route shapes, counts, certificate subjects, issuers and thumbprints, client ids, config diagnostics.
 * Never a token, secret, key, header value or upstream credential.
 */
export interface DashboardSummary {
  readonly generated_at: string
  readonly window: { readonly slot_seconds: number, readonly slots: number, readonly recent_seconds: number }
  readonly gateway: {
    readonly version: string, readonly config_hash: string, readonly started_at: string, readonly uptime_s: number
    readonly ready: boolean, readonly reasons?: readonly string[], readonly workers?: number
    /** gateway.workers: how many workers' counters this answer adds up (those that answered within 1 s). */
    readonly reporting_workers?: number
  }
  readonly routes: readonly RouteSummary[]
  readonly refusals: ReadonlyArray<{ readonly code: string, readonly cause?: string, readonly reason: string, readonly status?: number, readonly total: number, readonly recent: number, readonly series: readonly number[] }>
  readonly certificates: readonly CertificateSummary[]
  readonly authorization_server: { readonly clients: readonly ClientActivityRow[] } | null
  readonly reloads: ReturnType<ReloadHistory['summary']>
  readonly store: DashboardStoreStatus
}

/** The store's own status(), or with gateway.workers what the workers report of it. */
export type DashboardStoreStatus = StoreStatus & { readonly detail?: string }

export interface RouteSummary {
  readonly name: string
  readonly hosts: readonly string[]
  readonly paths: readonly string[]
  readonly methods: readonly string[]
  readonly service: { readonly name: string, readonly url: string } | null
  /** Plugin names in execution order (priority, highest first). */
  readonly plugins: readonly string[]
  readonly requests_total: number
  readonly status_total: Readonly<Record<string, number>>
  /** The last minute. */
  readonly rps: number
  readonly status_recent: Readonly<Record<string, number>>
  readonly p50_ms: number | null
  readonly p99_ms: number | null
  /** Requests per slot (slot_seconds each), oldest first. */
  readonly series: readonly number[]
}

export interface CertificateSummary {
  readonly subject: string
  readonly issuer: string
  /** RFC 8705 §3.1 x5t#S256 of the certificate. */
  readonly x5t_s256: string
  readonly consumer: string | null
  readonly client_id: string | null
  readonly not_after: string
  readonly days_left: number
  readonly expiring_soon: boolean
  readonly expired: boolean
  readonly last_seen: string
  readonly requests: number
}

export interface SummaryInput {
  readonly now: number
  readonly config: LoadedConfig
  readonly status: DashboardSummary['gateway']
  readonly stats: StatsSnapshot
  readonly clients: readonly ClientActivityRow[] | undefined
  readonly reloads: ReturnType<ReloadHistory['summary']>
  readonly store: DashboardStoreStatus
}

const round = (n: number | undefined, d = 3): number | null => n === undefined ? null : Math.round(n * 10 ** d) / 10 ** d
const classes = (a: readonly number[]): Record<string, number> => Object.fromEntries(CLASS_NAMES.map((n, i) => [n, a[i] ?? 0]))

export function buildSummary (i: SummaryInput): DashboardSummary {
  const byName = new Map(i.stats.routes.map(r => [r.route, r]))
  const routes: RouteSummary[] = i.config.routes.map(r => {
    const s = byName.get(r.name)
    byName.delete(r.name)
    const svc = r.service
    const host = svc.host.includes(':') ? `[${svc.host}]` : svc.host
    return routeSummary(r.name, s, {
      hosts: r.hosts, paths: r.paths, methods: r.methods,
      service: { name: svc.name, url: `${svc.protocol}://${host}:${svc.port}${svc.path}` },
      plugins: r.plugins.map(p => p.def.name),
    })
  })
  // traffic of routes no longer in the config (renamed by a reload), and requests that matched no route
  for (const [name, s] of byName) routes.push(routeSummary(name, s, { hosts: [], paths: [], methods: [], service: null, plugins: [] }))

  const refusals = i.stats.reasons.map(r => ({
    code: r.code,
    cause: r.cause,
    reason: reasonLabel(r.code, r.cause),
    status: reasonStatus(r.code),
    total: r.total,
    recent: r.series.slice(SLOTS - RECENT_SLOTS).reduce((a, b) => a + b, 0),
    series: r.series,
  })).sort((a, b) => b.total - a.total || a.code.localeCompare(b.code) || (a.cause ?? '').localeCompare(b.cause ?? ''))

  const certificates: CertificateSummary[] = i.stats.certs.map(c => {
    const days = (c.notAfter - i.now) / DAY_MS
    return {
      subject: c.subject,
      issuer: c.issuer,
      x5t_s256: c.x5t,
      consumer: c.consumer ?? null,
      client_id: c.clientId ?? null,
      not_after: new Date(c.notAfter).toISOString(),
      days_left: Math.floor(days * 10) / 10,
      expiring_soon: days < EXPIRY_WARNING_DAYS,
      expired: days <= 0,
      last_seen: new Date(c.lastSeen).toISOString(),
      requests: c.requests,
    }
  }).sort((a, b) => a.not_after.localeCompare(b.not_after) || a.subject.localeCompare(b.subject))

  return {
    generated_at: new Date(i.now).toISOString(),
    window: { slot_seconds: SLOT_MS / 1000, slots: SLOTS, recent_seconds: RECENT_SLOTS * SLOT_MS / 1000 },
    gateway: i.status,
    routes,
    refusals,
    certificates,
    authorization_server: i.clients === undefined ? null : { clients: i.clients },
    reloads: i.reloads,
    store: i.store,
  }
}

function routeSummary (name: string, s: StatsSnapshot['routes'][number] | undefined, shape: Pick<RouteSummary, 'hosts' | 'paths' | 'methods' | 'service' | 'plugins'>): RouteSummary {
  const recentTotal = s === undefined ? 0 : s.recent.reduce((a, b) => a + b, 0)
  return {
    name,
    ...shape,
    requests_total: s === undefined ? 0 : s.totals.reduce((a, b) => a + b, 0),
    status_total: classes(s?.totals ?? []),
    rps: round(recentTotal / (RECENT_SLOTS * SLOT_MS / 1000)) ?? 0,
    status_recent: classes(s?.recent ?? []),
    p50_ms: round(s === undefined ? undefined : quantileMs(s.latency, 0.5)),
    p99_ms: round(s === undefined ? undefined : quantileMs(s.latency, 0.99)),
    series: s?.requests ?? new Array<number>(SLOTS).fill(0),
  }
}

/** Add up the AS client rows of several workers (same clients, same config). */
export function mergeClientRows (lists: ReadonlyArray<readonly ClientActivityRow[] | undefined>): ClientActivityRow[] | undefined {
  const present = lists.filter((l): l is readonly ClientActivityRow[] => l !== undefined)
  if (present.length === 0) return undefined
  const out = new Map<string, ClientActivityRow>()
  for (const l of present) {
    for (const r of l) {
      const m = out.get(r.client_id)
      if (m === undefined) { out.set(r.client_id, r); continue }
      const last = [m.last_issued_at, r.last_issued_at].filter((x): x is string => x !== undefined).sort().pop()
      out.set(r.client_id, { ...m, tokens_issued: m.tokens_issued + r.tokens_issued, tokens_revoked: m.tokens_revoked + r.tokens_revoked, last_issued_at: last })
    }
  }
  return [...out.values()]
}

/**
 * gateway.workers: each worker holds its own connection to the store. Connected only if every answering worker is;
 * the slowest round trip; `detail` when no worker answered.
 */
export function mergeStoreStatus (list: readonly StoreStatus[]): DashboardStoreStatus {
  if (list.length === 0) return { backend: 'unknown', connected: false, detail: 'no worker answered' }
  const lat = list.map(s => s.latency_ms).filter((x): x is number => x !== undefined)
  return {
    backend: list[0].backend,
    connected: list.every(s => s.connected),
    ...(lat.length > 0 ? { latency_ms: Math.max(...lat) } : {}),
  }
}
