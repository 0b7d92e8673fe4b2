import type { JSONWebKeySet } from 'jose'
import { GatewayError, invalidToken } from '../errors/gateway-error.js'
import { ServiceKey } from './services.js'

/**
 * An authorization server living in this process (the built-in one). Token plugins whose `issuer` or
 * introspection endpoint points at it use it directly: no HTTP round trip to ourselves, and no start-up
 * deadlock waiting for our own discovery document. Registered in `deps.local` under `localIssuerKey(issuer)`.
 */
export interface LocalIssuer {
  readonly issuer: string
  /** The RFC 8414 metadata document. */
  metadata(): Readonly<Record<string, unknown>>
  /** The public signing keys (all keys still valid for verification). */
  jwks(): JSONWebKeySet
  /** RFC 7662 introspection, as if called by an authenticated resource server. */
  introspect(token: string): Promise<Record<string, unknown>>
  /**
   * Has this issuer revoked the token with this `jti` (RFC 7009)? From the shared store's local replica: true,
   * false, or undefined when it cannot tell now (the caller fails closed: see {@link localRevocation}).
   */
  isRevoked?(jti: string): boolean | undefined
}

/**
 * For a plugin that validated `claims` itself: 'revoked' when the in-process issuer that issued them revoked the
 * token, 'unknown' when that cannot be decided now (fail closed: 503), undefined otherwise — also for tokens of
 * other issuers, whose revocation only their introspection can tell.
 */
export function localRevocation (local: LocalIssuer | undefined, claims: Readonly<Record<string, unknown>>): 'revoked' | 'unknown' | undefined {
  if (local?.isRevoked === undefined || typeof claims.jti !== 'string' || claims.iss !== local.issuer) return undefined
  const r = local.isRevoked(claims.jti)
  return r === true ? 'revoked' : r === undefined ? 'unknown' : undefined
}

/** The key of the in-process issuer whose identifier is `issuer` (a trailing slash does not matter). */
export function localIssuerKey (issuer: string): ServiceKey<LocalIssuer> {
  return new ServiceKey('issuer:' + issuer.replace(/\/+$/, ''))
}

/** The key of the in-process issuer that serves the introspection endpoint at `url` (RFC 7662). */
export function localIntrospectionKey (url: string): ServiceKey<LocalIssuer> {
  return new ServiceKey('introspection:' + url)
}

/** {@link localRevocation} as the token plugins answer it: 401 CB_ERR_TOKEN_REVOKED, or 503 CB_ERR_STORE_UNAVAILABLE. */
export function assertNotRevokedLocally (local: LocalIssuer | undefined, claims: Readonly<Record<string, unknown>>): void {
  const r = localRevocation(local, claims)
  if (r === 'revoked') throw invalidToken('the token was revoked at the built-in authorization server (RFC 7009)', 'CB_ERR_TOKEN_REVOKED')
  if (r === 'unknown') throw new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: 'the built-in authorization server cannot confirm its revocation set (gateway.store unreachable beyond replica_max_age)' })
}
