import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey, type CompactJWSHeaderParameters, type FlattenedJWSInput } from 'jose'
import type { Logger } from 'pino'
import {
  localIssuerKey, GatewayError, type HttpClient, type HttpTlsOptions, type LocalServices, type LocalIssuer, type ServiceKey,
} from '../../src/plugin-api.js'

type LocalJwks = ReturnType<typeof createLocalJWKSet>

/** Largest discovery document or JWKS accepted from an IdP. */
const MAX_DOCUMENT_BYTES = 512 * 1024
/** After a failed fetch, requests that need the IdP fail fast (503) for this long instead of piling on it. */
const MAX_FAILURE_BACKOFF_MS = 5_000

export interface IdpOptions {
  /** Configured `issuer`: an issuer identifier or a discovery document URL. */
  readonly issuer: string | undefined
  readonly jwksEndpoint: string | undefined
  readonly introspectionEndpoint: string | undefined
  /** bearer is enabled: signing keys are needed. */
  readonly needKeys: boolean
  /** introspection is enabled: an introspection endpoint is needed. */
  readonly needIntrospection: boolean
  /** No issuers_allowed: the expected iss comes from the configuration or discovery. */
  readonly needIssuer: boolean
  readonly http: HttpClient
  readonly local: LocalServices
  readonly timeoutMs: number
  /** Minimum ms between two JWKS fetches (Kong's rediscovery_lifetime). */
  readonly cooldownMs: number
  /** Age in ms after which the JWKS is refreshed in the background. */
  readonly keysTtlMs: number
  readonly tls: HttpTlsOptions | undefined
  readonly log: Logger
  /** PluginDeps.stash: what was loaded survives a config reload (the next instance starts ready). */
  readonly stash?: Map<string, unknown>
  /** The gateway's clock (deps.now): key age and failure backoff are measured on it, so tests move it. */
  readonly now: () => number
}

/** What an IdpState hands on to the instance that replaces it on reload: public data only. */
interface IdpSnapshot {
  readonly metadata: Readonly<Record<string, unknown>> | undefined
  readonly expectedIssuer: string | undefined
  readonly jwksUri: string | undefined
  readonly introspectionEndpoint: string | undefined
  readonly jwks: JSONWebKeySet | undefined
  readonly keysAt: number
}

/**
 * What the plugin knows about its authorization server: the discovered metadata, the signing keys and the
 * introspection endpoint, or an in-process {@link LocalIssuer}. Fetches are single-flight; a failed fetch keeps
 * what was known before (the keys are public, serving with the previous set beats failing every request).
 */
export class IdpState {
  /** The issuer tokens must name (discovered, configured, or the local issuer's). */
  expectedIssuer: string | undefined
  introspectionEndpoint: string | undefined
  private metadata: Readonly<Record<string, unknown>> | undefined
  private jwksUri: string | undefined
  private keys: LocalJwks | undefined
  private jwks: JSONWebKeySet | undefined
  private keysFingerprint = ''
  private keysAt = -Infinity
  private lastAttemptAt = -Infinity
  private lastFailureAt = -Infinity
  private lastFailure = ''
  private inflight: Promise<void> | undefined = undefined
  private loadedOnce = false
  private closed = false
  private readonly failureBackoffMs: number
  private readonly configuredIssuer: string | undefined
  private readonly discoveryUrls: readonly string[]
  private readonly localKey: ServiceKey<LocalIssuer> | undefined
  private readonly stashKey: string
  /** Bound once: jose calls it for every verification (no closure per request). */
  readonly getKey: JWTVerifyGetKey

  constructor (private readonly o: IdpOptions) {
    this.failureBackoffMs = Math.min(o.cooldownMs, MAX_FAILURE_BACKOFF_MS)
    const isDiscoveryUrl = o.issuer !== undefined && new URL(o.issuer).pathname.includes('/.well-known/')
    this.configuredIssuer = isDiscoveryUrl ? undefined : o.issuer
    this.discoveryUrls = o.issuer === undefined ? [] : discoveryUrls(o.issuer, isDiscoveryUrl)
    const identifier = o.issuer === undefined ? undefined : (isDiscoveryUrl ? o.issuer.slice(0, o.issuer.indexOf('/.well-known/')) : o.issuer)
    this.localKey = identifier === undefined ? undefined : localIssuerKey(identifier)
    this.expectedIssuer = this.configuredIssuer
    this.jwksUri = o.jwksEndpoint
    this.introspectionEndpoint = o.introspectionEndpoint
    this.getKey = this.resolveKey.bind(this)
    // every setting that decides what is fetched, and from where, and how it is trusted
    this.stashKey = `openid-connect:idp:${JSON.stringify([o.issuer, o.jwksEndpoint, o.introspectionEndpoint, o.needKeys, o.needIntrospection, o.needIssuer, o.tls?.rejectUnauthorized !== false])}`
    const kept = o.stash?.get(this.stashKey) as IdpSnapshot | undefined
    if (kept !== undefined) this.restore(kept)
  }

  /** Start from what the instance this one replaces had loaded; a later fetch replaces it as usual. */
  private restore (s: IdpSnapshot): void {
    this.metadata = s.metadata
    this.expectedIssuer = this.configuredIssuer ?? s.expectedIssuer
    this.jwksUri = this.o.jwksEndpoint ?? s.jwksUri
    this.introspectionEndpoint = this.o.introspectionEndpoint ?? s.introspectionEndpoint
    if (s.jwks !== undefined) {
      this.setKeys(s.jwks)
      this.keysAt = s.keysAt
    }
    this.loadedOnce = true
  }

  /** The in-process issuer, when the configured issuer is served by this gateway. */
  localIssuer (): LocalIssuer | undefined {
    return this.localKey === undefined ? undefined : this.o.local.get(this.localKey)
  }

  /** True once everything the plugin needs has been loaded at least once (readiness). */
  get ready (): boolean {
    return this.loadedOnce || this.complete() || this.localIssuer() !== undefined
  }

  /**
   * Make sure metadata and keys are loaded. Returns undefined when nothing has to be awaited (the hot path),
   * otherwise a promise that rejects with CB_ERR_IDP_UNAVAILABLE when the IdP cannot be reached.
   */
  ensure (): Promise<void> | undefined {
    const local = this.localIssuer()
    if (local !== undefined) { this.useLocal(local, false); return undefined }
    if (this.complete()) {
      if (this.o.needKeys && this.o.now() - this.keysAt > this.o.keysTtlMs) this.refreshInBackground()
      return undefined
    }
    if (this.inflight !== undefined) return this.inflight
    if (this.o.now() - this.lastFailureAt < this.failureBackoffMs) return Promise.reject(this.unavailable())
    return this.refresh()
  }

  /** Load (or reload) metadata and keys, single flight. Rejects with CB_ERR_IDP_UNAVAILABLE. */
  refresh (): Promise<void> {
    if (this.inflight !== undefined) return this.inflight
    const p = this.load().then(
      () => { this.inflight = undefined },
      (err: unknown) => {
        this.inflight = undefined
        this.lastFailureAt = this.o.now()
        this.lastFailure = err instanceof Error ? err.message : String(err)
        throw this.unavailable()
      },
    )
    this.inflight = p
    return p
  }

  close (): void { this.closed = true }

  private complete (): boolean {
    return (!this.o.needKeys || this.keys !== undefined) &&
      (!this.o.needIntrospection || this.introspectionEndpoint !== undefined) &&
      (!this.o.needIssuer || this.expectedIssuer !== undefined)
  }

  private refreshInBackground (): void {
    if (this.inflight !== undefined || this.closed) return
    const now = this.o.now()
    if (now - this.lastAttemptAt < this.o.cooldownMs || now - this.lastFailureAt < this.failureBackoffMs) return
    this.refresh().catch(() => {
      this.o.log.warn({ err: this.lastFailure }, 'openid-connect: JWKS refresh failed; the previous keys keep serving')
    })
  }

  private unavailable (): GatewayError {
    const retryAfter = Math.max(1, Math.ceil(this.failureBackoffMs / 1000))
    return new GatewayError('CB_ERR_IDP_UNAVAILABLE', {
      detail: `authorization server unreachable: ${this.lastFailure}`,
      headers: { 'retry-after': String(retryAfter) },
    })
  }

  private async load (): Promise<void> {
    if (this.closed) throw new Error('plugin closed')
    const local = this.localIssuer()
    if (local !== undefined) { this.useLocal(local, true); return }
    this.lastAttemptAt = this.o.now()
    const needMetadata = (this.o.needIssuer && this.expectedIssuer === undefined) ||
      (this.o.needKeys && this.jwksUri === undefined) ||
      (this.o.needIntrospection && this.introspectionEndpoint === undefined)
    if (needMetadata && this.metadata === undefined && this.discoveryUrls.length > 0) await this.discover()
    if (this.o.needKeys) {
      if (this.jwksUri === undefined) throw new Error('the discovery document has no jwks_uri and jwks_endpoint is not configured')
      await this.fetchKeys(this.jwksUri)
    }
    if (this.o.needIntrospection && this.introspectionEndpoint === undefined) {
      throw new Error('the discovery document has no introspection_endpoint and introspection_endpoint is not configured')
    }
    this.loadedOnce = true
    this.o.stash?.set(this.stashKey, Object.freeze({
      metadata: this.metadata, expectedIssuer: this.expectedIssuer, jwksUri: this.jwksUri,
      introspectionEndpoint: this.introspectionEndpoint, jwks: this.jwks, keysAt: this.keysAt,
    }) satisfies IdpSnapshot)
  }

  /** OpenID Connect Discovery 1.0 §4, then RFC 8414 §3; the first document that answers 200 wins. */
  private async discover (): Promise<void> {
    const failures: string[] = []
    for (const url of this.discoveryUrls) {
      const res = await this.o.http.request(url, this.getOptions())
      if (res.status !== 200) { failures.push(`${url}: HTTP ${res.status}`); if (res.status >= 500) break; continue }
      const doc = parseJsonObject(res.body, url)
      const iss = doc.issuer
      if (typeof iss !== 'string' || iss === '') throw new Error(`${url}: the discovery document has no issuer`)
      // OIDC Discovery §4.3 / RFC 8414 §3.3: the document must name the issuer it was fetched for
      if (this.configuredIssuer !== undefined && stripSlash(iss) !== stripSlash(this.configuredIssuer)) {
        throw new Error(`${url}: the discovery document names issuer "${iss}", not "${this.configuredIssuer}"`)
      }
      this.metadata = doc
      this.expectedIssuer = iss
      if (this.jwksUri === undefined && typeof doc.jwks_uri === 'string') this.jwksUri = doc.jwks_uri
      if (this.introspectionEndpoint === undefined && typeof doc.introspection_endpoint === 'string') this.introspectionEndpoint = doc.introspection_endpoint
      return
    }
    throw new Error(`no discovery document: ${failures.join('; ')}`)
  }

  private async fetchKeys (url: string): Promise<void> {
    const res = await this.o.http.request(url, this.getOptions('application/jwk-set+json, application/json'))
    if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`)
    const jwks = parseJsonObject(res.body, url) as unknown as JSONWebKeySet
    this.setKeys(jwks)
  }

  private setKeys (jwks: JSONWebKeySet): void {
    const fingerprint = JSON.stringify(jwks)
    if (this.keys === undefined || fingerprint !== this.keysFingerprint) {
      this.keys = createLocalJWKSet(jwks) // throws JWKSInvalid on a malformed set: the old keys stay
      this.jwks = jwks
      this.keysFingerprint = fingerprint
    }
    this.keysAt = this.o.now()
  }

  private useLocal (local: LocalIssuer, reloadKeys: boolean): void {
    if (this.expectedIssuer === undefined) this.expectedIssuer = local.issuer
    if (this.introspectionEndpoint === undefined) {
      const ep = local.metadata().introspection_endpoint
      this.introspectionEndpoint = typeof ep === 'string' ? ep : 'local'
    }
    if (this.o.needKeys && (reloadKeys || this.keys === undefined)) this.setKeys(local.jwks())
    this.loadedOnce = true
  }

  /**
   * jose's key resolver: the key for the token's kid (the header's jku, x5u, jwk and x5c are never looked at).
   * An unknown kid makes one refetch, at most once per cooldown, so a rotated key is picked up without restart
   * while forged kids cannot make us hammer the IdP.
   */
  private async resolveKey (header: CompactJWSHeaderParameters, token: FlattenedJWSInput): Promise<Awaited<ReturnType<JWTVerifyGetKey>>> {
    const keys = this.keys
    if (keys === undefined) throw new errors.JWKSNoMatchingKey()
    try {
      return await keys(header, token)
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err
      const local = this.localIssuer()
      if (local !== undefined) {
        this.useLocal(local, true)
      } else if (this.inflight !== undefined) {
        await this.inflight // a refetch is already on its way: it may bring this kid
      } else {
        const now = this.o.now()
        // the IdP just failed: an unknown kid cannot be checked, which is "unavailable", not "invalid" — a
        // client told invalid_token would throw a good token away
        if (now - this.lastFailureAt < this.failureBackoffMs) throw this.unavailable()
        if (now - this.lastAttemptAt < this.o.cooldownMs) throw err
        await this.refresh()
      }
      return await this.keys!(header, token)
    }
  }

  private getOptions (accept = 'application/json'): { timeoutMs: number, maxResponseBytes: number, headers: Record<string, string>, tls: HttpTlsOptions | undefined } {
    return { timeoutMs: this.o.timeoutMs, maxResponseBytes: MAX_DOCUMENT_BYTES, headers: { accept }, tls: this.o.tls }
  }
}

function stripSlash (s: string): string { return s.replace(/\/+$/, '') }

/** Where to look for the metadata of `issuer`, in order. */
export function discoveryUrls (issuer: string, isDiscoveryUrl: boolean): string[] {
  if (isDiscoveryUrl) return [issuer]
  const u = new URL(issuer)
  const base = stripSlash(issuer)
  const path = stripSlash(u.pathname)
  return [...new Set([
    base + '/.well-known/openid-configuration',
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path
    u.origin + '/.well-known/oauth-authorization-server' + path,
    base + '/.well-known/oauth-authorization-server',
  ])]
}

function parseJsonObject (body: Buffer, url: string): Record<string, unknown> {
  let v: unknown
  try { v = JSON.parse(body.toString('utf8')) } catch { throw new Error(`${url}: the response is not JSON`) }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${url}: the response is not a JSON object`)
  return v as Record<string, unknown>
}
