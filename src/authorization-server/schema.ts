import { z } from 'zod'
import { DEFAULT_DPOP_ALGORITHMS, DPOP_ALGORITHMS } from '../auth/dpop/proof.js'
import { parseSecretHash } from './secret-hash.js'
import { parseDn } from './distinguished-name.js'

/**
 * The `authorization_server:` section: the built-in OAuth 2.0 authorization server (client credentials,
 * RFC 8705 mutual-TLS client authentication and certificate-bound tokens). Every field is described here;
 * docs/ is generated from this schema (STYLE.md rule 8).
 */

export const CERTIFICATE_METHODS = ['tls_client_auth', 'self_signed_tls_client_auth'] as const
export const SECRET_METHODS = ['client_secret_basic', 'client_secret_post'] as const
export const AUTH_METHODS = [...CERTIFICATE_METHODS, ...SECRET_METHODS] as const
export type AuthMethod = typeof AUTH_METHODS[number]

/** Defaults, in one place (the descriptions below quote them). */
export const DEFAULTS = Object.freeze({
  signingAlg: 'ES256',
  accessTokenTtl: 300,
  maxBodySize: 8192,
  tokenPath: '/oauth2/token',
  introspectionPath: '/oauth2/introspect',
  revocationPath: '/oauth2/revoke',
  jwksPath: '/oauth2/jwks',
  revocationFile: 'revocations.json',
  keyStoreFile: 'signing-keys.json',
})

/** RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ). */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

const pathField = (what: string, dflt: string) => z.string().regex(/^\/[^?#\s]*$/, 'must be an absolute path starting with "/" (no query or fragment)')
  .optional().describe(`Listener path of the ${what} (default: the issuer's path + ${dflt}); its URL is the issuer's origin + this path`)

const fileList = (d: string) => z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).describe(d)

const jwkWithX5c = z.looseObject({
  x5c: z.array(z.string().min(1)).min(1).describe('Certificate chain, base64 (not base64url) DER, the client\'s own certificate first (RFC 7517 §4.7)'),
}).describe('A JWK carrying the client\'s certificate in x5c')

const ttl = (d: string) => z.number().int().min(1).max(86_400).describe(d)

export const clientSchema = z.strictObject({
  client_id: z.string().min(1).max(255).regex(/^[\x21-\x7E]+$/, 'must be printable ASCII without spaces')
    .describe('The client identifier (RFC 6749 §2.2). Certificate-authenticated clients still send it in the request (RFC 8705 §2)'),
  client_name: z.string().optional().describe('Human-readable name, for logs (RFC 7591)'),
  token_endpoint_auth_method: z.enum(AUTH_METHODS)
    .describe('tls_client_auth: a CA-issued certificate with a registered subject/SAN (RFC 8705 §2.1); self_signed_tls_client_auth: a registered certificate (§2.2); client_secret_basic: HTTP Basic (RFC 6749 §2.3.1); client_secret_post: client_secret in the form body'),
  grant_types: z.array(z.literal('client_credentials')).min(1).default(['client_credentials'])
    .describe('Grants the client may use; only client_credentials (RFC 6749 §4.4) is supported'),
  scope: z.string().default('').describe('Space-separated scopes the client may request (RFC 6749 §3.3); a request without scope gets all of them'),
  tls_client_auth_subject_dn: z.string().min(1).optional()
    .describe('tls_client_auth: the expected subject DN, RFC 4514 (`CN=client1,O=Example Org`); attribute types compare case-insensitively, spaces around separators are ignored'),
  subject_dn_pattern: z.string().min(1).optional()
    .describe('tls_client_auth: a regular expression the whole RFC 4514 subject DN must match (Keycloak\'s x509.subjectdn), e.g. `CN=[^,]+,O=Example Org`'),
  tls_client_auth_san_dns: z.string().min(1).optional().describe('tls_client_auth: an expected dNSName SAN entry (case-insensitive)'),
  tls_client_auth_san_uri: z.string().min(1).optional().describe('tls_client_auth: an expected uniformResourceIdentifier SAN entry (e.g. a SPIFFE ID)'),
  tls_client_auth_san_ip: z.string().min(1).optional().describe('tls_client_auth: an expected iPAddress SAN entry (IPv4 or IPv6)'),
  tls_client_auth_san_email: z.string().min(1).optional().describe('tls_client_auth: an expected rfc822Name SAN entry'),
  certificate: z.string().min(1).optional()
    .describe('self_signed_tls_client_auth: PEM file of the client\'s certificate(s), relative to the config file; any of them is accepted (rotation)'),
  jwks: z.strictObject({ keys: z.array(jwkWithX5c).min(1) }).optional()
    .describe('self_signed_tls_client_auth: inline JWK Set whose keys carry the client\'s certificate in x5c (RFC 8705 §2.2)'),
  client_secret: z.string().min(1).optional()
    .describe('client_secret_*: the secret, compared in constant time; write `${{ env "NAME" }}` rather than the value'),
  client_secret_hash: z.string().min(1).optional()
    .describe('client_secret_*: an scrypt hash of the secret (`certbound hash-secret` prints one), instead of client_secret'),
  tls_client_certificate_bound_access_tokens: z.boolean().optional()
    .describe('RFC 8705 §3: bind access tokens to the TLS client certificate (cnf.x5t#S256). Default: true for certificate methods; for secret methods, tokens are bound when the client presents a certificate; true requires one'),
  access_token_ttl: ttl('Lifetime of this client\'s access tokens in seconds (default: the server\'s access_token_ttl)').optional(),
  resources: z.array(z.string().min(1)).min(1).optional()
    .describe('Audiences this client may request with `resource` (RFC 8707) or `audience` (default: the server\'s resources)'),
  introspection: z.boolean().default(false)
    .describe('May call the introspection endpoint (RFC 7662) and revoke any token (RFC 7009): for resource servers'),
  dpop_bound_access_tokens: z.boolean().default(false)
    .describe('RFC 9449 §5.2: every token request must carry a DPoP proof (400 invalid_dpop_proof otherwise) and every token is DPoP-bound (cnf.jkt). Without it, a request with a proof still gets a DPoP-bound token'),
}).describe('A client (RFC 7591 / RFC 8705 / RFC 9449 metadata names)')

/** RFC 9449 at the token endpoint: proofs accepted, nonces, window. */
const dpopSchema = z.strictObject({
  signing_alg_values: z.array(z.enum(DPOP_ALGORITHMS)).min(1).default([...DEFAULT_DPOP_ALGORITHMS])
    .describe('JWS algorithms accepted for DPoP proofs at the token endpoint (metadata dpop_signing_alg_values_supported)'),
  require_nonce: z.boolean().default(false)
    .describe('RFC 9449 §8: proofs must carry a nonce from this server (400 use_dpop_nonce with DPoP-Nonce otherwise); stateless, valid on every node'),
  proof_lifetime: z.number().int().min(1).max(3600).default(300)
    .describe('Seconds a proof (and a nonce) is accepted after its creation; its jti is remembered as long, in the shared store'),
}).prefault({}).describe('DPoP (RFC 9449) at the token endpoint')

export const authorizationServerSchema = z.strictObject({
  issuer: z.string().min(1).describe('The issuer identifier (RFC 8414 §2): an https URL without query or fragment, e.g. https://localhost:8443. Endpoint URLs derive from it'),
  ca_certificates: fileList('PEM file(s) of the CAs tls_client_auth certificates must chain to (RFC 8705 §2.1), relative to the config file. Checked here, not by the listener: its client_ca may trust other CAs. Omitted: a certificate must have verified against the client_ca of the listener the request came in on (as Keycloak and WSO2 trust their HTTPS truststore)').optional(),
  allow_partial_chain: z.boolean().default(false)
    .describe('tls_client_auth: accept a chain that ends at any certificate in ca_certificates (an intermediate CA), not only at a self-signed root (OpenSSL X509_V_FLAG_PARTIAL_CHAIN)'),
  revocation_check_mode: z.enum(['SKIP', 'IGNORE_CA_ERROR', 'STRICT']).default('IGNORE_CA_ERROR')
    .describe('tls_client_auth: check the client certificate\'s revocation (OCSP at its AIA responder, else its CRL distribution points), as mtls-auth. ' +
      'SKIP: no check. IGNORE_CA_ERROR: refuse a revoked certificate, allow (and log) one whose status cannot be had. STRICT: refuse unless it is known good'),
  revocation_http_timeout: z.number().int().min(1).default(30_000)
    .describe('tls_client_auth revocation: the longest one OCSP request or CRL download may take, in ms (mtls-auth http_timeout)'),
  revocation_cache_ttl: z.number().int().min(1000).default(60_000)
    .describe('tls_client_auth revocation: the longest an answer is reused, in ms, never past its nextUpdate (mtls-auth cert_cache_ttl)'),
  signing_keys: fileList('PEM private key file(s) (EC P-256, Ed25519, RSA ≥ 2048). The first signs; all are published in the JWKS. Rotate by putting the new key first and keeping the old one until its tokens expired').optional(),
  key_store: z.string().min(1).optional()
    .describe('JSON file of signing keys (JWKs), created with one key on first start (mode 0600) so a restart keeps issued tokens valid. The newest key signs; all publish. Default: <state_dir>/signing-keys.json'),
  signing_alg: z.enum(['ES256', 'EdDSA', 'RS256']).optional()
    .describe('Algorithm of keys generated into key_store (default ES256). For signing_keys it must match the signing key\'s type'),
  state_dir: z.string().min(1).optional()
    .describe('Directory for persistent state (revocations, generated keys), created with mode 0700. Without it and without key_store/revocation_store, keys are ephemeral and revocations are lost on restart'),
  revocation_store: z.string().min(1).optional()
    .describe('JSON file of revoked token ids, written atomically (mode 0600), pruned as tokens expire. Default: <state_dir>/revocations.json'),
  access_token_ttl: ttl('Default lifetime of access tokens in seconds').default(DEFAULTS.accessTokenTtl),
  audience: z.string().min(1).optional()
    .describe('Audience (aud) of tokens issued without resource/audience (default: the issuer)'),
  resources: z.array(z.string().min(1)).min(1).optional()
    .describe('Audiences clients may request with `resource` (RFC 8707) or `audience` (default: just the default audience)'),
  max_body_size: z.number().int().min(256).max(1024 * 1024).default(DEFAULTS.maxBodySize)
    .describe('Bytes of form body accepted by the token, introspection and revocation endpoints; beyond it: 400'),
  client_secret_checks: z.strictObject({
    concurrency: z.number().int().min(1).max(64).default(1)
      .describe('scrypt verifications of client_secret_hash secrets running at once, per process (each holds a libuv thread-pool thread, a CPU core and 32 MiB for tens of ms); keep it well below UV_THREADPOOL_SIZE (default 4) and the cores. A secret that verified is cached, so this bounds only first and wrong attempts'),
    queue: z.number().int().min(0).max(10_000).default(64)
      .describe('Verifications that may wait for a slot; beyond it the request gets 503 temporarily_unavailable with Retry-After'),
    per_client: z.number().int().min(1).max(10_000).default(8)
      .describe('Verifications running or waiting for one client_id; beyond it 503 temporarily_unavailable with Retry-After'),
    retry_after: z.number().int().min(1).max(3600).default(1).describe('Seconds in the Retry-After of that 503'),
    failures_per_minute: z.number().int().min(1).max(100_000).default(20)
      .describe('Failed secret checks one client_id may cost per minute, counted over every worker and node through gateway.store (and by a token bucket in each process); beyond it, secrets not already verified by that process get 429 temporarily_unavailable with Retry-After and no scrypt. A secret that verified before at that process still works'),
  }).prefault({}).describe('Bounds on client secret verification: concurrency and queues per process, the failure budget shared (a secret verified once is cached and a wrong one remembered for 10 minutes, per process: neither costs scrypt again)'),
  endpoints: z.strictObject({
    token: pathField('token endpoint (RFC 6749 §3.2)', DEFAULTS.tokenPath),
    introspection: pathField('introspection endpoint (RFC 7662)', DEFAULTS.introspectionPath),
    revocation: pathField('revocation endpoint (RFC 7009)', DEFAULTS.revocationPath),
    jwks: pathField('JWK Set (jwks_uri)', DEFAULTS.jwksPath),
  }).prefault({}).describe('Endpoint paths on the gateway\'s TLS listeners'),
  clients: z.array(clientSchema).default([]).describe('The registered clients'),
  dpop: dpopSchema,
}).superRefine(function checkCrossFields (cfg, ctx) {
  // issuer: RFC 8414 §2 (https, no query, no fragment)
  let issuer: URL | undefined
  try { issuer = new URL(cfg.issuer) } catch { /* reported below */ }
  if (issuer === undefined) ctx.addIssue({ code: 'custom', path: ['issuer'], message: `"${cfg.issuer}" is not a URL` })
  else if (issuer.protocol !== 'https:') ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'the issuer must be an https URL (RFC 8414 §2)' })
  else if (issuer.search !== '' || issuer.hash !== '' || issuer.username !== '' || cfg.issuer.endsWith('?') || cfg.issuer.endsWith('#')) {
    ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'the issuer may not carry a query, fragment or credentials (RFC 8414 §2)' })
  }
  if (cfg.signing_keys !== undefined && cfg.key_store !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['key_store'], message: 'use either signing_keys (PEM files) or key_store (generated keys), not both' })
  }
  const seenPaths = new Map<string, string>()
  for (const [k, p] of Object.entries(cfg.endpoints)) {
    if (p === undefined) continue
    if (p.startsWith('/.well-known/')) ctx.addIssue({ code: 'custom', path: ['endpoints', k], message: '/.well-known/ is reserved for the metadata documents' })
    if (seenPaths.has(p)) ctx.addIssue({ code: 'custom', path: ['endpoints', k], message: `${p} is already the ${seenPaths.get(p)} endpoint` })
    seenPaths.set(p, k)
  }
  const seenIds = new Map<string, number>()
  cfg.clients.forEach((c, i) => {
    const at = (...p: string[]) => ['clients', i, ...p]
    const prev = seenIds.get(c.client_id)
    if (prev !== undefined) ctx.addIssue({ code: 'custom', path: at('client_id'), message: `client_id "${c.client_id}" is already used by clients[${prev}]` })
    else seenIds.set(c.client_id, i)
    for (const s of c.scope.split(' ')) {
      if (s !== '' && !SCOPE_TOKEN.test(s)) ctx.addIssue({ code: 'custom', path: at('scope'), message: `"${s}" is not a valid scope token (RFC 6749 §3.3)` })
    }
    const m = c.token_endpoint_auth_method
    const subjectKeys = (['tls_client_auth_subject_dn', 'subject_dn_pattern', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email'] as const)
      .filter(k => c[k] !== undefined)
    const certKeys = (['certificate', 'jwks'] as const).filter(k => c[k] !== undefined)
    const secretKeys = (['client_secret', 'client_secret_hash'] as const).filter(k => c[k] !== undefined)
    const notFor = (keys: readonly string[]) => { for (const k of keys) ctx.addIssue({ code: 'custom', path: at(k), message: `${k} does not apply to ${m} clients` }) }
    if (m === 'tls_client_auth') {
      // RFC 8705 §2.1.2: exactly one of the subject metadata parameters
      if (subjectKeys.length === 0) {
        ctx.addIssue({ code: 'custom', path: at('token_endpoint_auth_method'), message: 'a tls_client_auth client needs one of tls_client_auth_subject_dn, subject_dn_pattern, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email (RFC 8705 §2.1.2)' })
      } else if (subjectKeys.length > 1) {
        ctx.addIssue({ code: 'custom', path: at(subjectKeys[1]), message: `use exactly one of ${subjectKeys.join(', ')} (RFC 8705 §2.1.2)` })
      }
      notFor(certKeys); notFor(secretKeys)
    } else if (m === 'self_signed_tls_client_auth') {
      if (certKeys.length === 0) ctx.addIssue({ code: 'custom', path: at('token_endpoint_auth_method'), message: 'a self_signed_tls_client_auth client needs certificate (PEM file) or jwks (with x5c) (RFC 8705 §2.2)' })
      else if (certKeys.length > 1) ctx.addIssue({ code: 'custom', path: at('jwks'), message: 'use either certificate or jwks, not both' })
      notFor(subjectKeys); notFor(secretKeys)
    } else {
      if (secretKeys.length === 0) ctx.addIssue({ code: 'custom', path: at('token_endpoint_auth_method'), message: `a ${m} client needs client_secret (e.g. \${{ env "NAME" }}) or client_secret_hash` })
      else if (secretKeys.length > 1) ctx.addIssue({ code: 'custom', path: at('client_secret_hash'), message: 'use either client_secret or client_secret_hash, not both' })
      notFor(subjectKeys); notFor(certKeys)
    }
    if (c.subject_dn_pattern !== undefined) {
      try { new RegExp(c.subject_dn_pattern) } catch (e) { ctx.addIssue({ code: 'custom', path: at('subject_dn_pattern'), message: `invalid regular expression: ${(e as Error).message}` }) }
    }
    if (c.tls_client_auth_subject_dn !== undefined && parseDn(c.tls_client_auth_subject_dn) === undefined) {
      ctx.addIssue({ code: 'custom', path: at('tls_client_auth_subject_dn'), message: 'is not an RFC 4514 distinguished name (e.g. CN=client1,O=Example Org)' })
    }
    if (c.client_secret_hash !== undefined && parseSecretHash(c.client_secret_hash) === undefined) {
      ctx.addIssue({ code: 'custom', path: at('client_secret_hash'), message: 'is not a hash from `certbound hash-secret` ($scrypt$ln=..,r=..,p=..$salt$hash)' })
    }
    if (c.tls_client_auth_san_ip !== undefined && canonicalIp(c.tls_client_auth_san_ip) === undefined) {
      ctx.addIssue({ code: 'custom', path: at('tls_client_auth_san_ip'), message: 'is not an IPv4 or IPv6 address' })
    }
    c.jwks?.keys.forEach((k, j) => k.x5c.forEach((b64, n) => {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) ctx.addIssue({ code: 'custom', path: [...at('jwks', 'keys'), j, 'x5c', n], message: 'x5c entries are base64 (not base64url) DER certificates' })
    }))
  })
})

export type AuthorizationServerConfig = z.output<typeof authorizationServerSchema>
export type ClientConfig = z.output<typeof clientSchema>

/** Canonical text of an IP address (IPv6 expanded, lower-case), or undefined. */
export function canonicalIp (s: string): string | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (v4 !== null) {
    const parts = v4.slice(1).map(Number)
    return parts.every(n => n <= 255) ? parts.join('.') : undefined
  }
  if (!s.includes(':') || !/^[0-9A-Fa-f:.]+$/.test(s)) return undefined
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string): string[] | undefined => {
    if (h === '') return []
    const out: string[] = []
    for (const g of h.split(':')) {
      if (g.includes('.')) {
        const v = canonicalIp(g)
        if (v === undefined) return undefined
        const [a, b, c, d] = v.split('.').map(Number)
        out.push(((a << 8) | b).toString(16), ((c << 8) | d).toString(16))
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) out.push(parseInt(g, 16).toString(16))
      else return undefined
    }
    return out
  }
  const head = groups(halves[0]); const tail = halves.length === 2 ? groups(halves[1]) : []
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  return [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail].join(':')
}
