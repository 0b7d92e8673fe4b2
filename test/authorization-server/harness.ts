/**
 * Serves the authorization server as users run it: a real gateway (in process) whose TLS listener on 127.0.0.1
 * requests (but does not require) client certificates, with the `authorization_server` section built by the test.
 * Its endpoints are the gateway's internal routes: routed, logged and counted like every route.
 */
import { request as httpsRequest } from 'node:https'
import type { IncomingMessage } from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AuthorizationServer } from '../../src/authorization-server/index.js'
import type { TestPki } from '../helpers/pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/process.js'

export interface LogLine { level: number | string, msg?: string, [k: string]: unknown }

export interface Harness {
  port: number
  /** https://localhost:PORT — the issuer when the config does not set one. */
  origin: string
  /** The config dir: relative paths resolve here. */
  dir: string
  instance: AuthorizationServer
  gateway: TestGateway
  logs: LogLine[]
  /** Stop the gateway and start a new one over the same dir and port (a restart). */
  restart(config?: Record<string, unknown>): Promise<void>
  close(): Promise<void>
}

/** The gateway config around an `authorization_server` section (JSON is YAML). */
export function gatewayYaml (pki: TestPki, port: number, section: Record<string, unknown>, o: { listenerTls?: boolean, extra?: string } = {}): string {
  const tls = o.listenerTls === false
    ? ''
    : `
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request`
  return `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:${port}${tls}
authorization_server: ${JSON.stringify(section)}
${o.extra ?? ''}`
}

/**
 * Start a gateway serving the section `config(origin)` builds (validated and created by the core, as in
 * production). `dir`: reuse a config dir (restarts). `extra`: more YAML (routes, plugins).
 */
export async function startAuthorizationServer (pki: TestPki, config: (origin: string) => Record<string, unknown>, opts: { dir?: string, listenerTls?: boolean, extra?: string } = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'certbound-as-'))
  // the issuer names the port, so it is chosen before the gateway starts
  const port = await freePort()
  const origin = `https://localhost:${port}`
  let raw = config(origin)
  const logs: LogLine[] = []
  const boot = async (): Promise<TestGateway> => {
    const g = await startGateway(gatewayYaml(pki, port, raw, opts), { dir })
    g.logs.length = 0
    // one array across restarts: tests read every line logged so far
    const push = logs.push.bind(logs)
    g.logs.push = (...l: typeof g.logs) => { push(...(l as LogLine[])); return logs.length }
    return g
  }
  let gw = await boot()
  return {
    port,
    origin,
    dir,
    get instance () { return gw.gateway.current().extensions[0] as AuthorizationServer },
    get gateway () { return gw },
    logs,
    async restart (c) {
      await gw.gateway.close(500)
      if (c !== undefined) raw = c
      gw = await boot()
    },
    async close () {
      await gw.gateway.close(500)
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
