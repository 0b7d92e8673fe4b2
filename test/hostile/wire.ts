/**
 * Raw HTTP/1.1 over a plain or TLS socket, for requests no well-behaved client library would send (smuggling
 * framings, duplicate headers, invalid methods). Writes the given chunks, reads until the server closes the
 * connection or a timeout passes, and parses every response found in what came back.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'

export interface WireResponse {
  readonly status: number
  /** Lower-case names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

export interface WireResult {
  /** Every complete response parsed from the bytes received (a smuggled request would show as a second one). */
  readonly responses: readonly WireResponse[]
  /** The first response, or undefined when none came back (handshake refused, connection dropped). */
  readonly response: WireResponse | undefined
  /** The server closed the connection (FIN or reset) before the timeout. */
  readonly closed: boolean
  /** A socket or TLS error (e.g. the handshake was refused). */
  readonly error: string | undefined
  /** What the TLS handshake negotiated; undefined on plain sockets or when it failed. */
  readonly tls: { readonly protocol: string | null, readonly cipher: string, readonly resumed: boolean } | undefined
  /** The last TLS session ticket/ID the server sent, for resumption. */
  readonly session: Buffer | undefined
  readonly ms: number
  readonly raw: string
}

export interface WireTarget {
  readonly port: number
  readonly host?: string
  /** TLS client options (certificate, key, CA, versions, ciphers, session); omit for plain TCP. */
  readonly tls?: ConnectionOptions
  /** Source address of the connection (e.g. 127.0.0.2 to come from another peer on loopback). */
  readonly localAddress?: string
}

export interface WireOptions {
  /** Give up waiting for the server to close after this long (default 3000 ms). */
  readonly timeoutMs?: number
  /** Pause between chunks (default 0: everything in one write). */
  readonly pauseMs?: number
  /** Called once the connection is up, before the chunks are written (renegotiation tests). */
  readonly beforeWrite?: (socket: TLSSocket | Socket) => Promise<void>
}

/** Split a byte stream into HTTP/1.1 responses (Content-Length or chunked framing; otherwise the rest). */
export function parseResponses (raw: Buffer): WireResponse[] {
  const out: WireResponse[] = []
  let rest = raw
  while (rest.length > 0) {
    const text = rest.toString('latin1')
    if (!text.startsWith('HTTP/')) break
    const end = text.indexOf('\r\n\r\n')
    if (end < 0) break
    const lines = text.slice(0, end).split('\r\n')
    const status = Number(lines[0].split(' ')[1])
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':')
      if (c <= 0) continue
      const k = line.slice(0, c).trim().toLowerCase()
      const v = line.slice(c + 1).trim()
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`
    }
    let bodyBytes: Buffer
    let consumed: number
    const start = end + 4
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length'])
      bodyBytes = rest.subarray(start, start + n)
      consumed = start + n
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      let i = start
      for (;;) {
        const lineEnd = rest.indexOf('\r\n', i)
        if (lineEnd < 0) { i = rest.length; break }
        const size = parseInt(rest.subarray(i, lineEnd).toString('latin1'), 16)
        if (!Number.isFinite(size) || size === 0) { i = Math.min(rest.length, lineEnd + 4); break }
        parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
        i = lineEnd + 2 + size + 2
      }
      bodyBytes = Buffer.concat(parts)
      consumed = i
    } else {
      bodyBytes = rest.subarray(start)
      consumed = rest.length
    }
    out.push({ status, headers, body: bodyBytes.toString('utf8') })
    rest = rest.subarray(consumed)
  }
  return out
}

/** Connect, write `chunks`, collect the answer until the server closes or `timeoutMs` passes. */
export function exchange (target: WireTarget, chunks: ReadonlyArray<string | Buffer>, opts: WireOptions = {}): Promise<WireResult> {
  const t0 = performance.now()
  const timeoutMs = opts.timeoutMs ?? 3000
  return new Promise((resolve) => {
    const received: Buffer[] = []
    let error: string | undefined
    let session: Buffer | undefined
    let tlsInfo: WireResult['tls']
    let settled = false
    const host = target.host ?? '127.0.0.1'
    const tcp = tcpConnect({ host, port: target.port, localAddress: target.localAddress })
    const socket: Socket | TLSSocket = target.tls === undefined ? tcp : tlsConnect({ socket: tcp, servername: 'localhost', ...target.tls })
    const finish = (closed: boolean): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(received)
      const responses = parseResponses(raw)
      resolve({ responses, response: responses[0], closed, error, tls: tlsInfo, session, ms: performance.now() - t0, raw: raw.toString('latin1') })
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', (c: Buffer) => received.push(c))
    const onError = (e: Error & { code?: string }): void => { error ??= `${e.code ?? ''} ${e.message}`.trim() }
    socket.on('error', onError)
    if (socket !== tcp) tcp.on('error', onError)
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    if (target.tls !== undefined) (socket as TLSSocket).on('session', (s: Buffer) => { session = s })
    const write = async (): Promise<void> => {
      if (target.tls !== undefined) {
        const s = socket as TLSSocket
        const c = s.getCipher()
        tlsInfo = { protocol: s.getProtocol(), cipher: c.name, resumed: s.isSessionReused() }
      }
      if (opts.beforeWrite !== undefined) await opts.beforeWrite(socket)
      for (let i = 0; i < chunks.length; i++) {
        if (socket.destroyed || !socket.writable) return
        socket.write(chunks[i])
        if (opts.pauseMs !== undefined && opts.pauseMs > 0 && i < chunks.length - 1) await new Promise(r => setTimeout(r, opts.pauseMs))
      }
    }
    socket.once(target.tls === undefined ? 'connect' : 'secureConnect', () => {
      write().catch((e: unknown) => { error ??= String(e) })
    })
  })
}

/**
 * A raw request head (and body). Adds `Host: localhost` and `Connection: close` unless given (pass
 * `['Connection', '']`-free header lists; a header named `-Connection` suppresses the default).
 */
export function rawRequest (method: string, target: string, headers: ReadonlyArray<readonly [string, string]> = [], body: string | Buffer = ''): Buffer {
  const names = new Set(headers.map(([k]) => k.toLowerCase()))
  let head = `${method} ${target} HTTP/1.1\r\n`
  if (!names.has('host')) head += 'Host: localhost\r\n'
  for (const [k, v] of headers) if (k !== '-connection') head += `${k}: ${v}\r\n`
  if (!names.has('connection') && !names.has('-connection')) head += 'Connection: close\r\n'
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), typeof body === 'string' ? Buffer.from(body, 'latin1') : body])
}
