import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { constants } from 'node:crypto'
import type { Socket } from 'node:net'
import type { TLSSocket, SecureContextOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { ResolvedListener } from '../config/validate.js'
import type { LimitsConfig } from '../config/schema.js'
import type { GatewayMetrics } from '../observability/metrics.js'
import type { ListenerInfo } from './handler.js'

export interface BoundListener {
  readonly info: ListenerInfo
  readonly server: HttpServer | HttpsServer
  readonly host: string
  port: number
  readonly sockets: Set<Socket>
  /** The listener's effective client-certificate mode (after plugins asked for one). */
  mode: 'none' | 'request' | 'require' | 'plain'
  /** gateway.limits as this listener reads them per connection (handshake guard). */
  readonly live: LiveLimits
}

/**
 * TLS options for a listener. `request`: ask for a certificate and finish the handshake whatever comes
 * (plugins decide); `require`: OpenSSL refuses the handshake without a certificate verifying to client_ca.
 * TLS < 1.2 is never offered; renegotiation is disabled (a certificate must not change mid-connection).
 */
export function tlsOptions (l: ResolvedListener, requestClientCertificate: boolean): SecureContextOptions & { requestCert: boolean, rejectUnauthorized: boolean } {
  const tls = l.tls!
  const mode = tls.clientCertificate === 'none' && requestClientCertificate ? 'request' : tls.clientCertificate
  return {
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    requestCert: mode !== 'none',
    rejectUnauthorized: mode === 'require',
    minVersion: tls.minVersion,
    ciphers: tls.ciphers,
    honorCipherOrder: true,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  }
}

export function effectiveMode (l: ResolvedListener, requestClientCertificate: boolean): BoundListener['mode'] {
  if (l.tls === undefined) return 'plain'
  return l.tls.clientCertificate === 'none' && requestClientCertificate ? 'request' : l.tls.clientCertificate
}

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
}

export function createListener (l: ResolvedListener, index: number, limits: LimitsConfig, requestClientCertificate: boolean, metrics: GatewayMetrics, makeHandlers: (info: ListenerInfo) => ListenerHandlers): BoundListener {
  const info: ListenerInfo = { name: `listen[${index}]`, tls: l.tls !== undefined, port: l.port }
  const handlers = makeHandlers(info)
  // read at each new connection, so a reload that keeps this listener applies new limits (applyLimits)
  const live: LiveLimits = { limits }
  const common = {
    maxHeaderSize: limits.max_header_size,
    headersTimeout: limits.header_timeout,
    requestTimeout: limits.request_timeout,
    keepAliveTimeout: limits.keepalive_timeout,
    // node checks header_timeout and request_timeout on this timer (default 30 s, which would let a slowloris
    // connection live 30 s past a 1 s timeout)
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    // strict parsing: no lenient flags, so CL+TE, duplicate Content-Length and obs-fold are 400s (smuggling)
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
  }
  const server = l.tls === undefined
    ? createHttpServer(common, handlers.request)
    // node's own handshake timer is only a backstop behind guardHandshakes' (which follows reloads)
    : createHttpsServer({ ...common, ...tlsOptions(l, requestClientCertificate), ALPNProtocols: ['http/1.1'], handshakeTimeout: limits.handshake_timeout + 1000 }, handlers.request)
  // one more than allowed, so the handler can tell "exactly the limit" from "more were dropped" (431, never a
  // silent truncation: node keeps the first N and drops the rest, a second Authorization included)
  server.maxHeadersCount = limits.max_header_count + 1
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  const secured = new WeakSet<Duplex>()
  if (l.tls !== undefined) guardHandshakes(server as HttpsServer, info.name, live, metrics, secured)
  server.on('upgrade', handlers.upgrade)
  // a gateway is not a forward proxy: CONNECT gets an answer instead of Node's silent drop
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    const body = '{"message":"CONNECT is not supported"}'
    if (socket.writable) socket.end(`HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
    else socket.destroy()
  })
  if (l.tls !== undefined) {
    server.on('secureConnection', (s: TLSSocket) => {
      secured.add(s)
      metrics.handshake(info.name)
      s.on('error', () => { /* resets after the handshake are the client's business */ })
    })
    server.on('tlsClientError', (err: Error & { code?: string }) => {
      metrics.certFailure(info.name, tlsFailureReason(err))
    })
  }
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    // a response already under way (a request_timeout during a slow upload) cannot get a second status line
    const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
    // a TLS socket whose handshake never completed (a handshake timeout, half a ClientHello) cannot carry an
    // answer: writing one waits forever for a 'finish' that never comes, and the socket leaks in CLOSE-WAIT
    if (!socket.writable || inProgress || (l.tls !== undefined && !secured.has(socket))) { socket.destroy(); return }
    // close once the answer is flushed: a slowloris client that never closes its side must not keep the socket,
    // nor one that never reads it (the flush never ends): the answer gets ERROR_FLUSH_MS at most
    const flushTimer = setTimeout(() => socket.destroy(), ERROR_FLUSH_MS)
    flushTimer.unref()
    socket.once('close', () => clearTimeout(flushTimer))
    socket.once('finish', () => socket.destroy())
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400)
    const body = JSON.stringify({ message: status === 431 ? 'Request header fields too large' : status === 408 ? 'Request timeout' : 'Bad request' })
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
  })
  return { info, server, host: l.host, port: l.port, sockets, mode: effectiveMode(l, requestClientCertificate), live }
}

/** How long an error answer written on clientError may take to flush before the socket is destroyed. */
const ERROR_FLUSH_MS = 2000

/** The limits a listener reads per connection; replaced on reload. */
export interface LiveLimits { limits: LimitsConfig }

/**
 * Bound TLS handshakes per listener: each new TCP connection gets `handshake_timeout` to finish its handshake
 * and is destroyed otherwise (without writing: nothing can be written before a handshake); at most
 * `max_handshakes_in_progress` may be in progress at once, `max_handshakes_per_address` of them from one IP address;
 * a connection beyond either is closed at once. Raw and TLS
 * sockets are matched by their remote address and port (unique among a listener's live connections).
 */
function guardHandshakes (server: HttpsServer, listener: string, live: LiveLimits, metrics: GatewayMetrics, secured: WeakSet<Duplex>): void {
  const pending = new Map<string, { raw: Socket, timer: NodeJS.Timeout, address: string }>()
  const perAddress = new Map<string, number>()
  const done = (key: string, raw?: Socket): void => {
    const p = pending.get(key)
    if (p === undefined || (raw !== undefined && p.raw !== raw)) return
    clearTimeout(p.timer)
    pending.delete(key)
    const n = (perAddress.get(p.address) ?? 1) - 1
    if (n <= 0) perAddress.delete(p.address)
    else perAddress.set(p.address, n)
    metrics.handshakesInProgress(listener, pending.size)
  }
  server.on('connection', function guardHandshake (raw: Socket) {
    const address = raw.remoteAddress ?? ''
    const key = `${address}|${raw.remotePort ?? ''}`
    // a live connection's address and port are unique: an entry under the same key belongs to a socket that is gone
    done(key)
    if (pending.size >= live.limits.max_handshakes_in_progress) {
      metrics.handshakeRefused(listener, 'too_many_in_progress')
      raw.destroy()
      return
    }
    const fromAddress = perAddress.get(address) ?? 0
    if (fromAddress >= live.limits.max_handshakes_per_address) {
      metrics.handshakeRefused(listener, 'too_many_from_address')
      raw.destroy()
      return
    }
    perAddress.set(address, fromAddress + 1)
    const timer = setTimeout(function handshakeTimeout () {
      if (pending.get(key)?.raw !== raw) return
      done(key)
      metrics.handshakeRefused(listener, 'timeout')
      raw.destroy()
    }, live.limits.handshake_timeout)
    timer.unref()
    pending.set(key, { raw, timer, address })
    metrics.handshakesInProgress(listener, pending.size)
    raw.once('close', () => done(key, raw))
  })
  server.on('secureConnection', (s: TLSSocket) => {
    done(`${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`)
    secured.add(s)
  })
}

function tlsFailureReason (err: Error & { code?: string }): string {
  const m = `${err.code ?? ''} ${err.message}`
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|peer did not return a certificate/i.test(m)) return 'no_certificate'
  if (/UNSUPPORTED_PROTOCOL|unsupported protocol|WRONG_VERSION/i.test(m)) return 'protocol_version'
  if (/certificate|verify|CERT/i.test(m)) return 'certificate'
  if (/ECONNRESET|socket hang up/i.test(m)) return 'reset'
  return 'other'
}

/** How often node checks header_timeout and request_timeout on open connections. */
export const TIMEOUT_CHECK_MS = 250

/** gateway.limits on a listener that outlives a reload: node reads these per connection or per check. */
export function applyLimits (b: BoundListener, limits: LimitsConfig): void {
  const s = b.server as BoundListener['server'] & { maxHeaderSize?: number }
  s.maxHeaderSize = limits.max_header_size
  s.headersTimeout = limits.header_timeout
  s.requestTimeout = limits.request_timeout
  s.keepAliveTimeout = limits.keepalive_timeout
  s.maxHeadersCount = limits.max_header_count + 1
  b.live.limits = limits
}

export function listen (b: BoundListener): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e)
    b.server.once('error', onError)
    b.server.listen(b.port, b.host, 1024, () => {
      b.server.off('error', onError)
      const a = b.server.address()
      if (a !== null && typeof a === 'object') { b.port = a.port; b.info.port = a.port }
      resolve()
    })
  })
}
