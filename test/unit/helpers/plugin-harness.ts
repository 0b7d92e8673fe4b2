/**
 * Run one plugin instance's access phase inside a real HTTPS server, against requests from a real TLS client.
 * The RequestContext is built from the real IncomingMessage and the socket's TLS identity, as the gateway does.
 */
import { createServer, request, type Agent, type RequestOptions, type Server } from 'node:https'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { RequestContext } from '../../../src/pipeline/context.js'
import type { PluginDeps, PluginInstance } from '../../../src/pipeline/types.js'
import { tlsIdentity } from '../../../src/server/peer.js'
import { GatewayError } from '../../../src/errors/index.js'
import { createHttpClient } from '../../../src/http-client/index.js'
import type { LocalServices } from '../../../src/pipeline/types.js'
import path from 'node:path'
import { storeDeps } from '../../helpers/clock.js'

export interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: {
    message?: string
    code?: string
    detail?: string
    /** GatewayError.errCause: the sub-reason the log and the dashboard get. */
    errCause?: string
    upstream?: Array<[string, string | null, boolean]>
    credential?: Record<string, unknown>
  }
  /** The upstream header changes as a map (last write wins; null = removed). */
  readonly upstream: Map<string, string | null>
  /** The TLS session ticket the server issued, for resumption tests. */
  readonly session: Buffer | undefined
}

export interface ClientOptions {
  readonly certPem?: string
  readonly keyPem?: string
  readonly headers?: Record<string, string | string[]>
  readonly agent?: Agent
  readonly path?: string
  /** A TLS session to resume (from a previous Answer's `session`). */
  readonly session?: Buffer
}

export interface Harness {
  readonly port: number
  /** Every context the server built, in order (for assertions on request state). */
  readonly contexts: RequestContext[]
  send (opts?: ClientOptions): Promise<Answer>
  close (): Promise<void>
}

export const silent: Logger = pino({ level: 'silent' })

/** PluginDeps for tests: config-relative paths resolve against `dir`. */
export function testDeps (dir: string, caPem: string[], local: LocalServices = { get: () => undefined }, logger: Logger = silent): PluginDeps {
  return {
    baseDir: dir,
    resolvePath: (p: string) => path.resolve(dir, p),
    logger,
    http: createHttpClient({ trustedCa: caPem }),
    local,
    where: 'test',
    ...storeDeps(),
  }
}

export async function startHarness (instance: PluginInstance, tls: { certPem: string, keyPem: string, caPem: string }, log: Logger = silent): Promise<Harness> {
  const contexts: RequestContext[] = []
  const server: Server = createServer({
    cert: tls.certPem,
    key: tls.keyPem,
    ca: [tls.caPem],
    requestCert: true,
    rejectUnauthorized: false,
  }, function harnessHandler (req: IncomingMessage, res: ServerResponse) {
    const ctx = new RequestContext({
      id: String(contexts.length + 1),
      startNs: process.hrtime.bigint(),
      req,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      query: '',
      remoteAddress: req.socket.remoteAddress ?? '',
      route: { name: 'r' } as never,
      tls: tlsIdentity(req.socket),
      listenerTls: true,
      log,
    })
    contexts.push(ctx)
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      const text = JSON.stringify(body)
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(text)
    }
    Promise.resolve()
      .then(() => instance.access?.(ctx))
      .then(() => {
        const c = ctx.credential
        reply(200, { upstream: ctx.upstreamHeaders, credential: c === undefined ? undefined : { ...c, token: undefined } })
      }, (err: unknown) => {
        if (err instanceof GatewayError) reply(err.status, { message: err.message, code: err.code, detail: err.detail, errCause: err.errCause }, err.headers)
        else reply(500, { message: String(err), code: 'TEST_UNEXPECTED' })
      })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port

  return {
    port,
    contexts,
    send (opts: ClientOptions = {}): Promise<Answer> {
      return new Promise((resolve, reject) => {
        const options: RequestOptions & { session?: Buffer } = {
          host: '127.0.0.1',
          port,
          path: opts.path ?? '/',
          method: 'GET',
          ca: tls.caPem,
          cert: opts.certPem,
          key: opts.keyPem,
          headers: opts.headers,
          agent: opts.agent ?? false,
          session: opts.session, // passed through to tls.connect
        }
        const req = request(options, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body']
            const upstream = new Map<string, string | null>()
            for (const [n, v] of body.upstream ?? []) upstream.set(n, v)
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, upstream, session })
          })
          res.on('error', reject)
        })
        let session: Buffer | undefined
        req.on('socket', (s) => { s.on('session', (b: Buffer) => { session = b }) })
        req.on('error', reject)
        req.end()
      })
    },
    close (): Promise<void> {
      server.closeAllConnections()
      return new Promise(resolve => server.close(() => resolve()))
    },
  }
}
