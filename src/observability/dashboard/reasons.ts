import { ERRORS } from '../../errors/codes.js'
import type { ErrCause } from '../../errors/gateway-error.js'

/**
 * What an operator calls each refusal, by its stable error code (src/errors/codes.ts). The codes are what the
 * access log records; a code added later without a label here shows under its own name, never disappears.
 * Labels for codes other branches are adding (rate limiting, DPoP, the store, Kong consumers) are here already.
 * Client-facing messages stay generic (RFC 6750 §3.1); this page is for the operator, behind admin_allow.
 */
const LABELS: Readonly<Record<string, string>> = {
  CB_ERR_TOKEN_BINDING_MISMATCH: 'binding mismatch (token bound to another certificate)',
  CB_ERR_TOKEN_INVALID: 'invalid token',
  CB_ERR_TOKEN_INACTIVE: 'inactive token (expired or revoked, per introspection)',
  CB_ERR_TOKEN_MISSING: 'no access token',
  CB_ERR_TOKEN_MULTIPLE: 'more than one access token',
  CB_ERR_INSUFFICIENT_SCOPE: 'insufficient scope',
  CB_ERR_CERT_MISSING: 'no client certificate',
  CB_ERR_CERT_INVALID: 'client certificate refused',
  CB_ERR_RATE_LIMITED: 'rate limited',
  CB_ERR_RATE_LIMIT_STORE: 'rate limit store failed',
  CB_ERR_TOKEN_REVOKED: 'revoked token',
  CB_ERR_DPOP_PROOF_INVALID: 'invalid DPoP proof',
  CB_ERR_DPOP_PROOF_MULTIPLE: 'more than one DPoP proof',
  CB_ERR_DPOP_REPLAY: 'DPoP proof replayed',
  CB_ERR_DPOP_NONCE_REQUIRED: 'DPoP nonce required',
  CB_ERR_ACL_FORBIDDEN: 'forbidden by ACL',
  CB_ERR_NOT_AUTHENTICATED: 'not authenticated',
  CB_ERR_CONSUMER_NOT_FOUND: 'no consumer for the credential',
  CB_ERR_STORE_UNAVAILABLE: 'store unavailable',
  CB_ERR_NO_ROUTE: 'no route matched',
  CB_ERR_BAD_REQUEST: 'malformed request',
  CB_ERR_BAD_PATH: 'invalid path',
  CB_ERR_HEADER_TOO_LARGE: 'headers too large',
  CB_ERR_BODY_TOO_LARGE: 'body too large',
  CB_ERR_TERMINATED: 'gateway stopping',
  CB_ERR_IDP_UNAVAILABLE: 'identity provider unavailable',
  CB_ERR_UPSTREAM_UNAVAILABLE: 'upstream unavailable',
  CB_ERR_UPSTREAM_TIMEOUT: 'upstream timeout',
  CB_ERR_INTERNAL: 'internal error',
}

/**
 * The sub-reasons under a code (GatewayError.errCause), as an operator says them. Under CB_ERR_TOKEN_INVALID the
 * sub-reason is the whole story ("token expired"); under another code it qualifies the code's label.
 */
const CAUSE_LABELS: Readonly<Record<ErrCause, string>> = {
  expired: 'token expired',
  not_yet_valid: 'token not yet valid (nbf)',
  signature: 'invalid signature',
  unknown_key: 'signing key not found (kid)',
  algorithm: 'algorithm not allowed',
  issuer: 'wrong issuer',
  audience: 'wrong audience',
  claim: 'invalid claim',
  type: 'not an access token (typ)',
  malformed: 'malformed token',
}

/** Prefix of refusals counted at the TLS handshake (no HTTP request, so no error code): `CB_TLS_<reason>`. */
export const TLS_REFUSAL_PREFIX = 'CB_TLS_'

export function reasonLabel (code: string, cause?: string): string {
  if (cause !== undefined) {
    const c = (CAUSE_LABELS as Readonly<Record<string, string>>)[cause] ?? cause
    return code === 'CB_ERR_TOKEN_INVALID' ? c : `${reasonLabel(code)}: ${c}`
  }
  const l = LABELS[code]
  if (l !== undefined) return l
  if (code.startsWith(TLS_REFUSAL_PREFIX)) return `TLS handshake refused: ${code.slice(TLS_REFUSAL_PREFIX.length).replace(/_/g, ' ').toLowerCase()}`
  return code
}

/** The HTTP status a code answers with (undefined for TLS refusals and codes this build does not know). */
export function reasonStatus (code: string): number | undefined {
  return (ERRORS as Readonly<Record<string, { status: number } | undefined>>)[code]?.status
}
