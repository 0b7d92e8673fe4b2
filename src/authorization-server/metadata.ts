import { AUTH_METHODS } from './schema.js'

/** Absolute endpoint URLs, derived from the issuer's origin and the endpoint paths. */
export interface EndpointUrls {
  readonly token: string
  readonly introspection: string
  readonly revocation: string
  readonly jwks: string
}

/**
 * The RFC 8414 authorization server metadata document (also served as OpenID discovery). All endpoints live
 * on the gateway's TLS listeners, so the RFC 8705 §5 mTLS aliases are the endpoints themselves: clients that
 * prefer `mtls_endpoint_aliases` (openid-client's `useMtlsAlias`) land in the same place.
 */
export function buildMetadata (issuer: string, urls: EndpointUrls, scopes: Iterable<string>, dpopAlgs: readonly string[] = []): Readonly<Record<string, unknown>> {
  const methods = [...AUTH_METHODS]
  return Object.freeze({
    issuer,
    token_endpoint: urls.token,
    introspection_endpoint: urls.introspection,
    revocation_endpoint: urls.revocation,
    jwks_uri: urls.jwks,
    grant_types_supported: ['client_credentials'],
    // RFC 8414 §2 makes this REQUIRED; there is no authorization endpoint, so no response type is supported
    response_types_supported: [],
    token_endpoint_auth_methods_supported: methods,
    introspection_endpoint_auth_methods_supported: methods,
    revocation_endpoint_auth_methods_supported: methods,
    scopes_supported: [...new Set(scopes)].sort(),
    tls_client_certificate_bound_access_tokens: true,
    // RFC 9449 §5.1
    ...(dpopAlgs.length > 0 ? { dpop_signing_alg_values_supported: [...dpopAlgs] } : {}),
    mtls_endpoint_aliases: {
      token_endpoint: urls.token,
      introspection_endpoint: urls.introspection,
      revocation_endpoint: urls.revocation,
    },
  })
}
