import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import { GatewayError } from '../errors/index.js'
import { rawErrorResponse } from '../errors/respond.js'
import type { UpstreamHead } from '../pipeline/types.js'
import type { CompiledService } from '../router/types.js'
import type { ForwardResult } from './forward.js'
import { downstreamHeaders, type HeaderList } from './headers.js'
import type { UpstreamPools } from './pools.js'

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT'])

export interface UpgradeRequest {
  readonly service: CompiledService
  /** Path and query for the upstream. */
  readonly path: string
  /** The upstream request headers after the gateway's hygiene (no hop-by-hop: undici writes Connection/Upgrade). */
  readonly headers: HeaderList
  readonly req: IncomingMessage
  /** The client's socket, handed over by node's 'upgrade' event. */
  readonly socket: Duplex
  /** Bytes the client sent after the request head. */
  readonly head: Buffer
  readonly requestId: string
  /** The same pools as every proxied request: the service's timeouts, TLS verification and gateway.trusted_certificates. */
  readonly pools: UpstreamPools
  /** The response phase, on the 101 or on the upstream's refusal. */
  readonly onHead: ((head: UpstreamHead) => void) | undefined
  /** Called once the tunnel is open, with a function that closes it (drain timeout on reload and shutdown). */
  readonly onOpen: (close: () => void) => void
  /** A failure of the upstream side of an open tunnel (logged and counted by the caller). */
  readonly onTunnelError: (err: Error) => void
}

function statusLine (status: number, text: string | undefined): string {
  return `HTTP/1.1 ${status} ${text ?? ''}\r\n`
}

function headText (headers: Record<string, string | string[]>): string {
  let s = ''
  for (const k in headers) {
    const v = headers[k]
    if (Array.isArray(v)) for (const x of v) s += `${k}: ${x}\r\n`
    else s += `${k}: ${v}\r\n`
  }
  return s
}

/**
 * WebSocket pass-through (RFC 6455 §4) as an undici dispatch with `upgrade: 'websocket'` on the service's pool:
 * a 101 hands over the upstream socket, which is spliced to the client's; any other answer is the upstream
 * refusing, relayed as a plain response. Resolves when the exchange is over — for a tunnel, when both sides have
 * closed — so the caller's in-flight count and access log cover the tunnel's whole life.
 */
export function forwardUpgrade (f: UpgradeRequest): Promise<ForwardResult> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const out: ForwardResult = { status: 0, upstreamMs: 0, bytes: 0, failure: undefined, retries: 0 }
    let settled = false
    const done = (): void => { if (!settled) { settled = true; resolve(out) } }
    const client = f.socket
    const { pool, hold } = f.pools.entry(f.service)
    if (hold.failFast(f.service.name)) {
      // the upstream refused its last connection (services[].connect_failure_hold): no attempt, as for requests
      const e = new GatewayError('CB_ERR_UPSTREAM_UNAVAILABLE', { detail: `websocket upstream: failing fast (connect_failure_hold ${hold.holdMs} ms)` })
      out.status = e.status
      out.failure = 'fail_fast'
      if (client.writable) client.end(rawErrorResponse(e))
      done()
      return
    }
    let controller: Dispatcher.DispatchController | undefined
    const onClientGone = (): void => { if (out.status === 0) { out.failure = 'client_closed'; controller?.abort(new Error('client closed')) } }
    client.once('close', onClientGone)

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart (c) { controller = c; if (client.destroyed) c.abort(new Error('client closed')) },
      onRequestUpgrade (_c, statusCode, headers, upSocket) {
        out.upstreamMs = performance.now() - t0
        const h: UpstreamHead = { status: statusCode, headers: headers as Record<string, string | string[] | undefined> }
        f.onHead?.(h)
        out.status = 101
        // the 101's own Connection/Upgrade are hop-by-hop: set for this hop (RFC 9110 §7.8)
        const down = downstreamHeaders(h.headers)
        down['x-request-id'] = f.requestId
        const up = upSocket as Duplex
        client.off('close', onClientGone)
        if (client.destroyed) { up.destroy(); done(); return }
        client.write(statusLine(101, 'Switching Protocols') + 'connection: Upgrade\r\nupgrade: websocket\r\n' + headText(down) + '\r\n')
        if (f.head.length > 0) up.write(f.head)
        let open = 2
        const closed = (): void => { if (--open === 0) done() }
        up.once('close', closed)
        client.once('close', closed)
        up.on('error', (err: Error) => { f.onTunnelError(err); client.destroy() })
        client.on('error', () => up.destroy())
        up.on('data', (chunk: Buffer) => { out.bytes += chunk.length })
        up.pipe(client)
        client.pipe(up)
        f.onOpen(() => { up.destroy(); client.destroy() })
      },
      onResponseStart (_c, statusCode, headers, statusMessage) {
        // the upstream refused the upgrade: relay its answer as a plain response, then close
        out.upstreamMs = performance.now() - t0
        const h: UpstreamHead = { status: statusCode, headers }
        f.onHead?.(h)
        out.status = h.status
        const down = downstreamHeaders(h.headers)
        delete down['content-length']
        down['x-request-id'] = f.requestId
        if (client.writable) client.write(statusLine(h.status, statusMessage) + headText(down) + 'connection: close\r\n\r\n')
      },
      onResponseData (_c, chunk: Buffer) { out.bytes += chunk.length; if (client.writable) client.write(chunk) },
      onResponseEnd () { client.off('close', onClientGone); client.end(); done() },
      onResponseError (_c, err: Error) {
        client.off('close', onClientGone)
        if (out.status === 0 && out.failure === undefined) {
          const code = (err as { code?: string }).code ?? 'UNKNOWN'
          out.failure = code
          const e = new GatewayError(TIMEOUTS.has(code) ? 'CB_ERR_UPSTREAM_TIMEOUT' : 'CB_ERR_UPSTREAM_UNAVAILABLE', { detail: `websocket upstream: ${code}` })
          out.status = e.status
          if (client.writable) client.end(rawErrorResponse(e))
        } else client.destroy()
        done()
      },
    }
    pool.dispatch({
      path: f.path,
      method: 'GET',
      headers: f.headers as unknown as string[],
      body: null,
      upgrade: 'websocket',
    }, handler)
  })
}
