import type { RequestContext } from '../pipeline/context.js'
import type { TerminalResponse } from '../pipeline/types.js'
import { readFormBody, type FormParams } from './form-body.js'
import { OAuthError, methodNotAllowed, oauthErrorResponse, oauthJson } from './oauth-error.js'

/** A form-POST endpoint's own work, once method, content type and body are checked. */
export type FormHandler = (ctx: RequestContext, params: FormParams) => Promise<TerminalResponse>

/**
 * The shared front of the token, introspection and revocation endpoints (an internal route's terminal handler):
 * POST only (405 + Allow), parameters in a form body only (RFC 6749 §3.2: never in the URI, where they would be
 * logged), body size limited, OAuthError → RFC 6749 §5.2 JSON, anything else → 500 without detail.
 */
export async function serveForm (ctx: RequestContext, endpoint: string, maxBody: number, handler: FormHandler): Promise<TerminalResponse> {
  // RFC 6749 §3.2: TLS is required (and client certificates need it anyway)
  if (!ctx.listenerTls) return oauthJson(400, { error: 'invalid_request', error_description: 'the authorization server is served over https only' })
  if (ctx.method !== 'POST') return methodNotAllowed('POST')
  try {
    if (ctx.query !== '') throw new OAuthError('invalid_request', 'send parameters in the application/x-www-form-urlencoded body, not in the URL')
    const params = await readFormBody(ctx.req, maxBody)
    return await handler(ctx, params)
  } catch (err) {
    if (err instanceof OAuthError) {
      ctx.log.info({ endpoint, outcome: 'refused', error: err.error, reason: err.opts.detail ?? err.description }, 'authorization server: request refused')
      return oauthErrorResponse(err)
    }
    if ((err as Error).message !== 'request aborted') ctx.log.error({ err, endpoint }, 'authorization server: internal error')
    return oauthJson(500, { error: 'server_error', error_description: 'internal error' })
  }
}

/** GET/HEAD JSON documents (metadata, JWKS): public, cacheable for a short while. */
export function serveDocument (ctx: RequestContext, body: string): TerminalResponse {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return methodNotAllowed('GET, HEAD')
  return { status: 200, headers: { 'content-type': 'application/json;charset=UTF-8', 'cache-control': 'public, max-age=300' }, body }
}
