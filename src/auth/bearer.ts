import type { RequestContext } from '../pipeline/context.js'
import { extractToken } from './token-extraction.js'

export { MAX_TOKEN_LENGTH } from './token-extraction.js'

/**
 * The bearer token of a request (RFC 6750 §2.1), from `header` (default Authorization).
 * No header: 401 without error code. Two headers (even identical): 400 invalid_request.
 * Wrong scheme or malformed value: 401 invalid_token.
 */
export function bearerToken (ctx: RequestContext, header = 'authorization'): string {
  return extractToken(ctx, { header, bearer: true, dpop: false }).token
}
