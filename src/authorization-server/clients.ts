import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { PeerCertificate } from '../server/peer.js'
import type { PathKey } from '../config/diagnostic.js'
import { canonicalIp, type AuthMethod, type ClientConfig } from './schema.js'
import { certificateSubject, dnEquals, parseDn } from './distinguished-name.js'
import { parseSecretHash, type SecretHash } from './secret-hash.js'
import type { ConfigErrorCode } from '../errors/codes.js'

/**
 * RFC 8705 §3: when tokens are bound. `required`: every token is bound (no certificate → refused);
 * `if-presented`: bound when the TLS session has a certificate (secret clients, by default); `never`.
 */
export type Binding = 'required' | 'if-presented' | 'never'

/** tls_client_auth (RFC 8705 §2.1.2): does the certificate carry the registered subject? */
export interface SubjectMatcher {
  /** For logs: `tls_client_auth_subject_dn=CN=client1,O=Example Org`. */
  readonly describe: string
  matches(cert: PeerCertificate): boolean
}

/** A client, compiled at load: everything the token endpoint needs, precomputed and frozen. */
export interface CompiledClient {
  readonly id: string
  readonly name: string | undefined
  readonly method: AuthMethod
  readonly grantTypes: ReadonlySet<string>
  /** Allowed scopes, in configured order (granted in this order when the request has no scope). */
  readonly scopes: readonly string[]
  readonly scopeSet: ReadonlySet<string>
  readonly ttl: number
  readonly resources: ReadonlySet<string>
  readonly introspection: boolean
  readonly binding: Binding
  /** RFC 9449 §5.2 dpop_bound_access_tokens: a proof is required at the token endpoint. */
  readonly dpopBound: boolean
  readonly subject: SubjectMatcher | undefined
  /** self_signed_tls_client_auth: the registered certificates. */
  readonly selfSigned: readonly X509Certificate[]
  readonly secret: string | undefined
  readonly secretHash: SecretHash | undefined
}

/** A problem found while compiling (a file that doesn't read), at its path inside the section. */
export interface ConfigProblem { readonly path: PathKey[], readonly message: string, readonly code: ConfigErrorCode }

export interface CompileClientsOptions {
  readonly resolvePath: (p: string) => string
  readonly defaultTtl: number
  readonly defaultResources: readonly string[]
  readonly problems: ConfigProblem[]
  readonly warn: (msg: string, fields?: Record<string, unknown>) => void
}

export function compileClients (configs: readonly ClientConfig[], o: CompileClientsOptions): ReadonlyMap<string, CompiledClient> {
  const out = new Map<string, CompiledClient>()
  configs.forEach((c, i) => {
    const at = (...p: PathKey[]): PathKey[] => ['clients', i, ...p]
    const isCert = c.token_endpoint_auth_method === 'tls_client_auth' || c.token_endpoint_auth_method === 'self_signed_tls_client_auth'
    const flag = c.tls_client_certificate_bound_access_tokens
    const binding: Binding = flag === false ? 'never' : (flag === true || isCert ? 'required' : 'if-presented')
    const scopes = [...new Set(c.scope.split(' ').filter(s => s !== ''))]
    let selfSigned: X509Certificate[] = []
    if (c.token_endpoint_auth_method === 'self_signed_tls_client_auth') {
      selfSigned = c.certificate !== undefined
        ? readCertificates(o.resolvePath(c.certificate), c.certificate, at('certificate'), o.problems)
        : jwksCertificates(c.jwks?.keys ?? [], at('jwks', 'keys'), o.problems)
      const now = Date.now()
      for (const cert of selfSigned) {
        if (Date.parse(cert.validTo) < now) o.warn('a registered self-signed client certificate has expired', { client_id: c.client_id, valid_to: cert.validTo })
      }
    }
    if (c.client_secret !== undefined && c.client_secret.length < 16) {
      o.warn('client_secret is shorter than 16 characters: use a long random secret', { client_id: c.client_id })
    }
    out.set(c.client_id, Object.freeze({
      id: c.client_id,
      name: c.client_name,
      method: c.token_endpoint_auth_method,
      grantTypes: new Set(c.grant_types),
      scopes: Object.freeze(scopes),
      scopeSet: new Set(scopes),
      ttl: c.access_token_ttl ?? o.defaultTtl,
      resources: new Set(c.resources ?? o.defaultResources),
      introspection: c.introspection,
      dpopBound: c.dpop_bound_access_tokens,
      binding,
      subject: c.token_endpoint_auth_method === 'tls_client_auth' ? subjectMatcher(c) : undefined,
      selfSigned: Object.freeze(selfSigned),
      secret: c.client_secret,
      secretHash: c.client_secret_hash === undefined ? undefined : parseSecretHash(c.client_secret_hash),
    }))
  })
  return out
}

/** RFC 8705 §2.1.2: exactly one of the subject parameters (the schema enforces "exactly one"). */
function subjectMatcher (c: ClientConfig): SubjectMatcher {
  if (c.tls_client_auth_subject_dn !== undefined) {
    const want = parseDn(c.tls_client_auth_subject_dn)!
    return { describe: `tls_client_auth_subject_dn=${c.tls_client_auth_subject_dn}`, matches: cert => dnEquals(certificateSubject(cert.x509), want) }
  }
  if (c.subject_dn_pattern !== undefined) {
    // Keycloak's x509.subjectdn: the pattern must match the whole RFC 4514 subject
    const re = new RegExp(`^(?:${c.subject_dn_pattern})$`)
    return { describe: `subject_dn_pattern=${c.subject_dn_pattern}`, matches: cert => re.test(cert.subject) }
  }
  if (c.tls_client_auth_san_dns !== undefined) {
    const want = c.tls_client_auth_san_dns.toLowerCase()
    return { describe: `tls_client_auth_san_dns=${want}`, matches: cert => cert.subjectAltNames.dns.some(d => d.toLowerCase() === want) }
  }
  if (c.tls_client_auth_san_uri !== undefined) {
    const want = c.tls_client_auth_san_uri
    return { describe: `tls_client_auth_san_uri=${want}`, matches: cert => cert.subjectAltNames.uri.includes(want) }
  }
  if (c.tls_client_auth_san_ip !== undefined) {
    const want = canonicalIp(c.tls_client_auth_san_ip)
    return { describe: `tls_client_auth_san_ip=${c.tls_client_auth_san_ip}`, matches: cert => cert.subjectAltNames.ip.some(ip => canonicalIp(ip) === want) }
  }
  if (c.tls_client_auth_san_email !== undefined) {
    const want = canonicalEmail(c.tls_client_auth_san_email)
    return { describe: `tls_client_auth_san_email=${c.tls_client_auth_san_email}`, matches: cert => cert.subjectAltNames.email.some(e => canonicalEmail(e) === want) }
  }
  throw new TypeError(`client ${c.client_id}: tls_client_auth without a subject parameter passed validation`)
}

/** The local part of an address is case-sensitive (RFC 5321 §2.4), the domain is not. */
function canonicalEmail (e: string): string {
  const at = e.lastIndexOf('@')
  return at < 0 ? e : e.slice(0, at) + '@' + e.slice(at + 1).toLowerCase()
}

/** Certificates from a PEM file; problems are reported at `path`. */
export function readCertificates (file: string, shown: string, path: PathKey[], problems: ConfigProblem[]): X509Certificate[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    problems.push({ path, code: 'CB_CFG_FILE', message: `cannot read ${shown}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (paths are resolved relative to the config file)` })
    return []
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) {
    problems.push({ path, code: 'CB_CFG_PEM', message: `${shown} holds no PEM certificate (BEGIN CERTIFICATE)` })
    return []
  }
  const out: X509Certificate[] = []
  for (const [i, b] of blocks.entries()) {
    try { out.push(new X509Certificate(b)) } catch (e) { problems.push({ path, code: 'CB_CFG_PEM', message: `${shown}: certificate ${i + 1} is malformed: ${(e as Error).message}` }) }
  }
  return out
}

function jwksCertificates (keys: ReadonlyArray<{ x5c: string[] }>, path: PathKey[], problems: ConfigProblem[]): X509Certificate[] {
  const out: X509Certificate[] = []
  keys.forEach((k, j) => {
    // RFC 7517 §4.7: the key's own certificate comes first; the rest is its chain
    try { out.push(new X509Certificate(Buffer.from(k.x5c[0], 'base64'))) } catch (e) {
      problems.push({ path: [...path, j, 'x5c', 0], code: 'CB_CFG_PEM', message: `not a DER certificate: ${(e as Error).message}` })
    }
  })
  return out
}
