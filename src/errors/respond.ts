import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TerminalResponse } from '../pipeline/types.js'
import { GatewayError } from './gateway-error.js'

const JSON_TYPE = 'application/json; charset=utf-8'

/** A JSON answer as a value (an internal route returns it; the response phase may change it before it is written). */
export function jsonResponse (status: number, value: unknown, headers: Record<string, string> = {}): TerminalResponse {
  const body = JSON.stringify(value)
  return { status, headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers }, body }
}

/**
 * A GatewayError as a response value: JSON `{"message": ...}` unless the error carries its own body. `extra`: headers
 * plugins set for every answer (RequestContext.responseHeaders), under the error's own.
 */
export function errorResponse (err: GatewayError, extra?: ReadonlyArray<readonly [string, string]>): TerminalResponse {
  const headers: Record<string, string> = { 'content-type': err.contentType ?? JSON_TYPE, 'cache-control': 'no-store' }
  if (extra !== undefined) for (const [k, v] of extra) headers[k] = v
  if (err.headers !== undefined) for (const k in err.headers) headers[k] = err.headers[k]
  return { status: err.status, headers, body: err.body ?? JSON.stringify({ message: err.message }) }
}

export interface WriteOptions {
  /** Sent as x-request-id (in writeHead's one header object: a setHeader() before it takes node's slower merge). */
  requestId?: string
  /**
   * The request, when its body may not have been read (an internal route refused it early, or stopped reading at a
   * size limit): such a connection cannot carry another request, so the answer closes it. A HEAD gets no body.
   */
  req?: IncomingMessage
}

/**
 * The one writer of answers the gateway makes itself — errors, internal routes (the authorization server), the
 * admin API, and (as raw bytes) the listener's own answers. Returns the body's size in bytes.
 */
export function writeResponse (res: ServerResponse, r: TerminalResponse, o: WriteOptions = {}): number {
  if (res.headersSent) { res.destroy(); return 0 }
  const body = r.body ?? ''
  const size = Buffer.byteLength(body)
  const headers: Record<string, string | string[] | number> = {}
  for (const k in r.headers) { const v = r.headers[k]; if (v !== undefined) headers[k] = v }
  headers['content-length'] = size
  if (o.requestId !== undefined) headers['x-request-id'] = o.requestId
  const req = o.req
  if (req !== undefined && !req.complete && unreadBody(req)) headers.connection = 'close'
  res.writeHead(r.status, headers)
  if (req?.method === 'HEAD') { res.end(); return 0 }
  res.end(body)
  return size
}

function unreadBody (req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined
}

/** Send a GatewayError as the response; returns the body's bytes (the access log's `bytes`), 0 when nothing was sent. */
export function sendError (res: ServerResponse, err: GatewayError, requestId?: string, extra?: ReadonlyArray<readonly [string, string]>): number {
  return writeResponse(res, errorResponse(err, extra), { requestId })
}

/** A plain JSON answer from the gateway itself. */
export function sendJson (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  writeResponse(res, jsonResponse(status, value, headers))
}

/**
 * A GatewayError as raw HTTP/1.1 bytes, for sockets that have no ServerResponse (the listener's own answers to
 * requests node's parser refused, CONNECT, refused upgrades). Always closes the connection.
 */
export function rawErrorResponse (err: GatewayError, requestId?: string, extra?: ReadonlyArray<readonly [string, string]>): string {
  const r = errorResponse(err, extra)
  if (requestId !== undefined) r.headers['x-request-id'] = requestId
  const body = typeof r.body === 'string' ? r.body : (r.body ?? '').toString('latin1')
  let head = `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status] ?? 'Error'}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
  for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && k !== 'connection' && k !== 'content-length') head += `${k}: ${String(v)}\r\n`
  return head + 'connection: close\r\n\r\n' + body
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  413: 'Content Too Large', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
}
