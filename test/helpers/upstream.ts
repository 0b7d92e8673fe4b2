import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
  rawHeaders: string[]
  bodyBytes: number
}

export interface Upstream {
  url: string
  port: number
  requests: RecordedRequest[]
  /** Replace the behaviour for the next requests. */
  handler: ((req: IncomingMessage, res: ServerResponse, body: Buffer | undefined) => void) | undefined
  close(): Promise<void>
}

/**
 * A real echo upstream that records what it received (to assert stripped and injected headers). The
 * default answer is JSON {method, url, headers, body_bytes}; bodies are counted, not kept (streaming tests).
 */
export async function startUpstream (opts: { port?: number } = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const up: Upstream = {
    url: '',
    port: 0,
    requests,
    handler: undefined,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>(r => server.close(() => r()))
    },
  }
  const server: Server = createServer((req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => {
      const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes }
      requests.push(rec)
      if (up.handler !== undefined) return up.handler(req, res, undefined)
      const body = JSON.stringify({ method: rec.method, url: rec.url, headers: rec.headers, body_bytes: bytes })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-upstream': 'echo' })
      res.end(body)
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(r => server.listen(opts.port ?? 0, '127.0.0.1', () => r()))
  const a = server.address()
  up.port = typeof a === 'object' && a !== null ? a.port : 0
  up.url = `http://127.0.0.1:${up.port}`
  return up
}
