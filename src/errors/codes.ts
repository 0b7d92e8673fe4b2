/**
 * The one catalogue of error codes. A shipped code never changes meaning; tests assert on codes.
 * `status` is the HTTP status the gateway answers with; `message` is the client-facing text
 * (deliberately generic for authentication failures: the specific reason goes to the log only).
 */
export const ERRORS = {
  // routing and request shape
  CB_ERR_NO_ROUTE: { status: 404, message: 'no Route matched with those values' },
  CB_ERR_BAD_REQUEST: { status: 400, message: 'Bad request' },
  CB_ERR_BAD_PATH: { status: 400, message: 'Bad request: invalid path' },
  CB_ERR_HEADER_TOO_LARGE: { status: 431, message: 'Request header fields too large' },
  CB_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },
  CB_ERR_TERMINATED: { status: 503, message: 'Service unavailable' },
  // RFC 6750 §3.1
  CB_ERR_TOKEN_MISSING: { status: 401, message: 'Unauthorized' },
  CB_ERR_TOKEN_INVALID: { status: 401, message: 'The access token is invalid' },
  CB_ERR_TOKEN_MULTIPLE: { status: 400, message: 'More than one access token was sent' },
  CB_ERR_TOKEN_BINDING_MISMATCH: { status: 401, message: 'The access token is invalid' },
  CB_ERR_TOKEN_INACTIVE: { status: 401, message: 'The access token is invalid' },
  CB_ERR_INSUFFICIENT_SCOPE: { status: 403, message: 'Insufficient scope' },
  CB_ERR_IDP_UNAVAILABLE: { status: 503, message: 'The authorization server is unavailable' },
  // RFC 9449 §7.1 / §8
  CB_ERR_DPOP_PROOF_INVALID: { status: 401, message: 'The DPoP proof is invalid' },
  CB_ERR_DPOP_PROOF_MULTIPLE: { status: 400, message: 'More than one DPoP proof was sent' },
  CB_ERR_DPOP_REPLAY: { status: 401, message: 'The DPoP proof is invalid' },
  CB_ERR_DPOP_NONCE_REQUIRED: { status: 401, message: 'A DPoP nonce is required' },
  CB_ERR_TOKEN_REVOKED: { status: 401, message: 'The access token is invalid' },
  // shared state (gateway.store): a decision that needs it fails closed
  CB_ERR_STORE_UNAVAILABLE: { status: 503, message: 'Service unavailable' },
  // mTLS (Kong's mtls-auth messages, which users already match on)
  CB_ERR_CERT_MISSING: { status: 401, message: 'No required TLS certificate was sent' },
  CB_ERR_CERT_INVALID: { status: 401, message: 'TLS certificate failed verification' },
  // upstream
  CB_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'An invalid response was received from the upstream server' },
  CB_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream server is timing out' },
  // rate-limiting (Kong's answers)
  CB_ERR_RATE_LIMITED: { status: 429, message: 'API rate limit exceeded' },
  CB_ERR_RATE_LIMIT_STORE: { status: 500, message: 'An unexpected error occurred' },
  CB_ERR_INTERNAL: { status: 500, message: 'An unexpected error occurred' },
  // consumers (Kong's acl)
  CB_ERR_ACL_FORBIDDEN: { status: 403, message: 'You cannot consume this service' },
  CB_ERR_NOT_AUTHENTICATED: { status: 401, message: 'Unauthorized' },
  CB_ERR_CONSUMER_NOT_FOUND: { status: 403, message: 'Forbidden' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS
