import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { GatewayError } from '../errors/index.js'
import { errorResponse, rawErrorResponse, sendError, writeResponse } from '../errors/respond.js'
import { RequestContext } from '../pipeline/context.js'
import type { TerminalHandler, UpstreamHead } from '../pipeline/types.js'
import { forward, type ForwardResult } from '../proxy/forward.js'
import { upstreamHeaders, removeHeader, setHeader, type HeaderList } from '../proxy/headers.js'
import { forwardUpgrade } from '../proxy/upgrade.js'
import { normalizePath } from '../router/normalize-path.js'
import { upstreamPath } from '../router/router.js'
import type { CompiledService, RouteMatch } from '../router/types.js'
import type { Runtime } from '../runtime/compile.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import { tlsIdentity } from './peer.js'
import { createAccessLog } from '../observability/access-log.js'

const REQUEST_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/

export interface ListenerInfo {
  readonly name: string
  readonly tls: boolean
  port: number
}

export interface HandlerDeps {
  runtime(): Runtime
  readonly logger: Logger
  readonly metrics: GatewayMetrics
}

interface Parsed { path: string, query: string }

function splitTarget (url: string | undefined): Parsed | undefined {
  if (url === undefined) return undefined
  let target = url
  if (target.charCodeAt(0) !== 47) {
    // absolute-form (RFC 9112 §3.2.2): keep only path and query
    const m = /^https?:\/\/[^/?#]*(.*)$/i.exec(target)
    if (m === null) return undefined
    target = m[1] === '' ? '/' : m[1]
  }
  const q = target.indexOf('?')
  const rawPath = q < 0 ? target : target.slice(0, q)
  const path = normalizePath(rawPath)
  if (path === undefined) return undefined
  return { path, query: q < 0 ? '' : target.slice(q + 1) }
}

function hostOf (req: IncomingMessage): string {
  const h = req.headers.host
  if (h === undefined) return ''
  if (h.charCodeAt(0) === 91) { const e = h.indexOf(']'); return e < 0 ? h.toLowerCase() : h.slice(1, e).toLowerCase() }
  const c = h.indexOf(':')
  return (c < 0 ? h : h.slice(0, c)).toLowerCase()
}

/**
 * Request shapes node's parser lets through that a proxy must not: a version other than HTTP/1.x (node accepts an
 * HTTP/0.9 request line and "HTTP/2.0" in an HTTP/1 one) and more than one Host (RFC 9112 §3.2: node keeps the
 * first, a hop behind us might use the last). Answered 400 with the connection closed.
 */
function malformedRequest (req: IncomingMessage, maxHeaderCount: number): GatewayError | undefined {
  // the listener keeps max_header_count + 1 fields: one more means node dropped some (one could be a second
  // Authorization), so the request is refused rather than judged on a truncated head
  if (req.rawHeaders.length > 2 * maxHeaderCount) {
    return new GatewayError('CB_ERR_HEADER_TOO_LARGE', { detail: `more than ${maxHeaderCount} header fields (gateway.limits.max_header_count)`, headers: { connection: 'close' } })
  }
  if (req.httpVersionMajor !== 1) return new GatewayError('CB_ERR_BAD_REQUEST', { detail: `HTTP/${req.httpVersion} request line`, headers: { connection: 'close' } })
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host' && ++hosts > 1) {
      return new GatewayError('CB_ERR_BAD_REQUEST', { detail: 'more than one Host header (RFC 9112 §3.2)', headers: { connection: 'close' } })
    }
  }
  return undefined
}

function errorFor (e: unknown): GatewayError {
  if (e instanceof GatewayError) return e
  return new GatewayError('CB_ERR_INTERNAL', { detail: e instanceof Error ? `${e.name}: ${e.message}` : String(e), cause: e })
}

/** Build the upstream URL path with query mutations applied. */
function buildQuery (query: string, muts: RequestContext['upstreamQuery']): string {
  if (muts.length === 0) return query
  const params = new URLSearchParams(query)
  for (const [name, value, append] of muts) {
    if (value === null) params.delete(name)
    else if (append) params.append(name, value)
    else params.set(name, value)
  }
  return params.toString()
}

function applyHeaderMutations (headers: HeaderList, muts: RequestContext['upstreamHeaders']): void {
  for (const [name, value, append] of muts) {
    if (value === null) removeHeader(headers, name)
    else if (append) headers.push(name, value)
    else setHeader(headers, name, value)
  }
}

/** Where the answer goes: a ServerResponse, or (upgrade mode) the raw socket node handed over. */
type Exchange =
  | { readonly kind: 'http', readonly res: ServerResponse }
  | { readonly kind: 'upgrade', readonly socket: Duplex, readonly head: Buffer }

/**
 * The one request path: parse and normalise the target, route (internal and proxied routes alike), run the plugin
 * chain, then proxy, answer from an internal route's handler, or (upgrade mode) open a WebSocket tunnel; the
 * response phase, the log phase, the access log and the metrics happen here for all of them. Nothing here parses
 * config or compiles anything.
 */
export function createRequestHandler (deps: HandlerDeps, listener: ListenerInfo) {
  const { metrics } = deps
  const writeAccess = createAccessLog(deps.logger)

  function requestIdOf (req: IncomingMessage): string {
    const given = req.headers['x-request-id']
    return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
  }

  function accessLog (rt: Runtime, req: IncomingMessage, id: string, route: string, path: string, status: number, startNs: bigint, r: ForwardResult | undefined, ctx: RequestContext | undefined, err: GatewayError | undefined, sentBytes = 0): void {
    const totalMs = Number(process.hrtime.bigint() - startNs) / 1e6
    metrics.request(route, status, totalMs / 1000)
    const svc = ctx?.route.service
    if (r?.failure !== undefined && r.failure !== 'client_closed' && svc !== undefined) metrics.upstreamError(svc.name, r.failure)
    if (err !== undefined && (err.code === 'CB_ERR_UPSTREAM_UNAVAILABLE' || err.code === 'CB_ERR_UPSTREAM_TIMEOUT') && svc !== undefined) metrics.upstreamError(svc.name, err.code)
    // a refusal is an answer of 400 or more (request-termination answers 200 with CB_ERR_TERMINATED: not a refusal)
    metrics.dashboard.record(route, status, totalMs, status >= 400 ? err?.code : undefined, ctx?.tls?.certificate, ctx?.credential?.clientId, ctx?.consumer, err?.errCause)
    if (!rt.config.settings.access_log) return
    const cert = ctx?.tls?.certificate
    const cred = ctx?.credential
    writeAccess({
      req_id: id,
      route,
      method: req.method,
      path,
      status,
      // proxied: the upstream body's bytes; answered by the gateway (errors, request-termination): its own body's
      bytes: r?.bytes ?? sentBytes,
      total_ms: totalMs,
      upstream_ms: r?.upstreamMs,
      retries: r !== undefined && r.retries > 0 ? r.retries : undefined,
      // req.socket is gone once the request stream was destroyed (an upstream that failed mid-body)
      client: ctx?.remoteAddress ?? req.socket?.remoteAddress,
      cert_subject: cert?.subject,
      cert_x5t: cert?.x5tS256,
      sub: cred?.sub,
      client_id: cred?.clientId,
      // a 2xx/3xx the gateway wrote itself (request-termination) is an answer, not an error
      err: err === undefined || err.status < 400 ? undefined : err.code,
      // the stable sub-reason under the code (expired, signature, …): see ErrCause
      err_cause: err === undefined || err.status < 400 ? undefined : err.errCause,
      reason: err === undefined || err.status < 400 ? undefined : err.detail,
    })
  }

  /** An internal route: the terminal handler answers where the proxy would; the response phase sees its head. */
  async function answer (ctx: RequestContext, terminal: TerminalHandler, res: ServerResponse): Promise<ForwardResult> {
    const t0 = performance.now()
    const r = await terminal(ctx)
    const route = ctx.route
    const set = ctx.responseHeaders
    if (set !== undefined) for (const [k, v] of set) r.headers[k] = v
    if (route.response.length > 0) {
      const head: UpstreamHead = { status: r.status, headers: r.headers }
      for (const h of route.response) h(ctx, head)
      r.status = head.status
    }
    const bytes = writeResponse(res, r, { requestId: ctx.id, req: ctx.req })
    return { status: r.status, upstreamMs: performance.now() - t0, bytes, failure: undefined, retries: 0 }
  }

  /** The gateway's own upstream headers (hygiene, Host, X-Forwarded-*), before any plugin's mutation. */
  function gatewayHeaders (req: IncomingMessage, remoteAddress: string, id: string, preserveHost: boolean, svc: CompiledService, rt: Runtime): HeaderList {
    return upstreamHeaders(req, rt.strip, {
      remoteAddress,
      proto: listener.tls ? 'https' : 'http',
      host: req.headers.host ?? '',
      upstreamHost: preserveHost && req.headers.host !== undefined ? req.headers.host : svc.hostHeader,
      port: listener.port,
      requestId: id,
      trustForwardedFor: rt.trustedIps.has(remoteAddress),
    })
  }

  /** What the upstream receives: the gateway's header hygiene, then the plugins' mutations (strip before set). */
  function upstreamRequest (ctx: RequestContext, match: RouteMatch, svc: CompiledService, rt: Runtime): { headers: HeaderList, path: string } {
    const req = ctx.req
    const route = match.route
    const headers = gatewayHeaders(req, ctx.remoteAddress, ctx.id, route.preserveHost, svc, rt)
    if (ctx.upstreamHeaders.length > 0) applyHeaderMutations(headers, ctx.upstreamHeaders)
    const q = buildQuery(ctx.query, ctx.upstreamQuery)
    const path = upstreamPath(svc.basePath, ctx.path, match.stripLength, route.stripPath, route.pathHandling)
    return { headers, path: q === '' ? path : `${path}?${q}` }
  }

  async function run (ctx: RequestContext, match: RouteMatch, ex: Exchange, rt: Runtime): Promise<ForwardResult> {
    const route = match.route
    for (let i = 0; i < route.access.length; i++) {
      const p = route.access[i](ctx)
      if (p !== undefined) await p
    }
    const svc = route.service
    const set = ctx.responseHeaders
    const onHead = route.response.length === 0 && set === undefined
      ? undefined
      : (head: UpstreamHead) => {
          if (set !== undefined) for (const [k, v] of set) head.headers[k] = v
          for (const h of route.response) h(ctx, head)
        }
    if (ex.kind === 'upgrade') {
      if (svc === undefined) throw new GatewayError('CB_ERR_BAD_REQUEST', { detail: `Upgrade to the internal route ${route.name}` })
      const up = upstreamRequest(ctx, match, svc, rt)
      for (const k of WEBSOCKET_HEADERS) {
        const v = ctx.req.headers[k]
        if (typeof v === 'string') setHeader(up.headers, k, v)
      }
      let forget: (() => void) | undefined
      const r = await forwardUpgrade({
        service: svc, path: up.path, headers: up.headers, req: ctx.req, socket: ex.socket, head: ex.head, requestId: ctx.id, pools: rt.pools, onHead,
        onOpen: (close) => { forget = rt.inflight.track(close) },
        onTunnelError: (err) => {
          const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN'
          metrics.upstreamError(svc.name, `websocket_${code}`)
          ctx.log.warn({ req_id: ctx.id, route: route.name, err: { code, message: err.message } }, 'websocket upstream failed; tunnel closed')
        },
      })
      forget?.()
      return r
    }
    if (svc === undefined) return await answer(ctx, route.terminal!, ex.res)
    const up = upstreamRequest(ctx, match, svc, rt)
    return await forward({ service: svc, method: ctx.method, path: up.path, headers: up.headers, req: ctx.req, res: ex.res, requestId: ctx.id, pools: rt.pools, onHead, maxBodySize: rt.config.settings.limits.max_body_size })
  }

  /**
   * Requests node parses as upgrades. Only WebSocket is tunnelled: an "Upgrade: h2c" tunnel would let the client
   * send HTTP/2 requests straight to the upstream, to any path, past the router and the plugin chain (h2c
   * smuggling). A WebSocket handshake is a GET without a body (RFC 6455 §4.1).
   */
  function refusedUpgrade (req: IncomingMessage): GatewayError | undefined {
    const upgrade = req.headers.upgrade
    if (typeof upgrade !== 'string' || upgrade.trim().toLowerCase() !== 'websocket') {
      return new GatewayError('CB_ERR_BAD_REQUEST', { detail: `Upgrade: ${String(upgrade)} is not supported (only websocket)` })
    }
    const cl = req.headers['content-length']
    if ((cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined) {
      return new GatewayError('CB_ERR_BAD_REQUEST', { detail: 'a WebSocket handshake has no body (RFC 6455 §4.1)' })
    }
    return undefined
  }

  async function serve (req: IncomingMessage, ex: Exchange): Promise<void> {
    const startNs = process.hrtime.bigint()
    const rt = deps.runtime()
    rt.inflight.enter()
    metrics.inFlightNow++
    const id = requestIdOf(req)
    // x-request-id goes into the one header object writeHead gets (forward, sendError): a setHeader() before it
    // would send every response through node's slower merge of the two header APIs
    let routeName = '(none)'
    let result: ForwardResult | undefined
    let failure: GatewayError | undefined
    let ctx: RequestContext | undefined
    let path = req.url ?? ''
    let sentBytes = 0
    try {
      const refused = malformedRequest(req, rt.config.settings.limits.max_header_count) ?? (ex.kind === 'upgrade' ? refusedUpgrade(req) : undefined)
      if (refused !== undefined) throw refused
      const parsed = splitTarget(req.url)
      if (parsed === undefined) throw new GatewayError('CB_ERR_BAD_PATH', { detail: 'request target is not a valid path' })
      path = parsed.path
      const match = rt.router.match(req.method ?? 'GET', hostOf(req), parsed.path, req.headers, listener.tls)
      if (match === undefined) throw new GatewayError('CB_ERR_NO_ROUTE', { detail: `no route for ${req.method} ${hostOf(req)}${parsed.path}` })
      ctx = new RequestContext({
        id,
        startNs,
        req,
        method: req.method ?? 'GET',
        path: parsed.path,
        query: parsed.query,
        remoteAddress: req.socket.remoteAddress ?? '',
        route: match.route,
        tls: listener.tls ? tlsIdentity(req.socket) : null,
        listenerTls: listener.tls,
        log: deps.logger,
        // ctx.upstream: the same headers upstreamRequest starts from (an internal route has no upstream: none)
        upstreamBase: () => {
          const svc = match.route.service
          return svc === undefined ? [] : gatewayHeaders(req, req.socket.remoteAddress ?? '', id, match.route.preserveHost, svc, rt)
        },
      })
      routeName = ctx.route.name
      result = await run(ctx, match, ex, rt)
    } catch (e) {
      failure = errorFor(e)
      if (failure.code === 'CB_ERR_INTERNAL') deps.logger.error({ err: e, req_id: id }, 'internal error')
      if (ex.kind === 'http') sentBytes = sendError(ex.res, failure, id, ctx?.responseHeaders)
      else if (ex.socket.writable) { ex.socket.end(rawErrorResponse(failure, id, ctx?.responseHeaders)); sentBytes = Buffer.byteLength(errorResponse(failure, ctx?.responseHeaders).body ?? '') }
    } finally {
      rt.inflight.leave()
      metrics.inFlightNow--
      const status = result?.status ?? (failure?.status ?? (ex.kind === 'http' ? ex.res.statusCode : 0))
      if (ctx !== undefined) logPhase(ctx, status)
      accessLog(rt, req, id, routeName, path, status, startNs, result, ctx, failure, sentBytes)
    }
  }

  /** The log phase never breaks a request; a plugin that throws in it is logged and counted, not ignored. */
  function logPhase (ctx: RequestContext, status: number): void {
    const log = ctx.route.log
    for (let i = 0; i < log.length; i++) {
      try { log[i](ctx, status) } catch (err) {
        metrics.suppressed('log_phase')
        deps.logger.error({ err, req_id: ctx.id, route: ctx.route.name }, 'a plugin\'s log phase threw')
      }
    }
  }

  return {
    handle (req: IncomingMessage, res: ServerResponse): Promise<void> { return serve(req, { kind: 'http', res }) },
    /** WebSocket upgrades: the same path as every request, in upgrade mode. */
    handleUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
      socket.on('error', () => socket.destroy())
      return serve(req, { kind: 'upgrade', socket, head })
    },
  }
}

/** The handshake headers the upstream needs to accept a WebSocket (RFC 6455 §4.1). */
const WEBSOCKET_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions']
