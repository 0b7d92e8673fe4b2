import type { IncomingMessage, ServerResponse } from 'node:http'
import { Transform, type Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GatewayError } from '../errors/index.js'
import type { UpstreamHead } from '../pipeline/types.js'
import { downstreamHeaders, type HeaderList } from './headers.js'
import type { UpstreamPools } from './pools.js'
import { CONNECT_FAILURES, errCode } from './connect-hold.js'
import type { CompiledService } from '../router/types.js'

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Failures that happen before a single byte of the request reached the upstream: always safe to retry. */
const NOT_SENT = CONNECT_FAILURES
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])
const BODY_TOO_LARGE = 'CB_BODY_TOO_LARGE'

export interface ForwardRequest {
  readonly service: CompiledService
  readonly method: string
  /** Path and query for the upstream. */
  readonly path: string
  readonly headers: HeaderList
  readonly req: IncomingMessage
  readonly res: ServerResponse
  /** Sent back as x-request-id (the gateway's, whatever the upstream echoes). */
  readonly requestId: string
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
 * One upstream exchange as an undici dispatch handler: the response head and body go straight to the
 * client's ServerResponse (no intermediate Readable, no pipeline), with backpressure both ways. A class, so
 * the per-request cost is one object, not a set of closures.
 */
class ProxyHandler implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | undefined
  started = false
  status = 0
  bytes = 0
  t0 = performance.now()
  upstreamMs = 0
  /** Made on the first backpressure only: most responses fit the socket's buffer. */
  private onDrain: (() => void) | undefined
  private readonly onClientClose = (): void => { if (!this.f.res.writableFinished) this.controller?.abort(new Error('client closed')) }

  constructor (private readonly f: ForwardRequest, private readonly done: (err: unknown) => void) {
    f.res.once('close', this.onClientClose)
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    // The client's connection may already be ended: node's parser found the request's framing broken after its head
    // (a bad chunk size in the same packet) and the listener answered 400. Nothing of it may reach the upstream.
    if (this.f.res.destroyed || this.f.req.socket?.writableEnded === true) controller.abort(new Error('client closed'))
  }

  onResponseStart (_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.started = true
    this.upstreamMs = performance.now() - this.t0
    const head: UpstreamHead = { status: statusCode, headers }
    if (this.f.onHead !== undefined) this.f.onHead(head)
    this.status = head.status
    const out = downstreamHeaders(head.headers)
    out['x-request-id'] = this.f.requestId
    this.f.res.writeHead(head.status, out)
  }

  onResponseData (c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length
    if (!this.f.res.write(chunk)) {
      c.pause()
      this.onDrain ??= () => { this.controller?.resume() }
      this.f.res.once('drain', this.onDrain)
    }
  }

  onResponseEnd (): void {
    this.f.res.off('close', this.onClientClose)
    this.f.res.end()
    this.done(undefined)
  }

  onResponseError (_c: Dispatcher.DispatchController, err: Error): void {
    this.f.res.off('close', this.onClientClose)
    this.done(err)
  }
}

function dispatchOnce (f: ForwardRequest, pool: Dispatcher, body: IncomingMessage | Readable | null, idempotent: boolean): Promise<{ h: ProxyHandler, err: unknown }> {
  return new Promise((resolve) => {
    const h: ProxyHandler = new ProxyHandler(f, (err) => resolve({ h, err }))
    pool.dispatch({ path: f.path, method: f.method as Dispatcher.HttpMethod, headers: f.headers, body, idempotent } as Dispatcher.DispatchOptions, h)
  })
}

/**
 * Proxy one request: bodies stream in both directions without being buffered whole. Retries only when the
 * connection failed before anything was sent, or for idempotent requests without a body.
 */
export async function forward (f: ForwardRequest): Promise<ForwardResult> {
  const { req, res, service } = f
  const { pool, hold } = f.pools.entry(service)
  if (hold.failFast(service.name)) {
    throw new GatewayError('CB_ERR_UPSTREAM_UNAVAILABLE', {
      detail: `upstream ${service.name} (${service.origin}): failing fast, its last connection attempt failed (connect_failure_hold ${hold.holdMs} ms)`,
    })
  }
  const cl = req.headers['content-length']
  const hasBody = cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined
  if (hasBody && f.maxBodySize > 0 && Number(cl ?? 0) > f.maxBodySize) {
    throw new GatewayError('CB_ERR_BODY_TOO_LARGE', { detail: `content-length ${cl} > max_body_size ${f.maxBodySize}`, headers: { connection: 'close' } })
  }
  const body = hasBody ? (f.maxBodySize > 0 ? limitBody(req, f.maxBodySize) : req) : null
  const idempotent = !hasBody && IDEMPOTENT.has(f.method)
  let retries = 0
  for (;;) {
    const { h, err } = await dispatchOnce(f, pool, body, idempotent)
    if (err === undefined) return { status: h.status, upstreamMs: h.upstreamMs, bytes: h.bytes, failure: undefined, retries }
    const code = errCode(err)
    if (h.started) {
      // the head went out already: all we can do is cut the connection
      res.destroy()
      return { status: h.status, upstreamMs: h.upstreamMs, bytes: h.bytes, failure: res.destroyed && code === 'UNKNOWN' ? 'client_closed' : 'upstream_body_' + code, retries }
    }
    if (res.destroyed || (err as Error).message === 'client closed') {
      return { status: 499, upstreamMs: performance.now() - h.t0, bytes: 0, failure: 'client_closed', retries }
    }
    if (code === BODY_TOO_LARGE) {
      throw new GatewayError('CB_ERR_BODY_TOO_LARGE', { detail: `request body exceeds max_body_size ${f.maxBodySize}`, headers: { connection: 'close' } })
    }
    // a failed connection put the origin on hold (connect_failure_hold): retrying it now would fail the same way
    const canRetry = retries < service.resolved.retries &&
      ((NOT_SENT.has(code) && !hold.held()) || (idempotent && (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE'))) &&
      (!hasBody || !req.readableDidRead)
    if (canRetry) { retries++; continue }
    throw new GatewayError(TIMEOUTS.has(code) ? 'CB_ERR_UPSTREAM_TIMEOUT' : 'CB_ERR_UPSTREAM_UNAVAILABLE', {
      detail: `upstream ${service.name} (${service.origin}): ${code}${retries > 0 ? ` after ${retries} retries` : ''}`,
      cause: err,
    })
  }
}
