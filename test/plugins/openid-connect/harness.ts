/**
 * Unit harness for plugin tests: a real RequestContext around a real http.IncomingMessage (built on a socket,
 * no server needed), plugin deps with a silent logger, and a helper that runs `access` and returns what it threw.
 */
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { X509Certificate } from 'node:crypto'
import { resolve } from 'node:path'
import { pino } from 'pino'
import { RequestContext } from '../../../src/pipeline/context.js'
import { StripSet, upstreamHeaders } from '../../../src/proxy/headers.js'
import type { LocalServices, PluginDefinition, PluginDeps, PluginInstance } from '../../../src/pipeline/types.js'
import { ServiceMap } from '../../../src/pipeline/services.js'
import type { HttpClient } from '../../../src/http-client/types.js'
import { createHttpClient } from '../../../src/http-client/index.js'
import { describeCertificate, type TlsIdentity } from '../../../src/server/peer.js'
import type { GatewayError } from '../../../src/errors/index.js'
import { storeDeps } from '../../helpers/clock.js'

export interface CtxOptions {
  /** Raw request headers in wire order (duplicates allowed). */
  headers?: Array<[string, string]>
  /** The TLS session's client certificate (PEM); omit for a TLS session without one. */
  certPem?: string
  /** Whether the listener verified the certificate (default true when certPem is given). */
  verified?: boolean
  /** Plain HTTP instead of TLS. */
  plain?: boolean
  query?: string
  path?: string
  method?: string
  routeName?: string
  remoteAddress?: string
  /**
   * The gateway-wide identity header names (what src/runtime/compile.ts collects from every plugin's
   * identityHeaders): ctx.upstream then strips them as the gateway does. Omitted: the built-in names only.
   */
  strip?: readonly string[]
}

/** A TLS identity as the server computes it from a socket, built from a PEM. */
export function tlsFor (certPem: string | undefined, verified = true): TlsIdentity {
  const certificate = certPem === undefined ? null : describeCertificate(new X509Certificate(certPem))
  return Object.freeze({
    protocol: 'TLSv1.3',
    cipher: 'TLS_AES_128_GCM_SHA256',
    resumed: false,
    certificate,
    verified: certificate !== null && verified,
    verifyError: certificate !== null && !verified ? 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' : null,
  })
}

/** A RequestContext around a real IncomingMessage, with headers set the way node:http's parser sets them. */
export function makeCtx (o: CtxOptions = {}): RequestContext {
  const req = new IncomingMessage(new Socket())
  req.method = o.method ?? 'GET'
  req.url = (o.path ?? '/') + (o.query === undefined || o.query === '' ? '' : '?' + o.query)
  const raw: string[] = []
  const headers: Record<string, string | string[]> = {}
  for (const [k, v] of o.headers ?? []) {
    raw.push(k, v)
    const l = k.toLowerCase()
    const prev = headers[l]
    if (prev === undefined) headers[l] = v
    else if (l === 'set-cookie') headers[l] = [...(prev as string[]), v]
    else headers[l] = `${String(prev)}, ${v}`
  }
  req.rawHeaders = raw
  req.headers = headers
  return new RequestContext({
    id: 'test-request',
    startNs: process.hrtime.bigint(),
    req,
    method: req.method,
    path: o.path ?? '/',
    query: o.query ?? '',
    remoteAddress: o.remoteAddress ?? '127.0.0.1',
    route: { name: o.routeName ?? 'r' } as never,
    tls: o.plain === true ? null : tlsFor(o.certPem, o.verified ?? true),
    listenerTls: o.plain !== true,
    log: pino({ level: 'silent' }),
    upstreamBase: o.strip === undefined ? undefined : () => upstreamHeaders(req, new StripSet(o.strip ?? []), { remoteAddress: o.remoteAddress ?? '127.0.0.1', proto: o.plain === true ? 'http' : 'https', host: '', upstreamHost: 'upstream.test', port: 443, requestId: 'test-request', trustForwardedFor: false }),
  })
}

export function testDeps (o: { http?: HttpClient, local?: LocalServices } = {}): PluginDeps {
  return {
    baseDir: process.cwd(),
    resolvePath: (p: string) => resolve(process.cwd(), p),
    logger: pino({ level: 'silent' }),
    http: o.http ?? createHttpClient(),
    local: o.local ?? new ServiceMap(),
    where: 'test',
    ...storeDeps(),
  }
}

/** Validate `config` with the plugin's schema (as the loader does) and create the instance. */
export async function build (def: PluginDefinition, config: unknown, deps: PluginDeps = testDeps()): Promise<PluginInstance> {
  return def.create(def.schema.parse(config), deps)
}

/** The schema's issues for `config` as [path, message] pairs; [] when valid. */
export function configIssues (def: PluginDefinition, config: unknown): Array<[string, string]> {
  const r = def.schema.safeParse(config)
  if (r.success) return []
  return r.error.issues.map(i => [i.path.join('.'), i.message])
}

/** Run `access`; resolve to the GatewayError it threw, or undefined if the request may continue. */
export async function run (p: PluginInstance, ctx: RequestContext): Promise<GatewayError | undefined> {
  try {
    await p.access!(ctx)
    return undefined
  } catch (e) {
    return e as GatewayError
  }
}

/** The upstream header mutations of a context as a name → value map (last set wins; null = removed). */
export function upstreamHeaderMap (ctx: RequestContext): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const [n, v, append] of ctx.upstreamHeaders) out[n] = append && out[n] != null && v !== null ? `${out[n]}, ${v}` : v
  return out
}
