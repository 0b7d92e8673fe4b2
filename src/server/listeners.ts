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
import { GatewayError } from '../errors/gateway-error.js'
import { rawErrorResponse } from '../errors/respond.js'

export interface BoundListener {
  readonly info: ListenerInfo
  readonly server: HttpServer | HttpsServer
  readonly host: string
  port: number
  readonly sockets: Set<Socket>
  /** The listener's effective client-certificate mode (after plugins asked for one). */
  mode: 'none' | 'request' | 'require' | 'plain'
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
    : createHttpsServer({ ...common, ...tlsOptions(l, requestClientCertificate), ALPNProtocols: ['http/1.1'] }, handlers.request)
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  server.on('upgrade', handlers.upgrade)
  // a gateway is not a forward proxy: CONNECT gets an answer instead of Node's silent drop
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    if (socket.writable) socket.end(rawErrorResponse(CONNECT_REFUSED))
    else socket.destroy()
  })
  if (l.tls !== undefined) {
    server.on('secureConnection', (s: TLSSocket) => {
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
    if (!socket.writable || inProgress) { socket.destroy(); return }
    // close once the answer is flushed: a slowloris client that never closes its side must not keep the socket
    socket.once('finish', () => socket.destroy())
    socket.end(rawErrorResponse(PARSER_ERRORS[err.code ?? ''] ?? PARSER_ERRORS.default))
  })
  return { info, server, host: l.host, port: l.port, sockets, mode: effectiveMode(l, requestClientCertificate) }
}

/** The listener's own answers (requests node's parser refused, CONNECT), from the one catalogue. */
const CONNECT_REFUSED = new GatewayError('CB_ERR_METHOD_NOT_ALLOWED', { message: 'CONNECT is not supported' })
const PARSER_ERRORS: Record<string, GatewayError> = {
  HPE_HEADER_OVERFLOW: new GatewayError('CB_ERR_HEADER_TOO_LARGE'),
  ERR_HTTP_REQUEST_TIMEOUT: new GatewayError('CB_ERR_REQUEST_TIMEOUT'),
  default: new GatewayError('CB_ERR_BAD_REQUEST'),
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
