import { Counter, Histogram, type Registry } from 'prom-client'

/**
 * Revocation-check metrics (issue 18): checks by source and result, responder latency, cache hits. Created once
 * per gateway on its registry (GatewayMetrics.revocation) and handed to plugins and the authorization server.
 */
export class RevocationMetrics {
  private readonly checks: Counter<'source' | 'result'>
  private readonly latency: Histogram<'source' | 'outcome'>
  private readonly hits: Counter<'kind'>

  constructor (registry: Registry) {
    const registers = [registry]
    this.checks = new Counter({ name: 'certbound_revocation_checks_total', help: 'Client certificate revocation checks by source (ocsp, crl, crl_file, none) and result (good, revoked, unknown, error)', labelNames: ['source', 'result'], registers })
    this.latency = new Histogram({ name: 'certbound_revocation_responder_seconds', help: 'OCSP responder and CRL distribution point latency by source and outcome (ok, error)', labelNames: ['source', 'outcome'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers })
    this.hits = new Counter({ name: 'certbound_revocation_cache_hits_total', help: 'Revocation answers served from cache, by kind (answer: a certificate\'s status; crl: a downloaded CRL)', labelNames: ['kind'], registers })
  }

  check (source: string, result: string): void { this.checks.inc({ source, result }) }
  responder (source: string, outcome: 'ok' | 'error', seconds: number): void { this.latency.observe({ source, outcome }, seconds) }
  cacheHit (kind: 'answer' | 'crl'): void { this.hits.inc({ kind }) }
}
