import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { StoreObserver } from '../store/types.js'
import { RouteRequestMetrics } from './route-metrics.js'

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
  readonly reloads: Counter<'result'>
  readonly inflight: Gauge
  private readonly storeLatency: Histogram<'backend' | 'op'>
  private readonly storeErrors: Counter<'backend' | 'op'>

  constructor (opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry]
    this.requests = new RouteRequestMetrics(this.registry, [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    this.upstreamErrors = new Counter({ name: 'certbound_upstream_errors_total', help: 'Upstream failures by service and kind', labelNames: ['service', 'kind'], registers })
    this.handshakes = new Counter({ name: 'certbound_tls_handshakes_total', help: 'Completed TLS handshakes by listener', labelNames: ['listener'], registers })
    this.certFailures = new Counter({ name: 'certbound_tls_client_cert_failures_total', help: 'Handshakes failed or client certificates refused, by reason', labelNames: ['listener', 'reason'], registers })
    this.reloads = new Counter({ name: 'certbound_config_reloads_total', help: 'Config reloads by result', labelNames: ['result'], registers })
    this.inflight = new Gauge({ name: 'certbound_http_requests_in_flight', help: 'Requests being handled', registers })
    this.storeLatency = new Histogram({ name: 'certbound_store_command_duration_seconds', help: 'Round trips to the shared store (gateway.store), by backend and operation', labelNames: ['backend', 'op'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers })
    this.storeErrors = new Counter({ name: 'certbound_store_errors_total', help: 'Failed store commands (unreachable, timed out), by backend and operation', labelNames: ['backend', 'op'], registers })
    if (opts.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'certbound_' })
  }

  command (backend: string, op: string, seconds: number, ok: boolean): void {
    this.storeLatency.observe({ backend, op }, seconds)
    if (!ok) this.storeErrors.inc({ backend, op })
  }

  request (route: string, status: number, seconds: number): void { this.requests.record(route, status, seconds) }

  upstreamError (service: string, kind: string): void { this.upstreamErrors.inc({ service, kind }) }
  handshake (listener: string): void { this.handshakes.inc({ listener }) }
  certFailure (listener: string, reason: string): void { this.certFailures.inc({ listener, reason }) }
}
