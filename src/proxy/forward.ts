import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline, Transform, type Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GatewayError } from '../errors/index.js'
import type { UpstreamHead } from '../pipeline/types.js'
import { downstreamHeaders } from './headers.js'
import type { UpstreamPools } from './pools.js'
import type { CompiledService } from '../router/types.js'

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Failures that happen before a single byte of the request reached the upstream: always safe to retry. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])

export interface ForwardRequest {
  readonly service: CompiledService
  readonly method: string
  /** Path and query for the upstream. */
  readonly path: string
  readonly headers: Record<string, string | string[]>
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly pools: UpstreamPools
  /** Applied to the upstream head before it is sent to the client (plugins' response phase). */
  readonly onHead: ((head: UpstreamHead) => void) | undefined
  /** gateway.limits.max_body_size; 0 = unlimited (streamed). */
  readonly maxBodySize: number
}

export interface ForwardResult {
  status: number
  upstreamMs: number
  bytes: number
  /** Set when the upstream failed (error kind for metrics and the log). */
  failure: string | undefined
  retries: number
}

function errCode (e: unknown): string {
  const err = e as { code?: string, cause?: { code?: string } }
  return err.code ?? err.cause?.code ?? 'UNKNOWN'
}

const BODY_TOO_LARGE = 'CB_BODY_TOO_LARGE'

/** Pass the body through, failing the upstream request once more than `max` bytes came (chunked bodies). */
function limitBody (req: IncomingMessage, max: number): Readable {
  let seen = 0
  const t = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > max) { cb(Object.assign(new Error('request body too large'), { code: BODY_TOO_LARGE })); return }
      cb(null, chunk)
    },
  })
  req.on('error', (e) => t.destroy(e))
  return req.pipe(t)
}

/**
 * Proxy one request: bodies stream in both directions without being buffered whole. Retries only when the
 * connection failed before anything was sent, or for idempotent requests without a body.
 */
export async function forward (f: ForwardRequest): Promise<ForwardResult> {
  const { req, res, service } = f
  const pool = f.pools.get(service)
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined
  if (hasBody && f.maxBodySize > 0 && Number(req.headers['content-length'] ?? 0) > f.maxBodySize) {
    throw new GatewayError('CB_ERR_BODY_TOO_LARGE', { detail: `content-length ${req.headers['content-length']} > max_body_size ${f.maxBodySize}`, headers: { connection: 'close' } })
  }
  const body = hasBody ? (f.maxBodySize > 0 ? limitBody(req, f.maxBodySize) : req) : null
  const abort = new AbortController()
  const onClose = (): void => { if (!res.writableFinished) abort.abort() }
  res.once('close', onClose)
  const t0 = performance.now()
  let retries = 0
  let up: Dispatcher.ResponseData
  for (;;) {
    try {
      up = await pool.request({
        path: f.path,
        method: f.method as Dispatcher.HttpMethod,
        headers: f.headers,
        body,
        signal: abort.signal,
        idempotent: !hasBody && IDEMPOTENT.has(f.method),
      } as Dispatcher.RequestOptions)
      break
    } catch (e) {
      const code = errCode(e)
      if (abort.signal.aborted) {
        res.off('close', onClose)
        return { status: 499, upstreamMs: performance.now() - t0, bytes: 0, failure: 'client_closed', retries }
      }
      const canRetry = retries < service.resolved.retries &&
        (NOT_SENT.has(code) || (!hasBody && IDEMPOTENT.has(f.method) && (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE'))) &&
        (!hasBody || !req.readableDidRead)
      if (canRetry) { retries++; continue }
      res.off('close', onClose)
      if (code === BODY_TOO_LARGE) {
        throw new GatewayError('CB_ERR_BODY_TOO_LARGE', { detail: `request body exceeds max_body_size ${f.maxBodySize}`, headers: { connection: 'close' } })
      }
      const timeout = TIMEOUTS.has(code)
      throw new GatewayError(timeout ? 'CB_ERR_UPSTREAM_TIMEOUT' : 'CB_ERR_UPSTREAM_UNAVAILABLE', {
        detail: `upstream ${service.name} (${service.origin}): ${code}${retries > 0 ? ` after ${retries} retries` : ''}`,
        cause: e,
      })
    }
  }
  const upstreamMs = performance.now() - t0
  const head: UpstreamHead = { status: up.statusCode, headers: up.headers }
  if (f.onHead !== undefined) f.onHead(head)
  const out = downstreamHeaders(head.headers)
  res.writeHead(head.status, out)
  let bytes = 0
  return await new Promise<ForwardResult>((resolve) => {
    up.body.on('data', (chunk: Buffer) => { bytes += chunk.length })
    pipeline(up.body, res, (err) => {
      res.off('close', onClose)
      if (err !== undefined && err !== null) {
        res.destroy()
        resolve({ status: head.status, upstreamMs, bytes, failure: abort.signal.aborted ? 'client_closed' : 'upstream_body_' + errCode(err), retries })
      } else resolve({ status: head.status, upstreamMs, bytes, failure: undefined, retries })
    })
  })
}
