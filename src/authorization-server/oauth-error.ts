import type { IncomingMessage, ServerResponse } from 'node:http'

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

/** True if the request announced a body we did not read: the connection can't be reused safely then. */
function unreadBody (req: IncomingMessage, bodyRead: boolean): boolean {
  if (bodyRead) return false
  const cl = req.headers['content-length']
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined
}

export function sendJson (req: IncomingMessage, res: ServerResponse, status: number, body: unknown, opts: { headers?: Record<string, string>, bodyRead?: boolean, noStore?: boolean } = {}): void {
  const text = JSON.stringify(body)
  const headers: Record<string, string | number> = {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(text),
    ...(opts.noStore === false ? {} : NO_STORE),
    ...opts.headers,
  }
  if (unreadBody(req, opts.bodyRead === true) && !req.complete) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(req.method === 'HEAD' ? undefined : text)
}

export function sendOAuthError (req: IncomingMessage, res: ServerResponse, err: OAuthError, bodyRead: boolean): void {
  const headers: Record<string, string> = { ...err.opts.headers }
  // RFC 6749 §5.2: a client that tried the Authorization header gets a challenge for the scheme we take
  if (err.opts.basicChallenge === true) headers['www-authenticate'] = 'Basic realm="certbound", charset="UTF-8"'
  sendJson(req, res, err.status, { error: err.error, error_description: err.description }, { headers, bodyRead })
}

/** 405 with Allow (RFC 9110 §15.5.6). */
export function sendMethodNotAllowed (req: IncomingMessage, res: ServerResponse, allow: string): void {
  sendJson(req, res, 405, { error: 'invalid_request', error_description: `use ${allow.split(', ')[0]}` }, { headers: { allow } })
}
