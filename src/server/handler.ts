import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { GatewayError } from '../errors/index.js'
import { sendError } from '../errors/respond.js'
import { RequestContext } from '../pipeline/context.js'
import type { UpstreamHead } from '../pipeline/types.js'
import { forward, type ForwardResult } from '../proxy/forward.js'
import { upstreamHeaders, removeHeader, setHeader, type HeaderList } from '../proxy/headers.js'
import { forwardUpgrade } from '../proxy/upgrade.js'
import { normalizePath } from '../router/normalize-path.js'
import { upstreamPath } from '../router/router.js'
import type { RouteMatch } from '../router/types.js'
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

/**
 * The per-request path: parse and normalise the target, let extensions answer, route, run the plugin chain,
 * proxy, log. Nothing here parses config or compiles anything.
 */
export function createRequestHandler (deps: HandlerDeps, listener: ListenerInfo) {
  const { metrics } = deps
  const writeAccess = createAccessLog(deps.logger)

  function requestIdOf (req: IncomingMessage): string {
    const given = req.headers['x-request-id']
    return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
  }

  function accessLog (rt: Runtime, req: IncomingMessage, id: string, route: string, path: string, status: number, startNs: bigint, r: ForwardResult | undefined, ctx: RequestContext | undefined, err: GatewayError | undefined): void {
    const totalMs = Number(process.hrtime.bigint() - startNs) / 1e6
    metrics.request(route, status, totalMs / 1000)
    if (r?.failure !== undefined && r.failure !== 'client_closed' && ctx !== undefined) metrics.upstreamError(ctx.route.service.name, r.failure)
    if (err !== undefined && (err.code === 'CB_ERR_UPSTREAM_UNAVAILABLE' || err.code === 'CB_ERR_UPSTREAM_TIMEOUT') && ctx !== undefined) metrics.upstreamError(ctx.route.service.name, err.code)
    metrics.dashboard.record(route, status, totalMs, err?.code, ctx?.tls?.certificate, ctx?.credential?.clientId, ctx?.consumer)
    if (!rt.config.settings.access_log) return
    const cert = ctx?.tls?.certificate
    const cred = ctx?.credential
    writeAccess({
      req_id: id,
      route,
      method: req.method,
      path,
      status,
      bytes: r?.bytes ?? 0,
      total_ms: totalMs,
      upstream_ms: r?.upstreamMs,
      retries: r !== undefined && r.retries > 0 ? r.retries : undefined,
      // req.socket is gone once the request stream was destroyed (an upstream that failed mid-body)
      client: ctx?.remoteAddress ?? req.socket?.remoteAddress,
      cert_subject: cert?.subject,
      cert_x5t: cert?.x5tS256,
      sub: cred?.sub,
      client_id: cred?.clientId,
      err: err === undefined ? undefined : err.code,
      reason: err?.detail,
    })
  }

  async function run (ctx: RequestContext, match: RouteMatch, res: ServerResponse, rt: Runtime): Promise<ForwardResult> {
    const route = match.route
    for (let i = 0; i < route.access.length; i++) {
      const p = route.access[i](ctx)
      if (p !== undefined) await p
    }
    const req = ctx.req
    const headers = upstreamHeaders(req, rt.strip, {
      remoteAddress: ctx.remoteAddress,
      proto: listener.tls ? 'https' : 'http',
      host: req.headers.host ?? '',
      upstreamHost: route.preserveHost && req.headers.host !== undefined ? req.headers.host : route.service.hostHeader,
      port: listener.port,
      requestId: ctx.id,
      trustForwardedFor: rt.trustedIps.has(ctx.remoteAddress),
    })
    if (ctx.upstreamHeaders.length > 0) applyHeaderMutations(headers, ctx.upstreamHeaders)
    const q = buildQuery(ctx.query, ctx.upstreamQuery)
    const svc = route.service
    const path = upstreamPath(svc.basePath, ctx.path, match.stripLength, route.stripPath, route.pathHandling)
    const onHead = route.response.length === 0 ? undefined : (head: UpstreamHead) => { for (const h of route.response) h(ctx, head) }
    return await forward({ service: svc, method: ctx.method, path: q === '' ? path : `${path}?${q}`, headers, req, res, requestId: ctx.id, pools: rt.pools, onHead, maxBodySize: rt.config.settings.limits.max_body_size })
  }

  function prepare (req: IncomingMessage, rt: Runtime, id: string, startNs: bigint, parsed: Parsed | undefined): { ctx?: RequestContext, match?: RouteMatch, parsed?: Parsed, err?: GatewayError } {
    if (parsed === undefined) return { err: new GatewayError('CB_ERR_BAD_PATH', { detail: 'request target is not a valid path' }) }
    const match = rt.router.match(req.method ?? 'GET', hostOf(req), parsed.path, req.headers, listener.tls)
    if (match === undefined) return { parsed, err: new GatewayError('CB_ERR_NO_ROUTE', { detail: `no route for ${req.method} ${hostOf(req)}${parsed.path}` }) }
    const ctx = new RequestContext({
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
    })
    return { ctx, match, parsed }
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startNs = process.hrtime.bigint()
    const rt = deps.runtime()
    rt.inflight++
    const id = requestIdOf(req)
    // x-request-id goes into the one header object writeHead gets (forward, sendError): a setHeader() before it
    // would send every response through node's slower merge of the two header APIs
    let routeName = '(none)'
    let result: ForwardResult | undefined
    let failure: GatewayError | undefined
    let ctx: RequestContext | undefined
    let path = req.url ?? ''
    try {
      const malformed = malformedRequest(req, rt.config.settings.limits.max_header_count)
      if (malformed !== undefined) throw malformed
      // the target is parsed once, for the extensions and the router alike
      const parsed = splitTarget(req.url)
      if (rt.extensions.length > 0) {
        if (parsed !== undefined) {
          res.setHeader('x-request-id', id)
          for (const ext of rt.extensions) {
            if (ext.handle === undefined) continue
            const tls = listener.tls ? tlsIdentity(req.socket) : null
            const done = await ext.handle(req, res, { tls, listenerTls: listener.tls, requestId: id, path: parsed.path, query: parsed.query, log: deps.logger })
            if (done) { routeName = '(internal)'; return }
          }
        }
      }
      const p = prepare(req, rt, id, startNs, parsed)
      if (p.parsed !== undefined) path = p.parsed.path
      if (p.err !== undefined) throw p.err
      ctx = p.ctx!
      routeName = ctx.route.name
      result = await run(ctx, p.match!, res, rt)
    } catch (e) {
      failure = errorFor(e)
      if (failure.code === 'CB_ERR_INTERNAL') deps.logger.error({ err: e, req_id: id }, 'internal error')
      sendError(res, failure, id)
    } finally {
      rt.inflight--
      const status = result?.status ?? (failure?.status ?? res.statusCode)
      if (ctx !== undefined) for (const l of ctx.route.log) { try { l(ctx, status) } catch { /* log phase never throws */ } }
      if (routeName !== '(internal)') accessLog(rt, req, id, routeName, path, status, startNs, result, ctx, failure)
    }
  }

  /** WebSocket and other upgrades: same routing and plugin chain, then a spliced connection. */
  async function handleUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const startNs = process.hrtime.bigint()
    const rt = deps.runtime()
    const id = requestIdOf(req)
    socket.on('error', () => socket.destroy())
    // Only WebSocket is spliced: an "Upgrade: h2c" tunnel would let the client send HTTP/2 requests straight to the
    // upstream, to any path, past the router and the plugin chain (h2c smuggling).
    const upgrade = req.headers.upgrade
    const refused = malformedRequest(req, rt.config.settings.limits.max_header_count) ?? (typeof upgrade === 'string' && upgrade.trim().toLowerCase() === 'websocket'
      ? undefined
      : new GatewayError('CB_ERR_BAD_REQUEST', { detail: `Upgrade: ${String(upgrade)} is not supported (only websocket)` }))
    if (refused !== undefined) {
      writeRaw(socket, refused)
      accessLog(rt, req, id, '(none)', '', refused.status, startNs, undefined, undefined, refused)
      return
    }
    const p = prepare(req, rt, id, startNs, splitTarget(req.url))
    if (p.err !== undefined || p.ctx === undefined || p.match === undefined) {
      const err = p.err ?? new GatewayError('CB_ERR_BAD_REQUEST')
      writeRaw(socket, err)
      accessLog(rt, req, id, '(none)', p.parsed?.path ?? '', err.status, startNs, undefined, undefined, err)
      return
    }
    const ctx = p.ctx
    try {
      for (const a of ctx.route.access) { const r = a(ctx); if (r !== undefined) await r }
    } catch (e) {
      const err = errorFor(e)
      writeRaw(socket, err)
      accessLog(rt, req, id, ctx.route.name, ctx.path, err.status, startNs, undefined, ctx, err)
      return
    }
    const upstreamHost = ctx.route.preserveHost && req.headers.host !== undefined ? req.headers.host : ctx.route.service.hostHeader
    const headers = upstreamHeaders(req, rt.strip, { remoteAddress: ctx.remoteAddress, proto: listener.tls ? 'https' : 'http', host: req.headers.host ?? '', upstreamHost, port: listener.port, requestId: id, trustForwardedFor: rt.trustedIps.has(ctx.remoteAddress) })
    applyHeaderMutations(headers, ctx.upstreamHeaders)
    if (req.headers['sec-websocket-key'] !== undefined) {
      for (const k of ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions']) {
        const v = req.headers[k]
        if (typeof v === 'string') setHeader(headers, k, v)
      }
    }
    const q = buildQuery(ctx.query, ctx.upstreamQuery)
    const path = upstreamPath(ctx.route.service.basePath, ctx.path, p.match.stripLength, ctx.route.stripPath, ctx.route.pathHandling)
    const status = await forwardUpgrade(req, socket, head, ctx.route.service, q === '' ? path : `${path}?${q}`, headers)
    accessLog(rt, req, id, ctx.route.name, ctx.path, status, startNs, undefined, ctx, undefined)
  }

  return { handle, handleUpgrade }
}

function writeRaw (socket: Duplex, err: GatewayError): void {
  const body = JSON.stringify({ message: err.message })
  let head = `HTTP/1.1 ${err.status} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`
  for (const [k, v] of Object.entries(err.headers ?? {})) if (k !== 'connection') head += `${k}: ${v}\r\n`
  if (socket.writable) socket.end(head + '\r\n' + body)
}
