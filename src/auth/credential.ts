import type { Credential } from '../pipeline/context.js'
import { parseCnf } from './cnf.js'

/** Headers Callista's token-introspection sets upstream for a passing request. */
export const CREDENTIAL_HEADERS = [
  'x-credential-scope', 'x-credential-client-id', 'x-credential-token-type', 'x-credential-exp',
  'x-credential-iat', 'x-credential-nbf', 'x-credential-sub', 'x-credential-aud', 'x-credential-iss',
  'x-credential-jti',
] as const

function str (v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  return undefined
}

/**
 * Build a Credential from verified claims (JWT payload or RFC 7662 response). RFC names first,
 * Keycloak's as fallback (`clientId`/`azp`, `typ`).
 */
export function credentialFromClaims (token: string, claims: Readonly<Record<string, unknown>>, verifiedBy: string): Credential {
  const scope = typeof claims.scope === 'string'
    ? claims.scope
    : Array.isArray(claims.scp) ? claims.scp.filter((s): s is string => typeof s === 'string').join(' ') : ''
  const scopes = scope === '' ? [] : scope.split(' ').filter(s => s !== '')
  const cnf = parseCnf(claims)
  return {
    token,
    claims,
    sub: str(claims.sub),
    clientId: str(claims.client_id) ?? str(claims.clientId) ?? str(claims.azp),
    scope: scopes.join(' '),
    scopes,
    // RFC 7662 token_type, or Keycloak's typ claim; a JWT has neither (its JOSE typ is at+jwt, RFC 9068 §2.1): it was
    // presented under the Bearer scheme (RFC 6750 §2.1), so X-Credential-Token-Type is sent on every token path
    tokenType: str(claims.token_type) ?? str(claims.typ) ?? 'Bearer',
    cnfX5tS256: cnf?.['x5t#S256'],
    cnf: cnf ?? undefined,
    verifiedBy,
  }
}

/**
 * Callista's X-Credential-* headers for a credential, as [name, value] pairs (empty values left out). Token
 * plugins compute them once per verified token and replay them on cache hits; the client's copies were stripped
 * gateway-wide.
 */
export function credentialHeaders (c: Credential): Array<readonly [string, string]> {
  const cl = c.claims
  const out: Array<readonly [string, string]> = []
  const add = (h: string, v: string | undefined): void => { if (v !== undefined && v !== '') out.push([h, sanitize(v)]) }
  add('x-credential-scope', c.scope)
  add('x-credential-client-id', c.clientId)
  add('x-credential-token-type', c.tokenType)
  add('x-credential-exp', str(cl.exp))
  add('x-credential-iat', str(cl.iat))
  add('x-credential-nbf', str(cl.nbf))
  add('x-credential-sub', c.sub)
  add('x-credential-aud', Array.isArray(cl.aud) ? cl.aud.filter(a => typeof a === 'string').join(' ') : str(cl.aud))
  add('x-credential-iss', str(cl.iss))
  add('x-credential-jti', str(cl.jti))
  return out
}

/** A claim value as a header value: strings as-is, others as JSON; control characters removed. */
export function claimHeaderValue (v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  const s = typeof v === 'string' ? v : (typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v))
  return sanitize(s)
}

/** Header values may not carry CR/LF or other control characters (header injection). */
export function sanitize (s: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]/.test(s) ? s.replace(/[\x00-\x1f\x7f]/g, '') : s
}
