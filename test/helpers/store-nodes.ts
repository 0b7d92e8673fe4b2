/**
 * certbound nodes for the shared-state tests: real processes (`certbound start`), TLS with the test PKI, the
 * built-in AS (client1, tls_client_auth, introspection: true), and two token routes in front of an echo —
 * `/jwt` (openid-connect validating the AS's JWTs in process) and `/intro` (token-introspection against the AS,
 * with a 30 s cache, so only the revocation check can refuse a revoked token there). Driven with the real curl,
 * a new connection per request.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { curl, type CurlResult } from './curl.js'
import type { TestPki } from './pki.js'
import { freePort, startCertbound, waitFor, type CertboundProcess } from './process.js'

export interface NodeOptions {
  readonly dir: string
  readonly pki: TestPki
  readonly name: string
  /** The issuer every node shares (the load balancer's name, in production). */
  readonly issuerPort: number
  readonly port?: number
  readonly workers?: number
  /** gateway.store as YAML lines under `store:` (indented by 4), or none (memory). */
  readonly store?: string
  readonly stateDir?: boolean
}

export interface Node {
  readonly name: string
  readonly port: number
  readonly admin: string
  readonly file: string
  proc: CertboundProcess
  /** Access-log lines of requests to /jwt and /intro: which pid answered what. */
  served(): Array<{ pid: number, path: string, status: number, err?: string }>
  restart(): Promise<void>
  stop(): Promise<void>
}

/**
 * The `_format_version` line and `gateway:` section every store test node runs: one TLS listener asking for client
 * certificates (the test CA), the admin listener, and `gateway.store` when given (YAML lines indented by 4).
 */
export function gatewaySection (o: { pki: TestPki, port: number, adminPort: number, workers: number, store?: string }): string {
  const p = o.pki
  return `_format_version: "3.0"
gateway:
  workers: ${o.workers}
  admin_listen: 127.0.0.1:${o.adminPort}
  listen:
    - address: 127.0.0.1:${o.port}
      tls:
        cert: ${p.server.certFile}
        key: ${p.server.keyFile}
        client_ca: ${p.ca.certFile}
        client_certificate: request
  trusted_certificates: ${p.ca.certFile}
  limits:
    drain_timeout: 1000
${o.store === undefined ? '' : `  store:\n${o.store}\n`}`
}

export function nodeConfig (o: NodeOptions & { port: number, adminPort: number }): string {
  const p = o.pki
  const issuer = `https://localhost:${o.issuerPort}`
  return `${gatewaySection({ pki: p, port: o.port, adminPort: o.adminPort, workers: o.workers ?? 0, store: o.store })}authorization_server:
  issuer: ${issuer}
  ca_certificates: ${p.ca.certFile}
${o.stateDir === true ? `  state_dir: ${join(o.dir, o.name + '-state')}\n` : ''}  clients:
    - client_id: client1
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: system-access
      introspection: true
services:
  - name: echo
    url: http://127.0.0.1:9/unused
    routes:
      - name: jwt
        paths: [/jwt]
        plugins:
          - name: openid-connect
            config:
              issuer: ${issuer}
              auth_methods: [bearer]
              audience_required: [${issuer}]
          - name: request-termination
            config: { status_code: 200, echo: true }
      - name: intro
        paths: [/intro]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${issuer}/oauth2/introspect
              ttl: 30
          - name: request-termination
            config: { status_code: 200, echo: true }
`
}

export async function startNode (o: NodeOptions): Promise<Node> {
  const port = o.port ?? await freePort()
  const adminPort = await freePort()
  const file = join(o.dir, `${o.name}.yml`)
  writeFileSync(file, nodeConfig({ ...o, port, adminPort }))
  const admin = `http://127.0.0.1:${adminPort}`
  const spawnIt = (): CertboundProcess => {
    return startCertbound(file, ['--no-watch'])
  }
  const node: Node = {
    name: o.name,
    port,
    admin,
    file,
    proc: spawnIt(),
    served: () => node.proc.logs
      .filter(l => typeof l.path === 'string' && (l.path === '/jwt' || l.path === '/intro') && typeof l.status === 'number')
      .map(l => ({ pid: l.pid as number, path: l.path as string, status: l.status as number, err: l.err as string | undefined })),
    async restart () {
      await node.stop()
      node.proc = spawnIt()
      await ready(node)
    },
    async stop () {
      if (node.proc.proc.exitCode === null && node.proc.proc.signalCode === null) node.proc.proc.kill('SIGTERM')
      const t = setTimeout(() => { void node.proc.kill() }, 8000)
      await node.proc.exited
      clearTimeout(t)
    },
  }
  await ready(node)
  return node
}

export async function ready (n: Node, ms = 30_000): Promise<void> {
  await waitFor(`${n.name} ready`, async () => {
    if (n.proc.proc.exitCode !== null) throw new Error(`${n.name} exited: ${n.proc.stderr}`)
    return (await adminGet(n, '/status/ready')).status === 200 ? true : undefined
  }, ms)
}

export async function adminGet (n: Node, path: string): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await request(n.admin + path, { headersTimeout: 5000, bodyTimeout: 5000 })
  const text = await r.body.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: r.statusCode, json }
}

function tlsArgs (n: Node, pki: TestPki): string[] {
  return ['--cacert', pki.ca.certFile, '--cert', pki.client1.certFile, '--key', pki.client1.keyFile, '--resolve', `localhost:${n.port}:127.0.0.1`]
}

/** A token for client1 from node `n`'s token endpoint (bound to client1's certificate). */
export async function tokenAt (n: Node, pki: TestPki): Promise<string> {
  const r = await curl([...tlsArgs(n, pki), '-d', 'grant_type=client_credentials', '-d', 'client_id=client1', `https://localhost:${n.port}/oauth2/token`])
  if (r.status !== 200) throw new Error(`token at ${n.name}: ${r.status} ${r.body} ${r.stderr}`)
  return (JSON.parse(r.body) as { access_token: string }).access_token
}

export async function revokeAt (n: Node, pki: TestPki, token: string): Promise<CurlResult> {
  return await curl([...tlsArgs(n, pki), '-d', 'client_id=client1', '--data-urlencode', `token=${token}`, `https://localhost:${n.port}/oauth2/revoke`])
}

/** One request over a new connection (curl). */
export async function call (n: Node, pki: TestPki, path: '/jwt' | '/intro', token: string): Promise<CurlResult> {
  return await curl([...tlsArgs(n, pki), '-H', `authorization: Bearer ${token}`, `https://localhost:${n.port}${path}`])
}
