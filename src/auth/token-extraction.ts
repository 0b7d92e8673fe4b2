import { MULTIPLE, type RequestContext } from '../pipeline/context.js'
import { invalidRequest, invalidToken, tokenMissing } from '../errors/index.js'

/** The authentication schemes a token can arrive with: RFC 6750 Bearer, RFC 9449 DPoP. */
export type Scheme = 'bearer' | 'dpop'

export interface PresentedToken {
  readonly scheme: Scheme
  readonly token: string
}

export interface ExtractionOptions {
  /** Lower-case header carrying the token (default authorization). */
  readonly header?: string
  /** Accept `Authorization: Bearer` (false when DPoP is strict: RFC 9449 §7.2 lets a resource refuse it). */
  readonly bearer: boolean
  /** Accept `Authorization: DPoP`. */
  readonly dpop: boolean
}

/** RFC 6750 §2.1 b64token (RFC 9449 §7.1 uses the same token68 syntax). */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/** A second credential after a comma (`Bearer a, DPoP b`): RFC 9110 §11.6.2 allows lists, we allow one credential. */
const SECOND_CREDENTIAL = /,\s*(bearer|dpop)\s/i

/** Longest token accepted; longer ones are refused before any parsing (a 100 kB token is hostile input). */
export const MAX_TOKEN_LENGTH = 16 * 1024

function checked (token: string, scheme: Scheme): PresentedToken {
  if (token.length === 0) throw tokenMissing('empty token')
  if (token.length > MAX_TOKEN_LENGTH) throw invalidToken(`token of ${token.length} bytes exceeds ${MAX_TOKEN_LENGTH}`, undefined, 'malformed')
  if (!B64TOKEN.test(token)) throw invalidToken('token is not a RFC 6750 b64token', undefined, 'malformed')
  return { scheme, token }
}

/**
 * The token of a request and the scheme it came with. Scheme names are case-insensitive (RFC 9110 §11.1).
 * No header: 401 without error code. Two headers, or two credentials in one (`Bearer …, DPoP …`): 400
 * invalid_request. A scheme the route does not accept or a malformed value: 401.
 * A header other than Authorization holds the raw token (a `Bearer ` prefix is removed): always Bearer.
 */
export function extractToken (ctx: RequestContext, o: ExtractionOptions): PresentedToken {
  const header = o.header ?? 'authorization'
  const v = ctx.singleHeader(header)
  if (v === undefined) throw tokenMissing(`no ${header} header`)
  if (v === MULTIPLE) throw invalidRequest(`more than one ${header} header`)
  const sp = v.indexOf(' ')
  const scheme = sp < 0 ? '' : v.slice(0, sp).toLowerCase()
  if (header !== 'authorization') {
    return checked(scheme === 'bearer' ? v.slice(sp + 1).trim() : v, 'bearer')
  }
  if (SECOND_CREDENTIAL.test(v)) throw invalidRequest('more than one credential in the authorization header')
  if (scheme === 'bearer') {
    if (!o.bearer) throw invalidToken('the route accepts DPoP-bound tokens only (proof_of_possession_dpop: strict) and the token was sent as Bearer', 'CB_ERR_TOKEN_BINDING_MISMATCH')
    return checked(v.slice(sp + 1).trim(), 'bearer')
  }
  if (scheme === 'dpop' && o.dpop) return checked(v.slice(sp + 1).trim(), 'dpop')
  throw tokenMissing(`the authorization header is not a ${o.dpop ? (o.bearer ? 'Bearer or DPoP' : 'DPoP') : 'Bearer'} credential`)
}
