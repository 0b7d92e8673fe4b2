import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { StoreObserver } from '../store/types.js'
import { RouteRequestMetrics } from './route-metrics.js'
import { DashboardStats } from './dashboard/stats.js'
import { TLS_REFUSAL_PREFIX } from './dashboard/reasons.js'
import { RevocationMetrics } from '../auth/revocation/metrics.js'
import { TokenCacheMetrics } from '../auth/token-cache-metrics.js'
import { ConnectHoldMetrics } from '../proxy/connect-hold.js'

/**
 * The gateway's Prometheus metrics, on a registry of its own (several gateways can share a process in tests).
 * Requests are counted by RouteRequestMetrics: the hot path does no label hashing.
 */
export class GatewayMetrics implements StoreObserver {
  readonly registry = new Registry()
  private readonly requests: RouteRequestMetrics
  private readonly upstreamErrors: Counter<'service' | 'kind'>
  private readonly handshakes: Counter<'listener'>
  private readonly certFailures: Counter<'listener' | 'reason'>
  private readonly handshakesPending: Gauge<'listener'>
  private readonly handshakesRefused: Counter<'listener' | 'reason'>
  readonly reloads: Counter<'result'>
  /** Requests and tunnels being handled now, in every runtime; read when /metrics is scraped (no per-request cost). */
  inFlightNow = 0
  private readonly suppressedErrors: Counter<'where'>
  private readonly storeLatency: Histogram<'backend' | 'op'>
  private readonly storeErrors: Counter<'backend' | 'op'>
  /** The admin dashboard's recent-traffic memory, fed where requests are counted. */
  readonly dashboard = new DashboardStats()
  /** Client certificate revocation checks (OCSP, CRL distribution points). */
  readonly revocation: RevocationMetrics
  /** The verified-token caches' shared tier (IdP calls spared, store failures). */
  readonly tokenCache: TokenCacheMetrics
  /** Upstreams failing fast after a failed connection (services[].connect_failure_hold). */
  readonly upstreamHolds: ConnectHoldMetrics

  constructor (opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry]
    this.requests = new RouteRequestMetrics(this.registry, [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    this.upstreamErrors = new Counter({ name: 'certbound_upstream_errors_total', help: 'Upstream failures by service and kind', labelNames: ['service', 'kind'], registers })
    this.handshakes = new Counter({ name: 'certbound_tls_handshakes_total', help: 'Completed TLS handshakes by listener', labelNames: ['listener'], registers })
    this.certFailures = new Counter({ name: 'certbound_tls_client_cert_failures_total', help: 'Handshakes failed or client certificates refused, by reason', labelNames: ['listener', 'reason'], registers })
    this.handshakesPending = new Gauge({ name: 'certbound_tls_handshakes_in_progress', help: 'TCP connections on a TLS listener whose handshake has not completed', labelNames: ['listener'], registers })
    this.handshakesRefused = new Counter({ name: 'certbound_tls_handshakes_refused_total', help: 'Connections closed before their TLS handshake completed, by reason (timeout: gateway.limits.handshake_timeout; too_many_in_progress: max_handshakes_in_progress; too_many_from_address: max_handshakes_per_address)', labelNames: ['listener', 'reason'], registers })
    this.reloads = new Counter({ name: 'certbound_config_reloads_total', help: 'Config reloads by result', labelNames: ['result'], registers })
    const inFlight = (): number => this.inFlightNow
    new Gauge({ name: 'certbound_http_requests_in_flight', help: 'Requests being handled (WebSocket tunnels included)', registers, collect () { this.set(inFlight()) } })
    this.suppressedErrors = new Counter({ name: 'certbound_suppressed_errors_total', help: 'Failures that could not change an answer (a plugin\'s log phase, a close, a final write), each also logged', labelNames: ['where'], registers })
    this.storeLatency = new Histogram({ name: 'certbound_store_command_duration_seconds', help: 'Round trips to the shared store (gateway.store), by backend and operation', labelNames: ['backend', 'op'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers })
    this.storeErrors = new Counter({ name: 'certbound_store_errors_total', help: 'Failed store commands (unreachable, timed out), by backend and operation', labelNames: ['backend', 'op'], registers })
    this.revocation = new RevocationMetrics(this.registry)
    this.tokenCache = new TokenCacheMetrics(this.registry)
    this.upstreamHolds = new ConnectHoldMetrics(this.registry)
    if (opts.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'certbound_' })
  }

  command (backend: string, op: string, seconds: number, ok: boolean): void {
    this.storeLatency.observe({ backend, op }, seconds)
    if (!ok) this.storeErrors.inc({ backend, op })
  }

  request (route: string, status: number, seconds: number): void { this.requests.record(route, status, seconds) }

  /** A failure that has no one to answer to (log phase, close, last write): counted here and logged by the caller. */
  suppressed (where: string): void { this.suppressedErrors.inc({ where }) }

  upstreamError (service: string, kind: string): void { this.upstreamErrors.inc({ service, kind }) }
  handshake (listener: string): void { this.handshakes.inc({ listener }) }
  certFailure (listener: string, reason: string): void {
    this.certFailures.inc({ listener, reason })
    // a connection reset is not a refusal of the client
    if (reason !== 'reset') this.dashboard.refusal(TLS_REFUSAL_PREFIX + reason.toUpperCase())
  }
  handshakesInProgress (listener: string, n: number): void { this.handshakesPending.set({ listener }, n) }
  /** certbound_log_lines_dropped_total, read from the log destination at scrape time. */
  trackLogDrops (read: () => number): void {
    new Counter({
      name: 'certbound_log_lines_dropped_total',
      help: 'Log lines dropped because stdout was read more slowly than written (gateway.access_log_buffer)',
      registers: [this.registry],
      collect () { this.reset(); this.inc(read()) },
    })
  }

  handshakeRefused (listener: string, reason: 'timeout' | 'too_many_in_progress' | 'too_many_from_address'): void { this.handshakesRefused.inc({ listener, reason }) }
}
