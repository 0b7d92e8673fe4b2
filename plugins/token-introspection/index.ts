import { createPrivateKey, hash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { LRUCache } from 'lru-cache'
import { definePlugin, PluginConfigError, type PluginDeps, type PluginInstance } from '../../src/pipeline/types.js'
import type { Credential, RequestContext } from '../../src/pipeline/context.js'
import { assertNotRevokedLocally, localIntrospectionKey, type LocalIssuer } from '../../src/pipeline/local-issuer.js'
import type { HttpRequestOptions } from '../../src/http-client/types.js'
import { GatewayError, insufficientScope, invalidToken } from '../../src/errors/index.js'
import { bearerToken } from '../../src/auth/bearer.js'
import { cnfThumbprint, safeEqual } from '../../src/auth/binding.js'
import { CREDENTIAL_HEADERS, claimHeaderValue, credentialFromClaims, credentialHeaders, sanitize } from '../../src/auth/credential.js'
import { createCertSource } from '../../src/auth/cert-source.js'
import { createHeaderRevocationCheck } from '../../src/auth/revocation/header-certificate.js'
import { schema, type TokenIntrospectionConfig } from './schema.js'

/** An introspection result, cached per token hash. */
type Entry = ActiveEntry | InactiveEntry

interface ActiveEntry {
  readonly active: true
  readonly credential: Credential
  /** cnf."x5t#S256": undefined when unbound, null when present but malformed. */
  readonly cnf: string | undefined | null
  /** cnf is present but binds to something other than a certificate (DPoP's jkt...): not verifiable here. */
  readonly cnfOther: boolean
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
  readonly expMs: number
}

const MAX_RESPONSE_BYTES = 256 * 1024
/** Keycloak answers `active: true` for refresh and offline tokens too; they are not access tokens (RFC 6749 §1.5). */
const NOT_ACCESS_TOKEN_TYPES: ReadonlySet<string> = new Set(['refresh', 'refresh_token', 'offline'])

/** The cache key of a token: its SHA-256 (the token itself is never kept as a key). One-shot crypto.hash (Node ≥ 20.12). */
function tokenKey (token: string): string {
  return hash('sha256', token, 'base64')
}

/** RFC 6749 §2.3.1 / Appendix B: client_id and secret are form-encoded before Basic's base64. */
function formEncode (s: string): string {
  return new URLSearchParams([['', s]]).toString().slice(1)
}

function readPem (deps: PluginDeps, key: 'client_cert' | 'client_key', file: string): string {
  try {
    return readFileSync(deps.resolvePath(file), 'utf8')
  } catch (err) {
    throw new PluginConfigError([key], `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (paths are resolved relative to the config file)`, 'CB_CFG_FILE')
  }
}

/** A short, log-safe excerpt of an IdP answer. */
function snippet (body: Buffer): string {
  const s = sanitize(body.subarray(0, 200).toString('utf8'))
  return body.length > 200 ? s + '…' : s
}

interface Prepared {
  readonly headers: Record<string, string>
  readonly extraForm: ReadonlyArray<readonly [string, string]>
  readonly tls: HttpRequestOptions['tls']
}

function prepareClientAuth (config: TokenIntrospectionConfig, deps: PluginDeps, isLocal: boolean): Prepared {
  const method = config.introspection_endpoint_auth_method
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  }
  const extraForm: Array<readonly [string, string]> = []
  let tls: HttpRequestOptions['tls'] = { rejectUnauthorized: config.introspection_ssl_verify }
  if (config.client_id === undefined) {
    if (!isLocal) throw new PluginConfigError(['client_id'], `is required: the introspection endpoint authenticates the gateway (${method})`, 'CB_CFG_REQUIRED')
    return { headers, extraForm, tls }
  }
  if (method === 'client_secret_basic' || method === 'client_secret_post') {
    if (config.client_secret === undefined) throw new PluginConfigError(['client_secret'], `is required with introspection_endpoint_auth_method ${method}`, 'CB_CFG_REQUIRED')
    if (method === 'client_secret_basic') {
      headers.authorization = 'Basic ' + Buffer.from(`${formEncode(config.client_id)}:${formEncode(config.client_secret)}`).toString('base64')
    } else {
      extraForm.push(['client_id', config.client_id], ['client_secret', config.client_secret])
    }
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
    extraForm.push(['client_id', config.client_id])
    tls = { ...tls, cert, key }
  }
  return { headers, extraForm, tls }
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
    const isLocal = deps.local.get<LocalIssuer>(localKey) !== undefined
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
    const required = [...new Set([...(config.scope ?? []), ...(config.scopes ?? [])])]
    const strict = config.certificate_binding === 'strict'
    const ttlMs = config.ttl * 1000
    const negativeTtlMs = config.negative_ttl * 1000
    const customClaims = config.custom_claims_forward.map(c => [c, 'x-credential-' + c.toLowerCase()] as const)
    const identityHeaders = [...new Set([
      ...CREDENTIAL_HEADERS,
      ...customClaims.map(([, h]) => h),
      ...(config.certificate_header === undefined ? [] : [config.certificate_header.toLowerCase()]),
    ])]

    const cache = ttlMs > 0 || negativeTtlMs > 0 ? new LRUCache<string, Entry>({ max: config.cache_size }) : undefined
    const inflight = new Map<string, Promise<Entry>>()

    function entryFor (token: string, claims: Record<string, unknown>, now: number): Entry {
      const expMs = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp * 1000 : Number.POSITIVE_INFINITY
      if (claims.active !== true) return { active: false, detail: 'the authorization server reports the token inactive', expMs }
      // RFC 7662 §2.2: exp is authoritative; never accept a token past it even if the server says active
      if (expMs <= now) return { active: false, detail: 'the token is past its exp', expMs }
      const credential = credentialFromClaims(token, claims, 'token-introspection')
      for (const t of [claims.token_type, claims.typ]) {
        if (typeof t === 'string' && NOT_ACCESS_TOKEN_TYPES.has(t.toLowerCase())) return { active: false, detail: `the token is a ${t} token, not an access token`, expMs }
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
      const cnf = cnfThumbprint(claims)
      return { active: true, credential, cnf, cnfOther: cnf === undefined && claims.cnf !== undefined, expMs, headers, missingScopes }
    }

    async function callIdp (token: string): Promise<Record<string, unknown>> {
      const local = deps.local.get<LocalIssuer>(localKey)
      if (local !== undefined) {
        try {
          return await local.introspect(token)
        } catch (err) {
          throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `built-in introspection failed: ${(err as Error).message}` })
        }
      }
      const form = new URLSearchParams([['token', token], ['token_type_hint', 'access_token']])
      for (const [k, v] of prepared.extraForm) form.append(k, v)
      let res
      try {
        res = await deps.http.request(endpoint, {
          method: 'POST',
          headers: prepared.headers,
          body: form.toString(),
          timeoutMs: config.timeout,
          maxResponseBytes: MAX_RESPONSE_BYTES,
          tls: prepared.tls,
        })
      } catch (err) {
        const e = err as Error & { code?: string }
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection endpoint ${new URL(endpoint).origin} unreachable: ${e.code ?? e.name}: ${e.message}` })
      }
      if (res.status >= 400 && res.status < 500) {
        // Some servers refuse to introspect JWTs, or this client: the token cannot be vouched for (fail closed)
        throw invalidToken(`introspection endpoint answered ${res.status}: ${snippet(res.body)}`)
      }
      if (res.status < 200 || res.status >= 300) {
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection endpoint answered ${res.status}: ${snippet(res.body)}` })
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(res.body.toString('utf8'))
      } catch {
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection endpoint answered ${res.status} with a body that is not JSON: ${snippet(res.body)}` })
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: 'introspection response is not a JSON object' })
      }
      return parsed as Record<string, unknown>
    }

    async function introspect (key: string, token: string): Promise<Entry> {
      const claims = await callIdp(token)
      const now = Date.now()
      const entry = entryFor(token, claims, now)
      if (cache !== undefined) {
        const want = entry.active ? ttlMs : negativeTtlMs
        // Never cache past exp (Callista's plugin did): the cache must not outlive the token
        const ttl = Math.min(want, entry.expMs - now)
        if (ttl >= 1) cache.set(key, entry, { ttl: Math.floor(ttl) })
      }
      return entry
    }

    /** Concurrent misses for one token share one call to the authorization server. */
    function lookup (key: string, token: string): Promise<Entry> {
      let p = inflight.get(key)
      if (p === undefined) {
        p = introspect(key, token).finally(() => { inflight.delete(key) })
        inflight.set(key, p)
      }
      return p
    }

    function apply (ctx: RequestContext, e: Entry): void | Promise<void> {
      if (!e.active) throw invalidToken(e.detail, 'CB_ERR_TOKEN_INACTIVE')
      if (e.cnf === null) throw invalidToken('cnf claim is malformed (RFC 8705 §3.1)', 'CB_ERR_TOKEN_BINDING_MISMATCH')
      // A token bound to a key we cannot check (RFC 9449 DPoP's cnf.jkt) must not pass as if it were unbound
      if (e.cnfOther) throw invalidToken('the token is bound to something other than a certificate (cnf without x5t#S256)', 'CB_ERR_TOKEN_BINDING_MISMATCH')
      if (e.cnf !== undefined || strict) {
        if (e.cnf === undefined) throw invalidToken('certificate_binding is strict and the token is not certificate-bound (no cnf."x5t#S256")', 'CB_ERR_TOKEN_BINDING_MISMATCH')
        const src = certSource.resolve(ctx)
        if (src.certificate === null) throw invalidToken(`the token is certificate-bound but there is no client certificate: ${src.reason}`, 'CB_ERR_TOKEN_BINDING_MISMATCH')
        // RFC 8705 §3.1: SHA-256 thumbprint of the DER, compared in constant time
        if (!safeEqual(e.cnf, src.certificate.x5tS256)) throw invalidToken(`cnf."x5t#S256" does not match the client certificate (${src.source})`, 'CB_ERR_TOKEN_BINDING_MISMATCH')
        // a certificate forwarded by a trusted proxy: is it revoked? (certificate_header_revocation_check_mode)
        const refused = src.source === 'header' ? headerRevocation?.(src.certificate) : undefined
        if (refused instanceof Promise) return refused.then((err) => { if (err !== undefined) throw err; grant(ctx, e) })
        if (refused !== undefined) throw refused
      }
      grant(ctx, e)
    }

    function grant (ctx: RequestContext, e: Extract<Entry, { active: true }>): void {
      if (e.missingScopes !== undefined) throw insufficientScope(required.join(' '), `the token lacks scope ${e.missingScopes}`)
      // a cached answer of the built-in AS must not outlive a revocation (gateway.store's replica says at once)
      assertNotRevokedLocally(deps.local.get<LocalIssuer>(localKey), e.credential.claims)
      ctx.credential = e.credential
      for (const [name, value] of e.headers) ctx.setUpstreamHeader(name, value)
      if (config.hide_credentials) ctx.removeUpstreamHeader(tokenHeader)
    }

    return {
      providesCredential: true,
      identityHeaders,
      // Synchronous on a warm cache (one hash, one map lookup, cheap checks); a promise only on a miss.
      access: function tokenIntrospectionAccess (ctx: RequestContext): void | Promise<void> {
        const token = bearerToken(ctx, tokenHeader)
        const key = tokenKey(token)
        const hit = cache?.get(key)
        if (hit !== undefined && hit.expMs > Date.now()) return apply(ctx, hit)
        return lookup(key, token).then(e => apply(ctx, e))
      },
      close (): Promise<void> {
        cache?.clear()
        inflight.clear()
        return Promise.resolve()
      },
    }
  },
})

