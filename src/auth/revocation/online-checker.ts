import type { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import { LRUCache } from 'lru-cache'
import type { HttpClient } from '../../http-client/types.js'
import type { StateStore } from '../../store/types.js'
import { normalizeSerial } from '../crl.js'
import type { FetchedCrl } from './distribution-point-crl.js'
import { CrlFetchError, OcspError } from './errors.js'
import { revocationCodecs } from './lazy-codecs.js'
import type { RevocationMetrics } from './metrics.js'

/**
 * Online revocation checking of a client certificate: OCSP at the responder of its Authority Information Access
 * first; CRL Distribution Points when it names no responder or the responder gives no verified good/revoked
 * answer. Answers are cached (bounded, never past the OCSP nextUpdate / CRL nextUpdate nor `cacheTtlMs`), and
 * concurrent checks of one certificate share one request (single flight). The caches live in a
 * {@link RevocationState} that the gateway keeps across reloads (PluginDeps.stash).
 */

export type RevocationMode = 'SKIP' | 'IGNORE_CA_ERROR' | 'STRICT'

/**
 * good / revoked: a verified answer. unknown: the responder does not know the certificate, or the certificate
 * publishes no OCSP responder or CRL. error: no verified answer could be had (unreachable, timeout, HTTP error,
 * malformed, bad signature, expired).
 */
export type OnlineStatus = 'good' | 'revoked' | 'unknown' | 'error'

export interface OnlineResult {
  readonly status: OnlineStatus
  readonly source: 'ocsp' | 'crl' | 'none'
  readonly detail: string
  /** Epoch ms until which this result may be reused. */
  readonly until: number
}

/** Kept for the gateway's life: answers and downloaded CRLs, so a reload starts warm. */
export class RevocationState {
  readonly answers = new LRUCache<string, OnlineResult>({ max: 10_000 })
  readonly crls = new LRUCache<string, FetchedCrl & { refreshAt: number, issuer: X509Certificate }>({ max: 256 })
  readonly inflight = new Map<string, Promise<OnlineResult>>()
  readonly crlInflight = new Map<string, Promise<FetchedCrl>>()
}

/** The stash key of the gateway-wide state (answers depend only on the certificate and its issuer). */
export const REVOCATION_STATE_KEY = 'certbound.revocation.state'

export function revocationState (stash: Map<string, unknown> | undefined): RevocationState {
  const s = stash?.get(REVOCATION_STATE_KEY)
  if (s instanceof RevocationState) return s
  const fresh = new RevocationState()
  stash?.set(REVOCATION_STATE_KEY, fresh)
  return fresh
}

export interface OnlineCheckerOptions {
  readonly http: HttpClient
  readonly now: () => number
  /** Kong http_timeout: one OCSP or CRL exchange, ms. */
  readonly httpTimeoutMs: number
  /** Kong cert_cache_ttl: longest reuse of an answer, ms. */
  readonly cacheTtlMs: number
  /** Forward proxies for http:// and https:// URLs (Kong http_proxy_* / https_proxy_*). */
  readonly httpProxy?: string
  readonly httpsProxy?: string
  readonly state: RevocationState
  /**
   * The shared store (deps.store): answers are published there too, so the other workers and nodes reuse them
   * instead of each asking the responder. Optional; a store that fails is skipped, never a reason to refuse.
   */
  readonly store?: StateStore
  readonly metrics?: RevocationMetrics
  readonly logger?: Logger
}

/** Store keys: certificate fingerprints (public), never anything secret. */
const STORE_PREFIX = 'revocation:answer:'
/** How long a lookup in the shared store may take before the responder is asked directly. */
const STORE_WAIT_MS = 250
/** An error answer is retried after this long at most, so a responder that is down is not asked per handshake. */
const ERROR_RETRY_MS = 30_000
const MAX_OCSP_RESPONSE_BYTES = 256 * 1024
const MAX_CRL_BYTES = 16 * 1024 * 1024

export class OnlineRevocationChecker {
  constructor (private readonly o: OnlineCheckerOptions) {}

  /** The status of `leaf`, issued by `issuer`. Never rejects. */
  check (leaf: X509Certificate, issuer: X509Certificate): Promise<OnlineResult> {
    const key = `${leaf.fingerprint256}|${issuer.fingerprint256}`
    const now = this.o.now()
    const cached = this.o.state.answers.get(key)
    if (cached !== undefined && now < cached.until) {
      this.o.metrics?.cacheHit('answer')
      return Promise.resolve(cached)
    }
    let p = this.o.state.inflight.get(key)
    if (p === undefined) {
      p = this.shared(key).then(async (known) => {
        if (known !== undefined) {
          this.o.metrics?.cacheHit('answer')
          this.o.state.answers.set(key, known)
          return known
        }
        const r = await this.lookup(leaf, issuer).catch((err: unknown): OnlineResult =>
          ({ status: 'error', source: 'none', detail: `revocation check failed: ${(err as Error).message}`, until: this.o.now() + this.errorRetry() }))
        this.o.state.answers.set(key, r)
        this.o.metrics?.check(r.source, r.status)
        void this.publish(key, r)
        return r
      })
        .finally(() => { this.o.state.inflight.delete(key) })
      this.o.state.inflight.set(key, p)
    }
    return p
  }

  /** An answer another worker or node published, still current; undefined otherwise (or if the store fails). */
  private async shared (key: string): Promise<OnlineResult | undefined> {
    if (this.o.store === undefined) return undefined
    try {
      // bounded: a shared store that does not answer must not hold a handshake (it is only a cache)
      const timer: { t?: NodeJS.Timeout } = {}
      const v = await Promise.race([
        this.o.store.get(STORE_PREFIX + key),
        new Promise<undefined>((resolve) => { timer.t = setTimeout(() => resolve(undefined), STORE_WAIT_MS); timer.t.unref() }),
      ]).finally(() => clearTimeout(timer.t))
      if (v === undefined) return undefined
      const r = JSON.parse(v) as OnlineResult
      const statuses: readonly string[] = ['good', 'revoked', 'unknown', 'error']
      return statuses.includes(r.status) && typeof r.until === 'number' && this.o.now() < r.until ? r : undefined
    } catch {
      return undefined
    }
  }

  private async publish (key: string, r: OnlineResult): Promise<void> {
    const ttl = r.until - this.o.now()
    if (this.o.store === undefined || !(ttl > 0) || !Number.isFinite(ttl)) return
    try {
      await this.o.store.set(STORE_PREFIX + key, JSON.stringify(r), ttl)
    } catch (err) {
      this.o.logger?.debug({ err: (err as Error).message }, 'revocation answer not shared: the store failed')
    }
  }

  private errorRetry (): number { return Math.min(this.o.cacheTtlMs, ERROR_RETRY_MS) }

  private async lookup (leaf: X509Certificate, issuer: X509Certificate): Promise<OnlineResult> {
    const urls = (await revocationCodecs()).revocationUrls(leaf.raw)
    let first: OnlineResult | undefined
    for (const url of urls.ocsp.slice(0, 2)) {
      const r = await this.ocsp(url, leaf, issuer)
      if (r.status === 'good' || r.status === 'revoked') return r
      first ??= r
    }
    for (const url of urls.crl.slice(0, 2)) {
      const r = await this.crl(url, leaf, issuer)
      if (r.status === 'good' || r.status === 'revoked') return r
      first ??= r
    }
    return first ?? { status: 'unknown', source: 'none', detail: 'the certificate names no OCSP responder and no CRL distribution point', until: this.o.now() + this.o.cacheTtlMs }
  }

  private proxyFor (url: string): string | undefined {
    return url.startsWith('https:') ? this.o.httpsProxy : this.o.httpProxy
  }

  private async ocsp (url: string, leaf: X509Certificate, issuer: X509Certificate): Promise<OnlineResult> {
    const { buildOcspRequest, parseOcspResponse } = await revocationCodecs()
    const req = buildOcspRequest(leaf, issuer)
    const started = performance.now()
    const fail = (detail: string): OnlineResult => {
      this.o.metrics?.responder('ocsp', 'error', (performance.now() - started) / 1000)
      return { status: 'error', source: 'ocsp', detail: `OCSP ${url}: ${detail}`, until: this.o.now() + this.errorRetry() }
    }
    let body: Buffer
    try {
      // RFC 6960 Appendix A.1: POST with application/ocsp-request
      const res = await this.o.http.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body: req.der,
        timeoutMs: this.o.httpTimeoutMs,
        maxResponseBytes: MAX_OCSP_RESPONSE_BYTES,
        proxy: this.proxyFor(url),
      })
      if (res.status !== 200) return fail(`HTTP ${res.status}`)
      body = res.body
    } catch (err) {
      return fail(`unreachable: ${(err as Error).message}`)
    }
    const now = this.o.now()
    try {
      const a = parseOcspResponse(body, req.certId, issuer, now)
      this.o.metrics?.responder('ocsp', 'ok', (performance.now() - started) / 1000)
      const until = Math.min(now + this.o.cacheTtlMs, a.nextUpdate ?? Number.POSITIVE_INFINITY)
      const detail = a.status === 'revoked'
        ? `OCSP ${url}: revoked at ${new Date(a.revocationTime ?? a.thisUpdate).toISOString()} (signed by ${a.signer})`
        : `OCSP ${url}: ${a.status} (signed by ${a.signer})`
      return { status: a.status, source: 'ocsp', detail, until: a.status === 'unknown' ? Math.min(until, now + this.errorRetry()) : until }
    } catch (err) {
      if (err instanceof OcspError) return fail(`${err.kind}: ${err.message}`)
      return fail(`malformed: ${(err as Error).message}`)
    }
  }

  private async crl (url: string, leaf: X509Certificate, issuer: X509Certificate): Promise<OnlineResult> {
    const now = this.o.now()
    const key = `${url}|${issuer.fingerprint256}`
    let crl = this.o.state.crls.get(key)
    if (crl !== undefined && now <= crl.nextUpdate) {
      this.o.metrics?.cacheHit('crl')
      // refreshed ahead of nextUpdate, in the background; the current one answers meanwhile
      if (now >= crl.refreshAt) void this.fetchCrl(url, key, issuer).catch(() => undefined)
    } else {
      try {
        crl = { ...await this.fetchCrl(url, key, issuer), refreshAt: 0, issuer }
      } catch (err) {
        return { status: 'error', source: 'crl', detail: `CRL ${url}: ${(err as Error).message}`, until: this.o.now() + this.errorRetry() }
      }
    }
    const until = Math.min(now + this.o.cacheTtlMs, crl.nextUpdate)
    if (crl.revoked.has(normalizeSerial(leaf.serialNumber))) return { status: 'revoked', source: 'crl', detail: `CRL ${url}: serial ${leaf.serialNumber} is revoked`, until }
    return { status: 'good', source: 'crl', detail: `CRL ${url}: not listed`, until }
  }

  /**
   * Re-fetch every cached CRL past its refresh point, so that a new one is in place before the old one's nextUpdate
   * even when no certificate needs it meanwhile. Called on a timer by the instance (start/close).
   */
  refreshDue (): Promise<void> {
    const now = this.o.now()
    const due = [...this.o.state.crls.entries()].filter(([, c]) => now >= c.refreshAt)
    return Promise.allSettled(due.map(([key, c]) => this.fetchCrl(c.url, key, c.issuer))).then(() => undefined)
  }

  /** Download, verify and cache the CRL at `url` (single flight per URL and issuer). */
  private fetchCrl (url: string, key: string, issuer: X509Certificate): Promise<FetchedCrl> {
    let p = this.o.state.crlInflight.get(key)
    if (p !== undefined) return p
    p = (async () => {
      const started = performance.now()
      try {
        const res = await this.o.http.request(url, { timeoutMs: this.o.httpTimeoutMs, maxResponseBytes: MAX_CRL_BYTES, proxy: this.proxyFor(url) })
        if (res.status !== 200) throw new CrlFetchError('malformed', `HTTP ${res.status}`)
        const now = this.o.now()
        const crl = await (await revocationCodecs()).acceptCrl(url, res.body, issuer, now)
        // re-fetch after cert_cache_ttl (a new revocation shows up within it), and in any case in the last tenth
        // of the CRL's life, so a new CRL is in place before this one expires
        const refreshAt = Math.min(now + this.o.cacheTtlMs, crl.nextUpdate - (crl.nextUpdate - crl.thisUpdate) / 10)
        this.o.state.crls.set(key, { ...crl, refreshAt, issuer })
        this.o.metrics?.responder('crl', 'ok', (performance.now() - started) / 1000)
        return crl
      } catch (err) {
        this.o.metrics?.responder('crl', 'error', (performance.now() - started) / 1000)
        this.o.logger?.warn({ url, err: (err as Error).message }, 'CRL download failed')
        throw err
      }
    })().finally(() => { this.o.state.crlInflight.delete(key) })
    this.o.state.crlInflight.set(key, p)
    return p
  }
}

/** Whether `mode` lets a certificate with this result through (issue 18 / Kong revocation_check_mode). */
export function admits (mode: RevocationMode, status: OnlineStatus): boolean {
  if (mode === 'SKIP') return true
  if (status === 'revoked') return false
  return mode === 'IGNORE_CA_ERROR' || status === 'good'
}
