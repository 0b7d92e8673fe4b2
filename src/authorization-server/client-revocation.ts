import type { Logger } from 'pino'
import type { X509Certificate } from 'node:crypto'
import type { HttpClient } from '../http-client/types.js'
import type { RevocationMetrics } from '../auth/revocation/metrics.js'
import { admits, OnlineRevocationChecker, revocationState, type RevocationMode } from '../auth/revocation/online-checker.js'
import { issuerIn } from '../auth/revocation/issuer.js'
import type { PeerCertificate } from '../server/peer.js'
import type { StateStore } from '../store/types.js'

/**
 * tls_client_auth certificates checked for revocation like mtls-auth's (issue 18): OCSP at the certificate's AIA
 * responder, CRL distribution points as the fallback, under `revocation_check_mode`. Answers come from the
 * gateway-wide cache (PluginDeps.stash), so a client's token requests cost one check per cert_cache_ttl.
 */
export type ClientRevocationCheck = (cert: PeerCertificate, chain: readonly X509Certificate[]) => Promise<string | undefined>

export interface ClientRevocationOptions {
  readonly mode: RevocationMode
  readonly httpTimeoutMs: number
  readonly cacheTtlMs: number
  readonly http: HttpClient
  readonly now?: () => number
  readonly stash?: Map<string, unknown>
  readonly store?: StateStore
  readonly metrics?: RevocationMetrics
  readonly logger: Logger
}

/** Undefined = ok; else why the certificate is refused (for the log). Undefined function with mode SKIP. */
export function clientRevocationCheck (o: ClientRevocationOptions): ClientRevocationCheck | undefined {
  if (o.mode === 'SKIP') return undefined
  const checker = new OnlineRevocationChecker({
    http: o.http,
    now: o.now ?? Date.now,
    httpTimeoutMs: o.httpTimeoutMs,
    cacheTtlMs: o.cacheTtlMs,
    state: revocationState(o.stash),
    store: o.store,
    metrics: o.metrics,
    logger: o.logger,
  })
  return async function checkClientRevocation (cert, chain) {
    const issuer = issuerIn(chain, cert.x509)
    const r = issuer === undefined
      ? { status: 'error' as const, source: 'none' as const, detail: 'the issuer certificate is not known' }
      : await checker.check(cert.x509, issuer)
    if (!admits(o.mode, r.status)) return `${r.status === 'revoked' ? 'revoked' : 'revocation_unknown'}: ${r.detail}`
    if (r.status !== 'good' && !(r.source === 'none' && r.status === 'unknown')) {
      o.logger.warn({ subject: cert.subject, serial: cert.serialNumber, status: r.status, detail: r.detail }, 'client certificate revocation status unavailable; allowed by revocation_check_mode IGNORE_CA_ERROR')
    }
    return undefined
  }
}
