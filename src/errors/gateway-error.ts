import { ERRORS, type ErrorCode } from './codes.js'

/**
 * Why a credential was refused, finer than its code: one stable code (CB_ERR_TOKEN_INVALID) covers every reason
 * RFC 6750 §3.1 lumps into `invalid_token`, and a shipped code never changes meaning, so the operator's finer
 * question ("expired, or a bad signature?") is answered by this sub-reason instead. It goes to the access log
 * (`err_cause`) and the admin dashboard, never to the client. Values are stable like codes: add, never rename.
 */
export type ErrCause =
  | 'expired' // exp passed (RFC 7519 §4.1.4), leeway included
  | 'not_yet_valid' // nbf / iat in the future (RFC 7519 §4.1.5)
  | 'signature' // no key of the issuer verifies the JWS signature (RFC 7515 §5.2)
  | 'unknown_key' // no key of the issuer's JWKS matches the header's kid/alg
  | 'algorithm' // alg outside the allow-list (RFC 8725 §3.1)
  | 'issuer' // iss is not an allowed issuer
  | 'audience' // aud lacks a required audience
  | 'claim' // another required claim missing or invalid
  | 'type' // not an access token (typ, RFC 8725 §3.11, RFC 9068 §2.1)
  | 'malformed' // not a JWS / b64token, or too long

export interface GatewayErrorOptions {
  /** Private detail for the log only; never sent to the client. */
  detail?: string
  /** Overrides the catalogue's client-facing message. */
  message?: string
  /** Overrides the catalogue's status. */
  status?: number
  /** Extra response headers (e.g. WWW-Authenticate). */
  headers?: Record<string, string>
  /** A full response body to send instead of `{"message": ...}`. */
  body?: string | Buffer
  contentType?: string
  cause?: unknown
  /** The stable sub-reason of the refusal, for the log and the dashboard (see ErrCause). */
  errCause?: ErrCause
  /** The RFC 6750 / RFC 9449 challenge parameters, so a plugin can re-issue them under the schemes its route accepts. */
  challenge?: ChallengeParams
}

/** `error`, `error_description` and `scope` of a WWW-Authenticate challenge (RFC 6750 §3, RFC 9449 §7.1). */
export interface ChallengeParams {
  readonly error?: string
  readonly description?: string
  readonly scope?: string
}

/**
 * An answer to untrusted input or an outside fault (IdP, upstream). Thrown by plugins from `access` to
 * short-circuit the chain; the runner turns it into the HTTP response. Programmer mistakes are TypeErrors.
 */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly detail: string | undefined
  readonly headers: Record<string, string> | undefined
  readonly body: string | Buffer | undefined
  readonly contentType: string | undefined
  readonly challenge: ChallengeParams | undefined
  readonly errCause: ErrCause | undefined

  constructor (code: ErrorCode, opts: GatewayErrorOptions = {}) {
    super(opts.message ?? ERRORS[code].message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GatewayError'
    this.code = code
    this.status = opts.status ?? ERRORS[code].status
    this.detail = opts.detail
    this.headers = opts.headers
    this.body = opts.body
    this.contentType = opts.contentType
    this.challenge = opts.challenge
    this.errCause = opts.errCause
  }
}

const REALM = 'certbound'

function quote (s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&').replace(/[^\x20-\x7e]/g, '') + '"'
}

/** RFC 6750 §3: the WWW-Authenticate challenge for a Bearer-protected resource. */
export function bearerChallenge (error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope', description?: string, scope?: string): string {
  let v = `Bearer realm=${quote(REALM)}`
  if (error !== undefined) v += `, error=${quote(error)}`
  if (description !== undefined) v += `, error_description=${quote(description)}`
  if (scope !== undefined) v += `, scope=${quote(scope)}`
  return v
}

/** 401 with no error code: the request carried no token at all (RFC 6750 §3.1). */
export function tokenMissing (detail?: string): GatewayError {
  return new GatewayError('CB_ERR_TOKEN_MISSING', { detail, headers: { 'www-authenticate': bearerChallenge() }, challenge: {} })
}

/** 401 invalid_token with a generic description; `detail` (the real reason) and `errCause` go to the log. */
export function invalidToken (detail: string, code: ErrorCode = 'CB_ERR_TOKEN_INVALID', errCause?: ErrCause): GatewayError {
  return new GatewayError(code, {
    detail,
    errCause,
    headers: { 'www-authenticate': bearerChallenge('invalid_token', 'The access token is invalid') },
    challenge: { error: 'invalid_token', description: 'The access token is invalid' },
  })
}

/** 400 invalid_request (e.g. two Authorization headers, RFC 6750 §2). */
export function invalidRequest (detail: string): GatewayError {
  return new GatewayError('CB_ERR_TOKEN_MULTIPLE', {
    detail,
    headers: { 'www-authenticate': bearerChallenge('invalid_request', 'The request is malformed') },
    challenge: { error: 'invalid_request', description: 'The request is malformed' },
  })
}

/** 403 insufficient_scope with the scope the resource needs (RFC 6750 §3.1). */
export function insufficientScope (required: string, detail: string): GatewayError {
  return new GatewayError('CB_ERR_INSUFFICIENT_SCOPE', {
    detail,
    headers: { 'www-authenticate': bearerChallenge('insufficient_scope', 'The access token lacks a required scope', required) },
    challenge: { error: 'insufficient_scope', description: 'The access token lacks a required scope', scope: required },
  })
}
