/**
 * Serves the authorization server extension from a plain node:https server (the gateway core is not needed):
 * a real TLS listener on 127.0.0.1:0 that requests (but does not require) client certificates, as the
 * gateway's `client_certificate: request` listeners do, with ctx.tls from src/server/peer.ts.
 */
import { createServer, request as httpsRequest, type Server } from 'node:https'
import type { IncomingMessage } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Writable } from 'node:stream'
import { randomUUID } from 'node:crypto'
import { pino, type Logger } from 'pino'
import { tlsIdentity } from '../../src/server/peer.js'
import { createHttpClient } from '../../src/http-client/index.js'
import { authorizationServer, type AuthorizationServer } from '../../src/authorization-server/index.js'
import type { TestPki } from '../helpers/pki.js'
import { storeDeps } from '../helpers/clock.js'

export interface LogLine { level: number, msg?: string, [k: string]: unknown }

export interface Harness {
  port: number
  /** https://localhost:PORT — the issuer when the config does not set one. */
  origin: string
  /** The config dir: relative paths resolve here. */
  dir: string
  instance: AuthorizationServer
  logs: LogLine[]
  /** Replace the running instance with a new one over the same dir (a restart). */
  restart(config?: Record<string, unknown>): Promise<void>
  close(): Promise<void>
}

/**
 * Start a TLS listener and the extension on it. `config(origin)` builds the raw `authorization_server`
 * section (validated with the extension's schema, as the core does). `dir`: reuse a config dir (restarts).
 */
export async function startAuthorizationServer (pki: TestPki, config: (origin: string) => Record<string, unknown>, opts: { dir?: string, listenerTls?: boolean } = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'certbound-as-'))
  const logs: LogLine[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine)
      cb()
    },
  })
  const logger: Logger = pino({ level: 'debug' }, sink)
  let instance: AuthorizationServer | undefined
  const server: Server = createServer({
    cert: pki.server.certPem,
    key: pki.server.keyPem,
    ca: [pki.ca.certPem],
    requestCert: true,
    rejectUnauthorized: false,
  }, function onRequest (req, res) {
    const url = new URL(req.url ?? '/', 'https://localhost')
    const info = { tls: tlsIdentity(req.socket), listenerTls: opts.listenerTls ?? true, requestId: randomUUID(), path: url.pathname, query: url.search.slice(1), log: logger }
    Promise.resolve(instance!.handle!(req, res, info)).then((handled) => {
      if (!handled) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not the authorization server') }
    }, (err: unknown) => { res.writeHead(500); res.end(String(err)) })
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  const origin = `https://localhost:${port}`
  const http = createHttpClient()
  let raw = config(origin)
  const make = async (c: Record<string, unknown>) => {
    const parsed = authorizationServer.schema.parse(c)
    return await authorizationServer.create(parsed, { baseDir: dir, resolvePath: p => resolve(dir, p), logger, http, where: [], ...storeDeps() }) as AuthorizationServer
  }
  instance = await make(raw)
  return {
    port,
    origin,
    dir,
    get instance () { return instance! },
    logs,
    async restart (c) {
      await instance!.close()
      if (c !== undefined) raw = c
      instance = await make(raw)
    },
    async close () {
      await instance?.close()
      server.closeAllConnections()
      await new Promise<void>(r => server.close(() => r()))
      await http.close()
      if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface Reply {
  status: number
  headers: IncomingMessage['headers']
  text: string
  /** The body parsed as JSON (undefined if it is not JSON). */
  json: Record<string, unknown>
}

export interface RequestOptions {
  method?: string
  /** Form parameters; arrays repeat the parameter. Encoded as application/x-www-form-urlencoded. */
  form?: Record<string, string | string[]>
  body?: string | Buffer
  headers?: Record<string, string | string[]>
  /** Client certificate to present (its certFile; chainFile for chained clients) */
  cert?: { certPem: string, keyPem: string, chainFile?: string }
  /** HTTP Basic credentials, form-urlencoded first as RFC 6749 §2.3.1 says. */
  basic?: [id: string, secret: string]
}

/** One request on a fresh TLS connection (no session reuse between different client certificates). */
export function call (port: number, path: string, o: RequestOptions = {}): Promise<Reply> {
  let body: string | Buffer | undefined = o.body
  const headers: Record<string, string | string[]> = { host: `localhost:${port}`, ...o.headers }
  if (o.form !== undefined) {
    const p = new URLSearchParams()
    for (const [k, v] of Object.entries(o.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x)
    body = p.toString()
    headers['content-type'] ??= 'application/x-www-form-urlencoded'
  }
  if (o.basic !== undefined) {
    const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+')
    headers.authorization = 'Basic ' + Buffer.from(`${enc(o.basic[0])}:${enc(o.basic[1])}`).toString('base64')
  }
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      path,
      servername: 'localhost',
      method: o.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      rejectUnauthorized: false,
      agent: false,
      ...(o.cert === undefined ? {} : { cert: o.cert.chainFile !== undefined ? readChain(o.cert.chainFile) : o.cert.certPem, key: o.cert.keyPem }),
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: Record<string, unknown> = {}
        try { json = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
        resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

function readChain (file: string): string { return readFileSync(file, 'utf8') }

/** Decode a JWT's header and payload without verifying (tests verify separately). */
export function decodeJwt (token: string): { header: Record<string, unknown>, payload: Record<string, unknown> } {
  const [h, p] = token.split('.')
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>, payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown> }
}
