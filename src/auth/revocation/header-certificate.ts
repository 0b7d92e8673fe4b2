import { readFileSync } from 'node:fs'
import type { X509Certificate } from 'node:crypto'
import { z } from 'zod'
import { GatewayError } from '../../errors/index.js'
import { PluginConfigError, type PluginDeps } from '../../pipeline/types.js'
import type { PeerCertificate } from '../../server/peer.js'
import { parsePemCertificates } from '../verify-chain.js'
import { issuerIn } from './issuer.js'
import { admits, OnlineRevocationChecker, revocationState, type RevocationMode } from './online-checker.js'

/**
 * Revocation of a client certificate that a trusted TLS terminator forwarded in a header (`certificate_header`
 * from `trusted_ips`), for the token plugins that bind tokens to it (RFC 8705 §3). The terminator verified the
 * chain; whether it checked revocation is unknown (Envoy does not do OCSP for client certificates), so the
 * certificate is checked here like mtls-auth checks a TLS session's: OCSP at its AIA responder, CRL distribution
 * points as the fallback, under the same three modes. Once per certificate, cached.
 */

/** Schema keys shared by token-introspection and openid-connect. */
export const headerRevocationKeys = {
  certificate_header_revocation_check_mode: z.enum(['SKIP', 'IGNORE_CA_ERROR', 'STRICT']).default('SKIP')
    .describe('(certbound) Revocation check of a certificate received in certificate_header (OCSP, then CRL distribution points), as mtls-auth\'s ' +
      'revocation_check_mode. Default SKIP: the TLS terminator is trusted to have checked. Needs certificate_header_ca_certificates'),
  certificate_header_ca_certificates: z.array(z.string().min(1)).min(1).optional()
    .describe('(certbound) PEM files (relative to the config file) of the CAs that issue the certificates received in certificate_header: ' +
      'OCSP responses and CRLs are verified against the issuing CA'),
}

export interface HeaderRevocationConfig {
  readonly certificate_header_revocation_check_mode: RevocationMode
  readonly certificate_header_ca_certificates?: readonly string[]
}

/** One OCSP request or CRL download, at most (ms). */
const HTTP_TIMEOUT_MS = 10_000
/** Longest reuse of an answer (ms), never past its nextUpdate. */
const CACHE_TTL_MS = 60_000

interface Verdict { readonly refused: string | undefined, readonly until: number }

/**
 * Check a header certificate: returns a GatewayError (CB_ERR_CERT_INVALID) to throw, or undefined; a promise only
 * when the certificate's status is not cached yet.
 */
export type HeaderRevocationCheck = (cert: PeerCertificate) => GatewayError | undefined | Promise<GatewayError | undefined>

function loadAnchors (files: readonly string[], deps: PluginDeps): X509Certificate[] {
  return files.flatMap((f, i) => {
    const path = ['certificate_header_ca_certificates', i]
    let text: string
    try {
      text = readFileSync(deps.resolvePath(f), 'utf8')
    } catch (err) {
      throw new PluginConfigError(path, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (paths are resolved relative to the config file)`, 'CB_CFG_FILE')
    }
    let certs: X509Certificate[]
    try {
      certs = parsePemCertificates(text)
    } catch (err) {
      throw new PluginConfigError(path, `${f} holds a malformed certificate: ${(err as Error).message}`)
    }
    if (certs.length === 0) throw new PluginConfigError(path, `${f} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`)
    return certs
  })
}

/** The check for a plugin's config, or undefined (SKIP, or no certificate_header). Throws PluginConfigError. */
export function createHeaderRevocationCheck (config: HeaderRevocationConfig, header: string | undefined, deps: PluginDeps): HeaderRevocationCheck | undefined {
  const mode = config.certificate_header_revocation_check_mode
  if (mode === 'SKIP') return undefined
  if (header === undefined) throw new PluginConfigError(['certificate_header_revocation_check_mode'], `${mode} applies to certificates received in certificate_header, and none is configured`)
  const files = config.certificate_header_ca_certificates
  if (files === undefined) throw new PluginConfigError(['certificate_header_ca_certificates'], `is required with certificate_header_revocation_check_mode ${mode}: answers are verified against the issuing CA`)
  const anchors = loadAnchors(files, deps)
  const now = deps.now
  const checker = new OnlineRevocationChecker({
    http: deps.http, now, httpTimeoutMs: HTTP_TIMEOUT_MS, cacheTtlMs: CACHE_TTL_MS,
    state: revocationState(deps.stash), store: deps.store, metrics: deps.revocationMetrics, logger: deps.logger,
  })
  // cert-source keeps one PeerCertificate per header value, so this is once per certificate
  const verdicts = new WeakMap<PeerCertificate, Verdict | Promise<Verdict>>()
  const toError = (v: Verdict): GatewayError | undefined =>
    v.refused === undefined ? undefined : new GatewayError('CB_ERR_CERT_INVALID', { detail: `certificate from ${header}: ${v.refused}` })

  async function decide (cert: PeerCertificate): Promise<Verdict> {
    const issuer = issuerIn([...cert.chain, ...anchors], cert.x509)
    const r = issuer === undefined
      ? { status: 'error' as const, source: 'none' as const, detail: 'not issued by a certificate in certificate_header_ca_certificates', until: now() + CACHE_TTL_MS }
      : await checker.check(cert.x509, issuer)
    if (!admits(mode, r.status)) return { refused: `${r.status === 'revoked' ? 'revoked' : 'revocation_unknown'}: ${r.detail}`, until: Math.min(r.until, now() + CACHE_TTL_MS) }
    if (r.status !== 'good') deps.logger.warn({ where: deps.where, subject: cert.subject, status: r.status, detail: r.detail }, 'forwarded client certificate revocation status unavailable; allowed by IGNORE_CA_ERROR')
    return { refused: undefined, until: r.until }
  }

  return function checkHeaderCertificate (cert) {
    const v = verdicts.get(cert)
    if (v !== undefined && !(v instanceof Promise) && now() <= v.until) return toError(v)
    if (v instanceof Promise) return v.then(toError)
    const p = decide(cert)
    verdicts.set(cert, p)
    p.then((done) => { if (verdicts.get(cert) === p) verdicts.set(cert, done) }, () => { verdicts.delete(cert) })
    return p.then(toError)
  }
}
