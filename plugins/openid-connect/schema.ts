import { z } from 'zod'
import { CERTIFICATE_HEADER_FORMATS, dpopSchemaFields, headerRevocationKeys } from '../../src/plugin-api.js'

/** Kong's `auth_methods` names: all accepted by the schema, so a Kong config gets a precise message. */
export const KONG_AUTH_METHODS = [
  'password', 'client_credentials', 'authorization_code', 'bearer', 'introspection', 'userinfo', 'kong_oauth2',
  'refresh_token', 'session',
] as const
export type AuthMethod = typeof KONG_AUTH_METHODS[number]

/** The auth methods certbound implements. Both carry proof of possession (the token's `cnf` is checked). */
export const SUPPORTED_AUTH_METHODS: ReadonlySet<AuthMethod> = new Set(['bearer', 'introspection'])

/**
 * Asymmetric JWS algorithms (RFC 7518 §3, RFC 8037). `none` and the HMAC family are never accepted: a resource
 * server holds no shared secret, and an HMAC "verified" with a public key is the algorithm-confusion attack.
 */
export const ASYMMETRIC_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'] as const
const DEFAULT_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA']
const ASYMMETRIC: ReadonlySet<string> = new Set(ASYMMETRIC_ALGORITHMS)

function algorithmProblem (alg: string): string | undefined {
  if (ASYMMETRIC.has(alg)) return undefined
  if (alg.toLowerCase() === 'none') return '"none" (an unsigned token) is never accepted'
  if (/^HS\d+$/i.test(alg)) return `${alg} is an HMAC algorithm: a resource server has no shared secret, and accepting it would let a token "signed" with the issuer's public key through (algorithm confusion)`
  return `unknown JWS algorithm "${alg}"; use one of ${ASYMMETRIC_ALGORITHMS.join(', ')}`
}

/** RFC 9110 §5.1 field-name token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Headers a plugin must never set from a claim: framing, routing and hop-by-hop fields (RFC 9110 §7.6.1). */
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'host', 'connection', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive',
  'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'authorization', 'cookie',
])

const headerName = z.string().regex(HEADER_NAME, 'must be a valid HTTP header name (RFC 9110 token)')
  .refine(h => !FORBIDDEN_HEADERS.has(h.toLowerCase()), { error: (i) => `"${String(i.input)}" may not be set from a claim (framing, hop-by-hop or credential header)` })

const stringOrList = (d: string) => z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe(d)

const url = (d: string) => z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional().describe(d)

export const openidConnectSchema = z.strictObject({
  issuer: url('The issuer identifier (discovery via <issuer>/.well-known/openid-configuration, then RFC 8414 ' +
    '/.well-known/oauth-authorization-server), or the discovery document URL itself, as Kong accepts. ' +
    'Required unless jwks_endpoint and issuers_allowed are given'),
  jwks_endpoint: url('Fetch the signing keys (JWKS) from this URL instead of the discovered jwks_uri'),
  issuers_allowed: z.array(z.string().min(1)).min(1).optional()
    .describe('Accepted values of the token\'s iss claim; default: the discovered (or configured) issuer'),
  auth_methods: z.array(z.enum(KONG_AUTH_METHODS)).min(1).default(['bearer'])
    .describe('How a request authenticates: bearer (JWT access token validated locally) and introspection ' +
      '(RFC 7662 at the issuer, for opaque tokens) are supported; Kong\'s other names are rejected at load'),
  audience_required: z.array(z.string().min(1)).min(1).optional()
    .describe('The token\'s aud must contain at least one of these (RFC 9068 §4); default: aud is not checked'),
  scopes_required: z.array(z.string().regex(/\S/, 'must name at least one scope')).min(1).optional()
    .describe('Kong semantics: entries are alternatives (OR); the space-separated scopes inside one entry are all ' +
      'required (AND). Missing: 403 insufficient_scope'),
  scopes_claim: z.array(z.string().min(1)).min(1).default(['scope'])
    .describe('Path to the claim holding the scopes (["realm_access", "roles"] for a nested claim); a ' +
      'space-separated string or a list of strings'),
  leeway: z.number().int().min(0).max(600).default(0)
    .describe('Seconds of clock skew tolerated on exp, nbf and iat'),
  proof_of_possession_mtls: z.enum(['off', 'optional', 'strict']).default('off')
    .describe('RFC 8705 certificate binding. strict: every token must carry cnf."x5t#S256" equal to the ' +
      'thumbprint of this TLS session\'s client certificate; optional: only tokens with cnf are checked; ' +
      'off: cnf is ignored. A mismatch or a missing client certificate is 401 invalid_token'),
  ...dpopSchemaFields,
  proof_of_possession_auth_methods_validation: z.boolean().default(true)
    .describe('With proof of possession enabled, reject at load any auth method that cannot carry it'),
  upstream_headers_claims: z.array(z.string().min(1)).optional()
    .describe('Claims to forward upstream, one per entry of upstream_headers_names (same length)'),
  upstream_headers_names: z.array(headerName).optional()
    .describe('Header names for upstream_headers_claims; client-sent copies are always stripped'),
  client_id: stringOrList('Client id for the introspection auth method (Kong takes a list: the first entry is used)'),
  client_secret: stringOrList('Client secret for the introspection auth method (the first entry is used)'),
  introspection_endpoint: url('RFC 7662 endpoint; default: the discovered introspection_endpoint'),
  introspection_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic')
    .describe('How the gateway authenticates to the introspection endpoint (RFC 6749 §2.3.1)'),
  introspection_hint: z.string().min(1).default('access_token')
    .describe('token_type_hint sent with introspection requests (RFC 7662 §2.1)'),
  cache_introspection: z.boolean().default(true)
    .describe('Cache active introspection results until the token\'s exp (capped by cache_ttl_max)'),
  cache_ttl_max: z.number().int().min(1).optional()
    .describe('Upper bound in seconds for how long a verified token is remembered; default: until its exp. ' +
      'Introspection results without exp are cached only when this is set'),
  verify_signature: z.boolean().default(true)
    .refine(v => v, { error: 'false is not supported: certbound never skips signature verification' })
    .describe('Always true: accepted for Kong compatibility; false is rejected at load'),
  access_token_typ: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).default(['at+jwt'])
    .describe('(certbound) JWT typ header values identifying an access token (RFC 9068 §2.1), compared ' +
      'case-insensitively with or without "application/"'),
  enforce_access_token_typ: z.boolean().default(false)
    .describe('(certbound) Require typ to be one of access_token_typ. Off by default because Keycloak issues ' +
      'typ "JWT"; even when off, tokens explicitly typed as another kind of JWT (dpop+jwt, logout+jwt...) and ' +
      'Keycloak ID/refresh tokens are refused'),
  algorithms: z.array(z.string().superRefine((alg, ctx) => {
    const problem = algorithmProblem(alg)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
  })).min(1).default(DEFAULT_ALGORITHMS)
    .describe('Accepted JWS algorithms (asymmetric only: none and HS* are rejected at load)'),
  timeout: z.number().int().min(1).max(120_000).default(10_000)
    .describe('Milliseconds for each request to the IdP (discovery, JWKS, introspection)'),
  rediscovery_lifetime: z.number().int().min(0).default(30)
    .describe('Seconds between two fetches of the JWKS: a token with an unknown kid triggers a refetch at ' +
      'most this often (key rotation without restart, and no amplification of forged kids)'),
  jwks_cache_ttl: z.number().int().min(1).default(600)
    .describe('(certbound) Seconds after which the JWKS is refreshed in the background; the old keys keep ' +
      'serving if the IdP is unreachable'),
  ssl_verify: z.boolean().default(true)
    .describe('Verify the IdP\'s TLS certificate (system CAs plus gateway.trusted_certificates)'),
  hide_credentials: z.boolean().default(false)
    .describe('Do not forward the Authorization header upstream'),
  certificate_header: headerName.optional()
    .describe('(certbound) Header carrying the client certificate when a trusted TLS terminator sits in front; ' +
      'honoured only from trusted_ips, otherwise the TLS session\'s certificate is used'),
  certificate_header_format: z.enum(CERTIFICATE_HEADER_FORMATS).default('url_encoded')
    .describe('(certbound) Encoding of certificate_header: url_encoded (nginx $ssl_client_escaped_cert), ' +
      'base64_encoded (PEM body or DER), rfc9440 (Client-Cert: :b64:), xfcc (Envoy Cert="...")'),
  trusted_ips: z.array(z.string().min(1)).default([])
    .describe('(certbound) Direct peers (IPs or CIDRs) allowed to send certificate_header, and whose ' +
      'X-Forwarded-Proto/-Host/-Port give the URI a DPoP proof\'s htu is checked against'),
  ...headerRevocationKeys,
  consumer_claim: z.array(z.string().min(1)).min(1).optional()
    .describe('Kong: the claim that names the consumer (several names: a path into nested claims, e.g. [sub] or [client_id]); ' +
      'the request is mapped to that consumer (X-Consumer-* upstream, acl, rate-limiting limit_by: consumer)'),
  consumer_by: z.array(z.enum(['username', 'custom_id', 'id'])).min(1).default(['username', 'custom_id'])
    .describe('Kong: consumer fields the consumer_claim value is matched against, in this order'),
  consumer_optional: z.boolean().default(false)
    .describe('Kong: a token whose claim names no consumer still passes (without a consumer); false: 403'),
}).superRefine(function checkOpenidConnect (c, ctx) {
  const pop = c.proof_of_possession_mtls !== 'off' || c.proof_of_possession_dpop !== 'off'
  c.auth_methods.forEach((m, i) => {
    if (SUPPORTED_AUTH_METHODS.has(m)) return
    const message = pop && c.proof_of_possession_auth_methods_validation
      ? `auth method "${m}" cannot carry proof of possession (proof_of_possession_${c.proof_of_possession_mtls !== 'off' ? 'mtls is ' + c.proof_of_possession_mtls : 'dpop is ' + c.proof_of_possession_dpop}); ` +
        'use bearer or introspection, or set proof_of_possession_auth_methods_validation: false'
      : `auth method "${m}" is not supported by certbound; supported: bearer, introspection`
    ctx.addIssue({ code: 'custom', path: ['auth_methods', i], message })
  })
  if (c.issuer === undefined) {
    if (c.jwks_endpoint === undefined) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'is required (or give jwks_endpoint and issuers_allowed)' })
    } else if (c.issuers_allowed === undefined) {
      // RFC 9068 §4: the iss claim must be checked; without an issuer there is nothing to check it against
      ctx.addIssue({ code: 'custom', path: ['issuers_allowed'], message: 'is required when issuer is not given: the token\'s iss must be checked' })
    }
    if (c.auth_methods.includes('introspection') && c.introspection_endpoint === undefined) {
      ctx.addIssue({ code: 'custom', path: ['introspection_endpoint'], message: 'is required for the introspection auth method when issuer is not given' })
    }
  }
  const claims = c.upstream_headers_claims?.length ?? 0
  const names = c.upstream_headers_names?.length ?? 0
  if (claims !== names) {
    ctx.addIssue({ code: 'custom', path: [names === 0 ? 'upstream_headers_claims' : 'upstream_headers_names'], message: `upstream_headers_claims (${claims}) and upstream_headers_names (${names}) must have the same length` })
  }
  if (c.certificate_header !== undefined && c.trusted_ips.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['trusted_ips'], message: 'certificate_header is honoured only from trusted_ips: list the TLS terminators\' addresses' })
  }
  const seen = new Set<string>()
  c.upstream_headers_names?.forEach((h, i) => {
    const l = h.toLowerCase()
    if (seen.has(l)) ctx.addIssue({ code: 'custom', path: ['upstream_headers_names', i], message: `header "${h}" is listed twice` })
    seen.add(l)
  })
})

export type OpenidConnectConfig = z.output<typeof openidConnectSchema>
