import { jsonResponse } from '../errors/respond.js'
import type { TerminalResponse } from '../pipeline/types.js'

/**
 * RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2, RFC 9449 §5/§8 error codes; `temporarily_unavailable` (RFC 6749
 * §4.1.2.1, defined for the authorization endpoint, used as widely for the token endpoint) with 503 and Retry-After
 * when client secret checks are saturated.
 */
export type OAuthErrorCode =
  | 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unauthorized_client'
  | 'unsupported_grant_type' | 'invalid_scope' | 'invalid_target' | 'unsupported_token_type'
  | 'invalid_dpop_proof' | 'use_dpop_nonce'
  | 'temporarily_unavailable'

/**
 * An OAuth error answer. `description` goes to the client (error_description); `detail` to the log only —
 * client authentication failures stay generic on the wire (STYLE.md: auth errors are generic, reasons logged).
 */
export class OAuthError extends Error {
  readonly status: number
  constructor (
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly opts: { detail?: string, status?: number, basicChallenge?: boolean, headers?: Record<string, string> } = {},
  ) {
    super(description)
    this.name = 'OAuthError'
    // RFC 6749 §5.2: invalid_client is 401; everything else 400
    this.status = opts.status ?? (error === 'invalid_client' ? 401 : 400)
  }
}

/** Headers every token-bearing or error response carries (RFC 6749 §5.1). */
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const

/** RFC 6749 §5.1's media type, as the authorization server has always sent it. */
const OAUTH_JSON = 'application/json;charset=UTF-8'

/** An authorization-server JSON answer (written by the core's one writer, after the response phase). */
export function oauthJson (status: number, body: unknown, opts: { headers?: Record<string, string>, noStore?: boolean } = {}): TerminalResponse {
  return jsonResponse(status, body, { 'content-type': OAUTH_JSON, ...(opts.noStore === false ? { 'cache-control': 'public, max-age=300' } : NO_STORE), ...opts.headers })
}

/** An empty 200 (RFC 7009 §2.2). */
export function emptyOk (): TerminalResponse {
  return { status: 200, headers: { ...NO_STORE } }
}

export function oauthErrorResponse (err: OAuthError): TerminalResponse {
  const headers: Record<string, string> = { ...err.opts.headers }
  // RFC 6749 §5.2: a client that tried the Authorization header gets a challenge for the scheme we take
  if (err.opts.basicChallenge === true) headers['www-authenticate'] = 'Basic realm="certbound", charset="UTF-8"'
  return oauthJson(err.status, { error: err.error, error_description: err.description }, { headers })
}

/** 405 with Allow (RFC 9110 §15.5.6). */
export function methodNotAllowed (allow: string): TerminalResponse {
  return oauthJson(405, { error: 'invalid_request', error_description: `use ${allow.split(', ')[0]}` }, { headers: { allow } })
}
