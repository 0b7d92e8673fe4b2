import type { JSONWebKeySet } from 'jose'

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
}

export function localIssuerKey (issuer: string): string {
  return 'issuer:' + issuer.replace(/\/+$/, '')
}

/** Same key for an introspection endpoint URL served by the local issuer. */
export function localIntrospectionKey (url: string): string {
  return 'introspection:' + url
}
