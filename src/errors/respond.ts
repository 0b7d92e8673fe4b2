import type { ServerResponse } from 'node:http'
import { GatewayError } from './gateway-error.js'

/**
 * Send a GatewayError as the response: JSON `{"message": ...}` unless the error carries its own body. `extra`:
 * headers plugins set for every answer (RequestContext.responseHeaders), under the error's own. Returns the
 * body's length in bytes (the access log's `bytes`), 0 when nothing could be sent.
 */
export function sendError (res: ServerResponse, err: GatewayError, requestId?: string, extra?: ReadonlyArray<readonly [string, string]>): number {
  if (res.headersSent) { res.destroy(); return 0 }
  const body = err.body ?? JSON.stringify({ message: err.message })
  const headers: Record<string, string | number> = {
    'content-type': err.contentType ?? 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  }
  if (extra !== undefined) for (const [k, v] of extra) headers[k] = v
  if (err.headers !== undefined) for (const k in err.headers) headers[k] = err.headers[k]
  if (requestId !== undefined) headers['x-request-id'] = requestId
  res.writeHead(err.status, headers)
  res.end(body)
  return headers['content-length'] as number
}

/** A plain JSON answer from the gateway itself. */
export function sendJson (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers })
  res.end(body)
}
