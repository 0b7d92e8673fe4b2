import { createPrivateKey, hash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  definePlugin, PluginConfigError, assertNotRevokedLocally, localIntrospectionKey, insufficientScope,
  invalidToken, CREDENTIAL_HEADERS, claimHeaderValue, credentialFromClaims, credentialHeaders, createCertSource,
  parseCnf, extractToken, enforceBinding, IntrospectionClient, VerifiedTokenCache, CidrSet, createDpop,
  nextNonceResponse, createHeaderRevocationCheck, SharedTokenTier, type PluginDeps, type PluginInstance, type Credential,
  type RequestContext, type HttpRequestOptions, type Confirmation, type PresentedToken,
  type BindingPolicy, type ErrCause,
} from '../../src/plugin-api.js'
import { schema, type TokenIntrospectionConfig } from './schema.js'

/** An introspection result, cached per token hash. */
type Entry = ActiveEntry | InactiveEntry

interface ActiveEntry {
  readonly active: true
  readonly credential: Credential
  /** The token's confirmation: undefined when unbound, null when present but malformed. */
  readonly cnf: Confirmation | undefined | null
  /** Epoch ms the token expires at (its exp), or +Infinity when the response has no exp. */
  readonly expMs: number
  /** X-Credential-* and custom claim headers, computed once per token. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** Required scopes the token lacks (space-separated), or undefined. */
  readonly missingScopes: string | undefined
}

interface InactiveEntry {
  readonly active: false
  readonly detail: string
  /** Why, where we can tell (the IdP's `active: false` does not say): for the log and the dashboard. */
  readonly cause?: ErrCause
  readonly expMs: number
}

/** Keycloak answers `active: true` for refresh and offline tokens too; they are not access tokens (RFC 6749 §1.5). */
const NOT_ACCESS_TOKEN_TYPES: ReadonlySet<string> = new Set(['refresh', 'refresh_token', 'offline'])

/** The cache key of a token: its SHA-256 (the token itself is never kept as a key). One-shot crypto.hash (Node ≥ 20.12). */
function tokenKey (token: string): string {
  return hash('sha256', token, 'base64')
}

function readPem (deps: PluginDeps, key: 'client_cert' | 'client_key', file: string): string {
  try {
    return readFileSync(deps.resolvePath(file), 'utf8')
  } catch (err) {
    throw new PluginConfigError([key], `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (paths are resolved relative to the config file)`, 'CB_CFG_FILE')
  }
}

/** The gateway's credentials at the introspection endpoint, checked at load. */
interface Prepared {
  readonly method: 'client_secret_basic' | 'client_secret_post' | 'tls_client_auth' | 'none'
  readonly tls: HttpRequestOptions['tls']
}

function prepareClientAuth (config: TokenIntrospectionConfig, deps: PluginDeps, isLocal: boolean): Prepared {
  const method = config.introspection_endpoint_auth_method
  let tls: HttpRequestOptions['tls'] = { rejectUnauthorized: config.introspection_ssl_verify }
  if (config.client_id === undefined) {
    if (!isLocal) throw new PluginConfigError(['client_id'], `is required: the introspection endpoint authenticates the gateway (${method})`, 'CB_CFG_REQUIRED')
    return { method: 'none', tls }
  }
  if (method === 'client_secret_basic' || method === 'client_secret_post') {
    if (config.client_secret === undefined) throw new PluginConfigError(['client_secret'], `is required with introspection_endpoint_auth_method ${method}`, 'CB_CFG_REQUIRED')
  } else {
    // RFC 8705 §2.1: tls_client_auth identifies the client by client_id in the body and the certificate in TLS
    if (config.client_cert === undefined) throw new PluginConfigError(['client_cert'], 'is required with introspection_endpoint_auth_method tls_client_auth', 'CB_CFG_REQUIRED')
    if (config.client_key === undefined) throw new PluginConfigError(['client_key'], 'is required with introspection_endpoint_auth_method tls_client_auth', 'CB_CFG_REQUIRED')
    const cert = readPem(deps, 'client_cert', config.client_cert)
    const key = readPem(deps, 'client_key', config.client_key)
    let x509: X509Certificate
    try {
      x509 = new X509Certificate(cert)
    } catch (err) {
      throw new PluginConfigError(['client_cert'], `${config.client_cert} is not a PEM certificate: ${(err as Error).message}`)
    }
    try {
      if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('it does not belong to client_cert')
    } catch (err) {
      throw new PluginConfigError(['client_key'], `${config.client_key} is not usable: ${(err as Error).message}`)
    }
    if (config.client_secret !== undefined) deps.logger.warn({ where: deps.where }, 'client_secret is ignored with tls_client_auth')
    tls = { ...tls, cert, key }
  }
  return { method, tls }
}

export default definePlugin({
  name: 'token-introspection',
  priority: 910,
  description: 'Validates access tokens by RFC 7662 introspection (Callista token-introspection), with RFC 8705 ' +
    'certificate binding, required scopes, cached results and X-Credential-* headers upstream',
  schema,
  create (config, deps): PluginInstance {
    if (config.allow_anonymous) throw new PluginConfigError(['allow_anonymous'], 'true is not supported: certbound never lets a request without a valid token through this plugin')
    const endpoint = config.introspection_endpoint
    const localKey = localIntrospectionKey(endpoint)
    const isLocal = deps.local.get(localKey) !== undefined
    const prepared = prepareClientAuth(config, deps, isLocal)
    if (!config.introspection_ssl_verify && endpoint.startsWith('https:')) {
      deps.logger.warn({ where: deps.where }, 'introspection_ssl_verify is false: the introspection endpoint\'s certificate is not verified')
    }
    const certSource = createCertSource({
      header: config.certificate_header,
      format: config.certificate_header_format,
      trustedIps: config.trusted_ips,
    })
    const headerRevocation = createHeaderRevocationCheck(config, config.certificate_header, deps)
    const tokenHeader = config.token_header.toLowerCase()
    if (config.proof_of_possession_dpop !== 'off' && tokenHeader !== 'authorization') {
      // RFC 9449 §7.1: a DPoP-bound token travels as "Authorization: DPoP <token>"; any other header would be a downgrade
      throw new PluginConfigError(['token_header'], `must be Authorization when proof_of_possession_dpop is ${config.proof_of_possession_dpop} (RFC 9449 §7.1: DPoP tokens are sent as "Authorization: DPoP <token>")`)
    }
    const required = [...new Set([...(config.scope ?? []), ...(config.scopes ?? [])])]
    const ttlMs = config.ttl * 1000
    const negativeTtlMs = config.negative_ttl * 1000
    const customClaims = config.custom_claims_forward.map(c => [c, 'x-credential-' + c.toLowerCase()] as const)
    const identityHeaders = [...new Set([
      ...CREDENTIAL_HEADERS,
      ...customClaims.map(([, h]) => h),
      ...(config.certificate_header === undefined ? [] : [config.certificate_header.toLowerCase()]),
    ])]

    const cache = new VerifiedTokenCache<Entry>(config.cache_size, deps.now)
    const client = new IntrospectionClient({
      http: deps.http,
      endpoint: () => endpoint,
      local: () => deps.local.get(localKey),
      authMethod: prepared.method,
      clientId: config.client_id,
      clientSecret: config.client_secret,
      hint: 'access_token',
      timeoutMs: config.timeout,
      tls: prepared.tls,
    })
    const dpopOn = config.proof_of_possession_dpop !== 'off'
    const { verifier, challenger } = createDpop(config, deps, { trustedProxies: new CidrSet(config.trusted_ips), leewayS: 0, bearer: true })
    const policy: BindingPolicy = {
      mtls: config.certificate_binding,
      dpop: config.proof_of_possession_dpop,
      certificate: ctx => certSource.resolve(ctx),
      // a certificate forwarded by a trusted proxy: is it revoked? (certificate_header_revocation_check_mode)
      certificateRevoked: headerRevocation === undefined ? undefined : (_ctx, cert, source) => source === 'header' ? headerRevocation(cert) : undefined,
      dpopVerifier: verifier,
    }

    function entryFor (token: string, claims: Record<string, unknown>, now: number): Entry {
      const expMs = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : Number.POSITIVE_INFINITY
      if (claims.active !== true) return { active: false, detail: 'the authorization server reports the token inactive', expMs }
      // RFC 7662 §2.2: exp is authoritative; never accept a token past it even if the server says active
      if (expMs <= now) return { active: false, detail: 'the token is past its exp', cause: 'expired', expMs }
      const credential = credentialFromClaims(token, claims, 'token-introspection')
      for (const t of [claims.token_type, claims.typ]) {
        if (typeof t === 'string' && NOT_ACCESS_TOKEN_TYPES.has(t.toLowerCase())) return { active: false, detail: `the token is a ${t} token, not an access token`, cause: 'type', expMs }
      }
      const headers = credentialHeaders(credential)
      for (const [claim, header] of customClaims) {
        let v: string | undefined
        try {
          v = claimHeaderValue(claims[claim])
        } catch { v = undefined } // a pathological value (JSON too deep to stringify) is not forwarded
        if (v !== undefined && v !== '') headers.push([header, v])
      }
      let missingScopes: string | undefined
      if (required.length > 0) {
        const have = new Set(credential.scopes)
        const missing = required.filter(s => !have.has(s))
        if (missing.length > 0) missingScopes = missing.join(' ')
      }
      return { active: true, credential, cnf: parseCnf(claims), expMs, headers, missingScopes }
    }

    // The answers of a remote IdP are shared with the other workers and nodes (gateway.store), so each does not ask
    // again about a token one of them asked about. Not for the in-process authorization server: its "introspection"
    // is an ES256 verification of its own JWT with no IdP to spare, the case openid-connect's README measures for
    // JWTs (README: "Shared between workers and nodes").
    const shared = isLocal || (ttlMs <= 0 && negativeTtlMs <= 0)
      ? undefined
      : SharedTokenTier.create({
        store: deps.store,
        now: deps.now,
        logger: deps.logger.child({ where: deps.where }),
        metrics: deps.tokenCacheMetrics,
        plugin: 'token-introspection',
        // what the IdP's answer depends on: which endpoint, asked as which client (openid-connect uses the same)
        scope: () => ['rfc7662', endpoint, config.client_id ?? ''],
      })

    /** The bound of an answer obtained at `at` (epoch ms): this route's ttl or negative_ttl, never past exp. */
    function boundOf (entry: Entry, at: number): number {
      return Math.min(at + (entry.active ? ttlMs : negativeTtlMs), entry.expMs)
    }

    async function introspect (key: string, token: string): Promise<Entry> {
      if (shared !== undefined) {
        const known = await shared.get(token)
        if (known !== undefined) {
          const now = deps.now()
          const entry = entryFor(token, known.claims, now)
          // the writer's bound, and ours from when the IdP answered: a longer ttl elsewhere does not stretch ours
          const until = Math.min(known.until, boundOf(entry, known.at))
          if (until > now) {
            cache.set(key, entry, until)
            return entry
          }
        }
      }
      const claims = await client.introspect(token)
      const now = deps.now()
      const entry = entryFor(token, claims, now)
      // Never cache past exp (Callista's plugin did): the cache must not outlive the token
      const until = boundOf(entry, now)
      cache.set(key, entry, until)
      if (shared !== undefined && until > now) await shared.set(token, { at: now, until, claims })
      return entry
    }

    function apply (ctx: RequestContext, e: Entry, presented: PresentedToken): void | Promise<void> {
      if (!e.active) throw invalidToken(e.detail, 'CB_ERR_TOKEN_INACTIVE', e.cause)
      const bound = enforceBinding(ctx, e.cnf, policy, presented)
      if (bound !== undefined) return bound.then(() => { grant(ctx, e, presented) })
      grant(ctx, e, presented)
    }

    function grant (ctx: RequestContext, e: ActiveEntry, presented: PresentedToken): void {
      if (e.missingScopes !== undefined) throw insufficientScope(required.join(' '), `the token lacks scope ${e.missingScopes}`)
      // a cached answer of the built-in AS must not outlive a revocation (gateway.store's replica says at once)
      assertNotRevokedLocally(deps.local.get(localKey), e.credential.claims)
      ctx.credential = e.credential
      for (const [name, value] of e.headers) ctx.setUpstreamHeader(name, value)
      if (presented.scheme === 'dpop') ctx.setUpstreamHeader('x-credential-token-type', 'DPoP')
      if (config.hide_credentials) ctx.removeUpstreamHeader(tokenHeader)
    }

    function check (ctx: RequestContext): void | Promise<void> {
      const presented = extractToken(ctx, { header: tokenHeader, bearer: config.proof_of_possession_dpop !== 'strict', dpop: dpopOn })
      const key = tokenKey(presented.token)
      const hit = cache.get(key)
      if (hit !== undefined && hit.expMs > deps.now()) return apply(ctx, hit, presented)
      return cache.singleFlight(key, () => introspect(key, presented.token)).then(e => apply(ctx, e, presented))
    }

    return {
      providesCredential: true,
      identityHeaders,
      // RFC 8705 §3: strict refuses every token without cnf, so the handshake must ask for the certificate
      requestClientCertificate: config.certificate_binding === 'strict',
      requireClientCertificate: config.certificate_binding === 'strict' && config.proof_of_possession_dpop === 'off',
      // with dpop_use_nonce: the next nonce on successful responses (RFC 9449 §9)
      ...(verifier?.policy.nonces !== undefined ? { response: nextNonceResponse } : {}),
      // Synchronous on a warm cache with a certificate-bound or unbound token (one hash, one map lookup, cheap
      // checks); a promise on a miss or when a DPoP proof is verified.
      access: challenger.bearerOnly
        ? check
        : function tokenIntrospectionAccess (ctx: RequestContext): Promise<void> {
          // RFC 9449 §7.1: the proof is for the gateway only
          ctx.removeUpstreamHeader('dpop')
          let r
          try { r = check(ctx) } catch (err) { return Promise.reject(challenger.rewrite(err, schemeOf(ctx))) }
          return Promise.resolve(r).catch((err: unknown) => { throw challenger.rewrite(err, schemeOf(ctx)) })
        },
      close (): Promise<void> {
        cache.clear()
        return Promise.resolve()
      },
    }
  },
})

/** The scheme the client used, for the challenge (undefined when there is no usable Authorization header). */
function schemeOf (ctx: RequestContext): 'bearer' | 'dpop' | undefined {
  const v = ctx.singleHeader('authorization')
  if (typeof v !== 'string') return undefined
  const s = v.slice(0, v.indexOf(' ')).toLowerCase()
  return s === 'dpop' ? 'dpop' : s === 'bearer' ? 'bearer' : undefined
}
