import { withConsumerMapping } from './consumer.js'
import type { JWTPayload } from 'jose'
import type { Logger } from 'pino'
import {
  definePlugin, PluginConfigError, GatewayError, insufficientScope, invalidToken, CREDENTIAL_HEADERS,
  claimHeaderValue, credentialFromClaims, credentialHeaders, compileTrustedIps, createCertSource,
  createHeaderRevocationCheck, parseCnf, extractToken, enforceBinding,
  IntrospectionClient, isCompactJws, JwtValidator, VerifiedTokenCache, createDpop, nextNonceResponse,
  assertNotRevokedLocally, SharedTokenTier, type PluginDeps, type PluginInstance, type Credential, type RequestContext,
  type CertSource, type HeaderRevocationCheck, type Confirmation, type PresentedToken, type BindingPolicy,
  type Challenger, type DpopVerifier, type PeerCertificate, type Clock,
} from '../../src/plugin-api.js'
import { openidConnectSchema, type OpenidConnectConfig } from './schema.js'
import { IdpState } from './idp.js'

const NAME = 'openid-connect'
/** Verified tokens remembered per plugin instance. */
const CACHE_MAX = 10_000
/**
 * The cache is keyed by the token's last characters (for a JWT: 192 bits of its signature) and a hit is confirmed
 * by comparing the whole token: hashing a fresh 1 kB string costs microseconds per request, 32 characters do not.
 */
const KEY_CHARS = 32
const BEARER_PREFIX = 'Bearer '
/** Delay bounds of start()'s background retries while the IdP cannot be reached. */
const RETRY_MIN_MS = 1_000
const RETRY_MAX_MS = 30_000

/**
 * What a verified token proves, computed once and reused for every request that presents the same token:
 * only the expiry, the binding to this connection's certificate and the precomputed scope verdict are
 * checked per request.
 */
interface Entry {
  readonly credential: Credential
  /** Upstream headers as a flat [name, value, name, value...] list. */
  readonly headers: readonly string[]
  /** exp + leeway, in ms; Infinity if the token has no exp (introspection only). */
  readonly expMs: number
  /** When to forget the entry (≤ expMs; earlier with cache_ttl_max). */
  readonly cacheUntil: number
  /** The token's confirmation: undefined (unbound), or null (cnf present but malformed). */
  readonly cnf: Confirmation | undefined | null
  readonly scopeOk: boolean
}

function cacheKey (token: string): string {
  return token.length <= KEY_CHARS ? token : token.slice(token.length - KEY_CHARS)
}

function firstOf (v: string | readonly string[] | undefined): string | undefined {
  return v === undefined ? undefined : (typeof v === 'string' ? v : v[0])
}

/** The scopes at a claim path: a space-separated string or a list of strings. */
function scopesAt (claims: Readonly<Record<string, unknown>>, path: readonly string[]): string[] {
  let v: unknown = claims
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return []
    v = (v as Record<string, unknown>)[k]
  }
  if (typeof v === 'string') return v.split(' ').filter(s => s !== '')
  if (Array.isArray(v)) return v.filter((s): s is string => typeof s === 'string' && s !== '')
  return []
}

class OpenidConnect implements PluginInstance {
  readonly identityHeaders: readonly string[]
  readonly providesCredential = true
  readonly requestClientCertificate: boolean
  readonly requireClientCertificate: boolean
  private readonly cache: VerifiedTokenCache<Entry>
  private readonly bearer: boolean
  private readonly introspection: IntrospectionClient | undefined
  private readonly leewayMs: number
  private readonly ttlMaxMs: number | undefined
  /** scopes_required as alternatives of conjunctions (Kong: OR of entries, AND inside one). */
  private readonly scopeAlternatives: ReadonlyArray<readonly string[]> | undefined
  private readonly scopeHint: string
  private readonly scopesClaimIsDefault: boolean
  private readonly jwt: JwtValidator
  private readonly upstreamClaims: ReadonlyArray<readonly [claim: string, header: string]>
  private readonly policy: BindingPolicy
  /** Which schemes `Authorization` may use on this route. */
  private readonly schemes: { readonly header: 'authorization', readonly bearer: boolean, readonly dpop: boolean }
  private retryTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor (
    private readonly c: OpenidConnectConfig,
    private readonly idp: IdpState,
    private readonly logger: Logger,
    introspection: IntrospectionClient | undefined,
    private readonly certSource: CertSource | undefined,
    dpopVerifier: DpopVerifier | undefined,
    private readonly challenger: Challenger,
    private readonly now: Clock,
    /** certificate_header_revocation_check_mode: revocation of a certificate forwarded by a trusted proxy. */
    headerRevocation?: HeaderRevocationCheck,
    /** Introspection answers shared through gateway.store (undefined: per process only). */
    private readonly shared?: SharedTokenTier,
  ) {
    this.requestClientCertificate = c.proof_of_possession_mtls !== 'off'
    this.requireClientCertificate = c.proof_of_possession_mtls === 'strict' && c.proof_of_possession_dpop === 'off'
    this.bearer = c.auth_methods.includes('bearer')
    this.introspection = introspection
    this.cache = new VerifiedTokenCache<Entry>(CACHE_MAX, now)
    this.leewayMs = c.leeway * 1000
    this.ttlMaxMs = c.cache_ttl_max === undefined ? undefined : c.cache_ttl_max * 1000
    this.scopeAlternatives = c.scopes_required?.map(e => Object.freeze(e.split(' ').filter(s => s !== '')))
    this.scopeHint = this.scopeAlternatives?.[0]?.join(' ') ?? ''
    this.scopesClaimIsDefault = c.scopes_claim.length === 1 && c.scopes_claim[0] === 'scope'
    this.jwt = new JwtValidator({
      algorithms: c.algorithms,
      issuer: () => c.issuers_allowed ?? idp.expectedIssuer,
      audience: c.audience_required,
      leewayS: c.leeway,
      accessTokenTyp: typeof c.access_token_typ === 'string' ? [c.access_token_typ] : c.access_token_typ,
      enforceAccessTokenTyp: c.enforce_access_token_typ,
      getKey: idp.getKey,
      now,
    })
    this.upstreamClaims = (c.upstream_headers_claims ?? []).map((claim, i) => [claim, c.upstream_headers_names![i].toLowerCase()] as const)
    const certHeader = c.certificate_header === undefined ? [] : [c.certificate_header.toLowerCase()]
    this.identityHeaders = Object.freeze([...CREDENTIAL_HEADERS, ...this.upstreamClaims.map(u => u[1]), ...certHeader])
    this.policy = Object.freeze({
      mtls: c.proof_of_possession_mtls,
      dpop: c.proof_of_possession_dpop,
      certificate: (ctx: RequestContext) => this.clientCertificate(ctx),
      // a certificate forwarded by a trusted proxy (not mtls-auth's, not the TLS session's): is it revoked?
      certificateRevoked: headerRevocation === undefined
        ? undefined
        : (ctx: RequestContext, cert: PeerCertificate) => ctx.clientCertificate === undefined && cert !== (ctx.tls?.certificate ?? null) ? headerRevocation(cert) : undefined,
      dpopVerifier,
    })
    this.schemes = Object.freeze({ header: 'authorization', bearer: c.proof_of_possession_dpop !== 'strict', dpop: c.proof_of_possession_dpop !== 'off' })
    this.access = challenger.bearerOnly ? this.check.bind(this) : this.checkWithDpop.bind(this)
    this.response = dpopVerifier?.policy.nonces !== undefined ? nextNonceResponse : undefined
  }

  access: (ctx: RequestContext) => void | Promise<void>
  /** With dpop_use_nonce: the next nonce on successful responses (RFC 9449 §9). */
  readonly response: PluginInstance['response']

  /** Hot path: a remembered token costs a map lookup plus the per-connection checks, synchronously. */
  private check (ctx: RequestContext): void | Promise<void> {
    const v = ctx.singleHeader('authorization')
    if (typeof v === 'string' && v.startsWith(BEARER_PREFIX)) {
      // exactly a token that extractToken() once accepted: its RFC 6750 syntax checks need not run again
      const candidate = v.slice(BEARER_PREFIX.length)
      const e = this.cache.get(cacheKey(candidate))
      if (e !== undefined && e.credential.token === candidate) return this.remembered(ctx, e, { scheme: 'bearer', token: candidate })
    }
    const presented = extractToken(ctx, this.schemes)
    const e = this.cache.get(cacheKey(presented.token))
    if (e !== undefined && e.credential.token === presented.token) return this.remembered(ctx, e, presented)
    return this.miss(ctx, presented)
  }

  /** With DPoP on: the proof never goes upstream, and challenges name both schemes (RFC 9449 §7.1). */
  private checkWithDpop (ctx: RequestContext): Promise<void> {
    ctx.removeUpstreamHeader('dpop')
    let r
    try { r = this.check(ctx) } catch (err) { return Promise.reject(this.challenger.rewrite(err, schemeOf(ctx))) }
    return Promise.resolve(r).catch((err: unknown) => { throw this.challenger.rewrite(err, schemeOf(ctx)) })
  }

  private remembered (ctx: RequestContext, e: Entry, presented: PresentedToken): void | Promise<void> {
    const now = this.now()
    if (now < e.cacheUntil) return this.accept(ctx, e, presented)
    // the signature is known good and the token is past exp: no need to verify it again to refuse it
    if (now >= e.expMs) throw invalidToken('token expired', undefined, 'expired')
    this.cache.delete(cacheKey(presented.token))
    return this.miss(ctx, presented)
  }

  ready (): boolean { return this.idp.ready }

  start (): void {
    if (this.idp.ready) return
    let delay = RETRY_MIN_MS
    const attempt = (): void => {
      this.retryTimer = undefined
      if (this.closed) return
      this.idp.refresh().then(
        () => { this.logger.info('openid-connect: issuer metadata and keys loaded') },
        (err: unknown) => {
          if (this.closed) return
          this.logger.warn({ detail: err instanceof GatewayError ? err.detail : String(err), retryInMs: delay }, 'openid-connect: the authorization server is unreachable; requests needing it get 503')
          this.retryTimer = setTimeout(attempt, delay)
          this.retryTimer.unref()
          delay = Math.min(delay * 2, RETRY_MAX_MS)
        },
      )
    }
    attempt()
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    this.idp.close()
    this.cache.clear()
  }

  private async miss (ctx: RequestContext, presented: PresentedToken): Promise<void> {
    // single flight: concurrent requests with one new token verify (or introspect) it once
    const e = await this.cache.singleFlight(presented.token, () => this.validate(presented.token))
    await this.accept(ctx, e, presented)
  }

  /** Per request: the binding to THIS request (RFC 8705 §3 certificate, RFC 9449 §7 proof), then the scope verdict. */
  private accept (ctx: RequestContext, e: Entry, presented: PresentedToken): void | Promise<void> {
    const bound = enforceBinding(ctx, e.cnf, this.policy, presented)
    if (bound !== undefined) return bound.then(() => { this.grant(ctx, e, presented) })
    this.grant(ctx, e, presented)
  }

  private grant (ctx: RequestContext, e: Entry, presented: PresentedToken): void {
    if (!e.scopeOk) throw insufficientScope(this.scopeHint, `token scope "${e.credential.scope}" satisfies none of scopes_required`)
    // per request, cached or not: the built-in AS's revocations hold at once (gateway.store's replica)
    assertNotRevokedLocally(this.idp.localIssuer(), e.credential.claims)
    ctx.credential = e.credential
    const h = e.headers
    for (let i = 0; i < h.length; i += 2) ctx.setUpstreamHeader(h[i], h[i + 1])
    if (presented.scheme === 'dpop') ctx.setUpstreamHeader('x-credential-token-type', 'DPoP')
    if (this.c.hide_credentials) ctx.removeUpstreamHeader('authorization')
  }

  /**
   * The certificate this request is bound to: the one mtls-auth verified (TLS session or trusted header), else
   * this plugin's own certificate_header from trusted_ips, else the TLS session's. Not required to chain to a CA:
   * the handshake proved possession of its key, which is what RFC 8705 §3 binds to.
   */
  private clientCertificate (ctx: RequestContext): { certificate: PeerCertificate | null, reason?: string } {
    const verified = ctx.clientCertificate
    if (verified !== undefined) return { certificate: verified.certificate }
    if (this.certSource !== undefined) return this.certSource.resolve(ctx)
    return { certificate: ctx.tls?.certificate ?? null, reason: ctx.tls === null ? 'the request did not come over TLS' : 'no client certificate in the TLS session' }
  }

  private async validate (token: string): Promise<Entry> {
    const wait = this.idp.ensure()
    if (wait !== undefined) await wait
    let entry: Entry
    if (this.bearer && isCompactJws(token)) entry = this.entry(token, await this.jwt.verify(token))
    else if (this.introspection !== undefined) entry = await this.introspect(token)
    else throw invalidToken('the token is not a JWT (compact JWS) and introspection is not enabled')
    this.cache.set(cacheKey(token), entry, entry.cacheUntil)
    return entry
  }

  private async introspect (token: string): Promise<Entry> {
    // a remote IdP's answer another worker or node got (never the in-process issuer's: its introspection is a local
    // JWT verification, README: Caching); inactive answers are never reused here, as this plugin never caches them
    const shared = this.shared !== undefined && this.idp.localIssuer() === undefined ? this.shared : undefined
    if (shared !== undefined) {
      const known = await shared.get(token)
      if (known !== undefined && known.claims.active === true) {
        // this route's own checks (issuer, audience, exp, typ) on the shared answer, and its own bound
        const e = this.fromIntrospection(token, known.claims, known.at)
        const until = Math.min(e.cacheUntil, known.until)
        if (until > this.now()) return { ...e, cacheUntil: until }
      }
    }
    const claims = await this.introspection!.introspect(token)
    const now = this.now()
    const e = this.fromIntrospection(token, claims, now)
    if (shared !== undefined && e.cacheUntil > now) await shared.set(token, { at: now, until: e.cacheUntil, claims })
    return e
  }

  /** Judge an RFC 7662 answer obtained at `at` (epoch ms): the entry, or invalid_token. */
  private fromIntrospection (token: string, claims: Record<string, unknown>, at: number): Entry {
    if (claims.active !== true) throw invalidToken('introspection: the token is not active', 'CB_ERR_TOKEN_INACTIVE')
    const now = this.now()
    const { exp, nbf, iss, aud } = claims
    if (typeof exp === 'number' && exp * 1000 + this.leewayMs <= now) throw invalidToken('introspection: token expired', 'CB_ERR_TOKEN_INACTIVE', 'expired')
    if (typeof nbf === 'number' && nbf * 1000 - this.leewayMs > now) throw invalidToken('introspection: token not yet valid (nbf)')
    const allowed = this.c.issuers_allowed ?? (this.idp.expectedIssuer === undefined ? undefined : [this.idp.expectedIssuer])
    if (iss !== undefined && allowed !== undefined && (typeof iss !== 'string' || !allowed.includes(iss))) throw invalidToken(`introspection: unexpected iss "${String(iss)}"`)
    const required = this.c.audience_required
    if (required !== undefined) {
      const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []
      if (!required.some(a => auds.includes(a))) throw invalidToken('introspection: aud does not contain a required audience')
    }
    if (claims.token_type === 'refresh_token') throw invalidToken('introspection: a refresh token is not an access token')
    const problem = this.jwt.typProblem(undefined, claims)
    if (problem !== undefined) throw invalidToken('introspection: ' + problem)
    const e = this.entry(token, claims, at)
    // cache an active result until exp (RFC 7662 §4 lets the RS cache); without exp only when capped
    if (!this.c.cache_introspection || (typeof exp !== 'number' && this.ttlMaxMs === undefined)) return { ...e, cacheUntil: 0 }
    return e
  }

  /** The entry for verified `claims`; `at`: when they were obtained (cache_ttl_max counts from then). */
  private entry (token: string, claims: JWTPayload | Record<string, unknown>, at = this.now()): Entry {
    let credential = credentialFromClaims(token, claims, NAME)
    if (!this.scopesClaimIsDefault) {
      const scopes = scopesAt(claims, this.c.scopes_claim)
      credential = { ...credential, scope: scopes.join(' '), scopes: Object.freeze(scopes) }
    }
    Object.freeze(credential)
    // Callista's X-Credential-* mapping and the claim headers, evaluated once per token instead of per request
    const rec = { out: credentialHeaders(credential).flat() }
    for (const [claim, header] of this.upstreamClaims) {
      const v = claimHeaderValue(claims[claim])
      if (v !== undefined && v !== '') rec.out.push(header, v)
    }
    const expMs = typeof claims.exp === 'number' ? claims.exp * 1000 + this.leewayMs : Infinity
    const cacheUntil = Math.min(expMs, this.ttlMaxMs === undefined ? Infinity : at + this.ttlMaxMs)
    return Object.freeze({
      credential,
      headers: Object.freeze(rec.out),
      expMs,
      cacheUntil,
      cnf: parseCnf(claims),
      scopeOk: this.scopesSatisfied(credential.scopes),
    })
  }

  private scopesSatisfied (scopes: readonly string[]): boolean {
    const alts = this.scopeAlternatives
    if (alts === undefined) return true
    return alts.some(all => all.every(s => scopes.includes(s)))
  }

}

/** The scheme the client used, for the challenge (undefined when there is no usable Authorization header). */
function schemeOf (ctx: RequestContext): 'bearer' | 'dpop' | undefined {
  const v = ctx.singleHeader('authorization')
  if (typeof v !== 'string') return undefined
  const s = v.slice(0, v.indexOf(' ')).toLowerCase()
  return s === 'dpop' ? 'dpop' : s === 'bearer' ? 'bearer' : undefined
}

export default definePlugin({
  name: NAME,
  priority: 900,
  description: 'Validates JWT access tokens locally against the issuer\'s keys (or introspects opaque ones), with RFC 8705 certificate binding',
  schema: openidConnectSchema,
  create (config: OpenidConnectConfig, deps: PluginDeps): PluginInstance {
    const log = deps.logger.child({ where: deps.where })
    const needIntrospection = config.auth_methods.includes('introspection')
    const tls = config.ssl_verify ? undefined : { rejectUnauthorized: false }
    if (!config.ssl_verify) log.warn('openid-connect: ssl_verify is false: the IdP\'s TLS certificate is not verified')
    const idp = new IdpState({
      issuer: config.issuer,
      jwksEndpoint: config.jwks_endpoint,
      introspectionEndpoint: config.introspection_endpoint,
      needKeys: config.auth_methods.includes('bearer'),
      needIntrospection,
      needIssuer: config.issuers_allowed === undefined,
      http: deps.http,
      local: deps.local,
      timeoutMs: config.timeout,
      cooldownMs: config.rediscovery_lifetime * 1000,
      keysTtlMs: config.jwks_cache_ttl * 1000,
      tls,
      log,
      stash: deps.stash,
      now: deps.now,
    })
    let introspection: IntrospectionClient | undefined
    if (needIntrospection) {
      const clientId = firstOf(config.client_id)
      if (clientId === undefined && idp.localIssuer() === undefined) {
        throw new PluginConfigError(['client_id'], 'the introspection auth method needs client_id and client_secret to authenticate to the introspection endpoint')
      }
      introspection = new IntrospectionClient({
        http: deps.http,
        endpoint: () => idp.introspectionEndpoint,
        local: () => idp.localIssuer(),
        clientId,
        clientSecret: firstOf(config.client_secret),
        authMethod: config.introspection_endpoint_auth_method,
        hint: config.introspection_hint,
        timeoutMs: config.timeout,
        tls,
      })
    }
    const certSource = config.certificate_header === undefined
      ? undefined
      : createCertSource({ header: config.certificate_header, format: config.certificate_header_format, trustedIps: config.trusted_ips })
    const { verifier, challenger } = createDpop(config, deps, { trustedProxies: compileTrustedIps(config.trusted_ips), leewayS: config.leeway, bearer: true })
    // Introspection answers are shared with the other workers and nodes (gateway.store); JWTs verified here are
    // not (README "Caching"; bench/token-cache-micro.mjs): a shared hit costs ~16 µs of CPU on Redis (GET + unseal)
    // or ~18 µs on the workers' IPC store (worker + primary) against ~65-100 µs for an ES256 verification, but a
    // process verifies a JWT once per lifetime and then serves it from L1 (~1 µs), so L2 would spare at most one
    // verification per process per token, while every first use would wait a store round trip, every first sight
    // would pay a lookup and a write on top, and a stored answer would be accepted without a signature check.
    const shared = introspection === undefined || !config.cache_introspection
      ? undefined
      : SharedTokenTier.create({
        store: deps.store,
        now: deps.now,
        logger: log,
        metrics: deps.tokenCacheMetrics,
        plugin: NAME,
        // what the IdP's answer depends on: which endpoint, asked as which client (token-introspection uses the same)
        scope: () => idp.introspectionEndpoint === undefined ? undefined : ['rfc7662', idp.introspectionEndpoint, firstOf(config.client_id) ?? ''],
      })
    return withConsumerMapping(new OpenidConnect(config, idp, log, introspection, certSource, verifier, challenger, deps.now, createHeaderRevocationCheck(config, config.certificate_header, deps), shared), config, deps)
  },
})
