/**
 * One HTTP/1.1 connection, plain or TLS, driven by hand: requests go out one at a time on the same socket, so a
 * test can tell that a keep-alive connection survived something (a reload) and see the certificate it was set up
 * with. Responses are parsed just enough for the gateway and the echo upstream (Content-Length or chunked).
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { X509Certificate } from 'node:crypto'

export interface Http1Response { status: number, headers: Record<string, string>, body: string }

export interface Http1Connection {
  readonly socket: Socket | TLSSocket
  /** The server certificate of this connection's handshake (TLS only). */
  readonly serverCertificate: X509Certificate | undefined
  /** Send one request and read its response; rejects if the connection closes first. */
  request(method: string, path: string, headers?: Record<string, string>, body?: string): Promise<Http1Response>
  /** True once the server (or we) closed the connection. */
  readonly closed: boolean
  /** Resolves when the connection is closed. */
  readonly closedAt: Promise<number>
  close(): void
}

export interface Http1Options {
  port: number
  host?: string
  /** TLS: CA, optional client certificate and key (PEM). */
  tls?: { ca: string, cert?: string, key?: string, servername?: string }
  timeoutMs?: number
}

export function openConnection (o: Http1Options): Promise<Http1Connection> {
  return new Promise((resolve, reject) => {
    const host = o.host ?? '127.0.0.1'
    let buf = Buffer.alloc(0)
    let waiter: { resolve(r: Http1Response): void, reject(e: Error): void } | undefined
    let closed = false
    let markClosed!: (t: number) => void
    const closedAt = new Promise<number>(r => { markClosed = r })
    const socket: Socket | TLSSocket = o.tls === undefined
      ? tcpConnect({ port: o.port, host }, onConnect)
      : tlsConnect({ port: o.port, host, ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, servername: o.tls.servername ?? 'localhost' }, onConnect)
    socket.setTimeout(o.timeoutMs ?? 10_000, () => socket.destroy(new Error('timeout')))
    socket.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); tryParse() })
    socket.on('error', (e: Error) => { waiter?.reject(e); waiter = undefined; if (!connected) reject(e) })
    socket.on('close', () => {
      closed = true
      markClosed(Date.now())
      waiter?.reject(new Error('connection closed before a response'))
      waiter = undefined
      if (!connected) reject(new Error('connection closed during the handshake'))
    })
    let connected = false

    function tryParse (): void {
      if (waiter === undefined) return
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = buf.subarray(0, end).toString('latin1').split('\r\n')
      const status = Number(head[0].split(' ')[1])
      const headers: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const c = line.indexOf(':')
        if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim()
      }
      let rest = buf.subarray(end + 4)
      let body: Buffer
      if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = []
        let off = 0
        for (;;) {
          const nl = rest.indexOf('\r\n', off)
          if (nl < 0) return
          const size = parseInt(rest.subarray(off, nl).toString('latin1'), 16)
          if (rest.length < nl + 2 + size + 2) return
          if (size === 0) { off = nl + 4; break }
          parts.push(rest.subarray(nl + 2, nl + 2 + size))
          off = nl + 2 + size + 2
        }
        body = Buffer.concat(parts)
        rest = rest.subarray(off)
      } else {
        const len = Number(headers['content-length'] ?? 0)
        if (rest.length < len) return
        body = rest.subarray(0, len)
        rest = rest.subarray(len)
      }
      buf = Buffer.from(rest)
      const w = waiter
      waiter = undefined
      w.resolve({ status, headers, body: body.toString('utf8') })
    }

    function onConnect (): void {
      connected = true
      const peer = o.tls === undefined ? undefined : (socket as TLSSocket).getPeerX509Certificate()
      resolve({
        socket,
        serverCertificate: peer,
        get closed () { return closed },
        closedAt,
        request (method, path, headers = {}, body) {
          if (closed) return Promise.reject(new Error('connection is closed'))
          return new Promise((res, rej) => {
            waiter = { resolve: res, reject: rej }
            let head = `${method} ${path} HTTP/1.1\r\nhost: localhost\r\n`
            for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
            if (body !== undefined) head += `content-length: ${Buffer.byteLength(body)}\r\n`
            socket.write(head + '\r\n' + (body ?? ''))
          })
        },
        close () { socket.destroy() },
      })
    }
  })
}
