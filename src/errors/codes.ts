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
  CB_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  CB_ERR_REQUEST_TIMEOUT: { status: 408, message: 'Request timeout' },
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

/**
 * Configuration problems (`certbound validate`, a refused reload, POST /config): each diagnostic names the file,
 * line, column and key path with one of these codes. The text is what the code means, for the generated docs.
 */
export const CONFIG_ERRORS = {
  CB_CFG_YAML: 'the file is not valid YAML (or expands more than 100 aliases)',
  CB_CFG_FILE: 'a file the config names cannot be read or created (paths are relative to the config file)',
  CB_CFG_PEM: 'a certificate or key file does not hold what the key needs (no PEM block, a key that does not match its certificate, not a CA)',
  CB_CFG_ENV: 'an ${{ env "NAME" }} variable is not set',
  CB_CFG_TYPE: 'a value has the wrong type',
  CB_CFG_REQUIRED: 'a required key is missing',
  CB_CFG_INVALID: 'a value is not allowed (an address, a regex, a CIDR, an enum value, a combination of keys)',
  CB_CFG_RANGE: 'a number or length is outside its bounds',
  CB_CFG_UNKNOWN_FIELD: 'a key the schema does not know (with a "did you mean" hint)',
  CB_CFG_UNKNOWN_PLUGIN: 'a plugin name that is not installed',
  CB_CFG_DUPLICATE: 'a name or address used twice (a service, a route, a plugin in one scope, a listener), or a route named like an internal route',
  CB_CFG_REFERENCE: 'a route or service referenced by name does not exist',
  CB_CFG_CONFLICT: 'a route path that an internal route (the authorization server\'s endpoints) already serves',
  CB_CFG_CHAIN: 'a plugin reads the verified credential but no token plugin runs before it on the route',
  CB_CFG_PLUGIN: 'a plugin could not be created from its (valid) config',
  CB_CFG_SECTION: 'a top-level section (authorization_server) could not be created from its (valid) config',
  CB_CFG_NO_TLS_LISTENER: 'a plugin needs the client certificate but no listener has tls (a Kong file has no listeners)',
  CB_CFG_UNSUPPORTED: 'a Kong entity or key certbound does not implement (refused with the reason, never ignored)',
} as const satisfies Record<string, string>

export type ConfigErrorCode = keyof typeof CONFIG_ERRORS
