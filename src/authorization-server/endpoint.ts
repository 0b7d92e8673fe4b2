import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ExtensionInstance } from '../extensions/types.js'
import { readFormBody, type FormParams } from './form-body.js'
import { OAuthError, sendJson, sendMethodNotAllowed, sendOAuthError } from './oauth-error.js'

/** What `handle` receives besides req/res. */
export type RequestInfo = Parameters<NonNullable<ExtensionInstance['handle']>>[2]

/** A form-POST endpoint's own work, once method, content type and body are checked. */
export type FormHandler = (req: IncomingMessage, res: ServerResponse, info: RequestInfo, params: FormParams) => Promise<void>

/**
 * The shared front of the token, introspection and revocation endpoints: POST only (405 + Allow), parameters
 * in a form body only (RFC 6749 §3.2: never in the URI, where they would be logged), body size limited,
 * OAuthError → RFC 6749 §5.2 JSON, anything else → 500 without detail.
 */
export async function serveForm (req: IncomingMessage, res: ServerResponse, info: RequestInfo, endpoint: string, maxBody: number, handler: FormHandler): Promise<void> {
  if (req.method !== 'POST') { sendMethodNotAllowed(req, res, 'POST'); return }
  let bodyRead = false
  try {
    if (info.query !== '') throw new OAuthError('invalid_request', 'send parameters in the application/x-www-form-urlencoded body, not in the URL')
    const params = await readFormBody(req, maxBody)
    bodyRead = true
    await handler(req, res, info, params)
  } catch (err) {
    if (res.headersSent) { info.log.error({ err, endpoint }, 'authorization server: failed after answering'); return }
    if (err instanceof OAuthError) {
      info.log.info({ endpoint, outcome: 'refused', error: err.error, reason: err.opts.detail ?? err.description }, 'authorization server: request refused')
      sendOAuthError(req, res, err, bodyRead)
      return
    }
    if ((err as Error).message === 'request aborted') return
    info.log.error({ err, endpoint }, 'authorization server: internal error')
    sendJson(req, res, 500, { error: 'server_error', error_description: 'internal error' }, { bodyRead })
  }
}

/** GET/HEAD JSON documents (metadata, JWKS): public, cacheable for a short while. */
export function serveDocument (req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') { sendMethodNotAllowed(req, res, 'GET, HEAD'); return }
  res.writeHead(200, {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'public, max-age=300',
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}
