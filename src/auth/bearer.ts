import { MULTIPLE, type RequestContext } from '../pipeline/context.js'
import { invalidRequest, tokenMissing, invalidToken } from '../errors/index.js'

/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/** Longest token accepted; longer ones are refused before any parsing (a 100 kB token is hostile input). */
export const MAX_TOKEN_LENGTH = 16 * 1024

/**
 * The bearer token of a request (RFC 6750 §2.1), from `header` (default Authorization).
 * No header: 401 without error code. Two headers (even identical): 400 invalid_request.
 * Wrong scheme or malformed value: 401 invalid_token.
 */
export function bearerToken (ctx: RequestContext, header = 'authorization'): string {
  const v = ctx.singleHeader(header)
  if (v === undefined) throw tokenMissing(`no ${header} header`)
  if (v === MULTIPLE) throw invalidRequest(`more than one ${header} header`)
  let token = v
  if (header === 'authorization' || /^bearer\s/i.test(v)) {
    const sp = v.indexOf(' ')
    if (sp < 0 || v.slice(0, sp).toLowerCase() !== 'bearer') {
      if (header === 'authorization') throw tokenMissing('authorization header is not a Bearer credential')
    } else token = v.slice(sp + 1).trim()
  }
  if (token.length === 0) throw tokenMissing('empty bearer token')
  if (token.length > MAX_TOKEN_LENGTH) throw invalidToken(`token of ${token.length} bytes exceeds ${MAX_TOKEN_LENGTH}`)
  if (!B64TOKEN.test(token)) throw invalidToken('token is not a RFC 6750 b64token')
  return token
}
