import type { X509Certificate } from 'node:crypto'
import type { IncomingMessage, IncomingHttpHeaders } from 'node:http'
import type { Logger } from 'pino'
import type { PeerCertificate, TlsIdentity } from '../server/peer.js'
import type { CompiledRoute } from '../router/types.js'
import type { Confirmation } from '../auth/cnf.js'
import { StripSet, upstreamHeaders } from '../proxy/headers.js'

/**
 * A verified credential: what a token plugin proved about the caller. Later plugins (scopes, header
 * injection) read it. `token` is the raw bearer token: never log it.
 */
export interface Credential {
  readonly token: string
  readonly claims: Readonly<Record<string, unknown>>
  readonly sub: string | undefined
  readonly clientId: string | undefined
  /** Space-separated, as on the wire (RFC 6749 §3.3). */
  readonly scope: string
  readonly scopes: readonly string[]
  readonly tokenType: string | undefined
  /** RFC 8705 cnf."x5t#S256", when the token is certificate-bound (the same as `cnf?.['x5t#S256']`). */
  readonly cnfX5tS256: string | undefined
  /** The token's confirmation (RFC 7800 `cnf`: `x5t#S256`, `jkt`…), verified by `enforceBinding`; undefined when unbound or malformed. */
  readonly cnf?: Confirmation
  /** Which plugin verified it (for the log). */
  readonly verifiedBy: string
}

/**
 * A Kong consumer the request was mapped to (by mtls-auth from the certificate, or by openid-connect from a claim).
 * Later plugins (acl, rate-limiting `limit_by: consumer`) read it; the upstream gets X-Consumer-* from it.
 */
export interface Consumer {
  readonly id: string
  readonly username: string | undefined
  readonly customId: string | undefined
  /** acl groups (`consumers[].acls[].group`). */
  readonly groups: readonly string[]
}

/**
 * A client certificate an authentication plugin verified against its own trust anchors (RFC 5280 §6 path
 * validation, revocation checked as configured), for later plugins: an acl that admits any authenticated caller,
 * a rate limit per certificate, headers naming the certificate's subject and issuer.
 */
export interface VerifiedClientCertificate {
  readonly certificate: PeerCertificate
  /** Leaf first, ending at the trust anchor. */
  readonly chain: readonly X509Certificate[]
}

/** A read-only view of the headers the upstream will receive (see {@link RequestContext.upstream}). */
export interface UpstreamHeaderView {
  /** Every value the upstream would get for `name` (any case), joined with ", "; undefined when none. */
  get(name: string): string | undefined
}

/** A typed, write-once key for plugin-specific per-request state. */
export class StateKey<T> {
  declare readonly _type: T
  constructor (readonly name: string) {}
}

/**
 * Everything a plugin sees of one request. Plugins read the incoming request and the TLS identity, and
 * write only through the upstream mutation methods, `credential`, and typed state.
 */
export class RequestContext {
  readonly id: string
  readonly startNs: bigint
  readonly req: IncomingMessage
  readonly method: string
  /** The normalised path (percent-decoding of unreserved characters, dot segments removed). */
  readonly path: string
  /** The raw query string without '?', or ''. */
  readonly query: string
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string
  readonly route: CompiledRoute
  readonly listenerTls: boolean
  /** The TLS session's identity; null on plain HTTP. */
  readonly tls: TlsIdentity | null
  log: Logger
  credential: Credential | undefined = undefined
  /** The consumer this request was mapped to, if any (set once by an authentication plugin). */
  consumer: Consumer | undefined = undefined
  /** Outgoing header changes, applied in order after the built-in hygiene. null value = remove. */
  readonly upstreamHeaders: Array<[name: string, value: string | null, append: boolean]> = []
  /** Outgoing query changes; null value = remove. */
  readonly upstreamQuery: Array<[name: string, value: string | null, append: boolean]> = []
  /**
   * Headers for the answer, whatever it turns out to be — the upstream's, or one the gateway writes (a later
   * plugin's 401/403, a 502) — like Kong's `kong.response.set_header` in the access phase (rate-limiting's
   * RateLimit-* headers). Names in lower case; undefined until a plugin adds one (the hot path allocates nothing).
   */
  responseHeaders: Array<[name: string, value: string]> | undefined = undefined
  private verifiedClientCertificate: VerifiedClientCertificate | undefined = undefined
  /** The gateway's own upstream headers for this request (strip set applied), built on first read. */
  private readonly buildUpstreamBase: (() => readonly string[]) | undefined
  private upstreamBase: readonly string[] | undefined = undefined
  private upstreamView: UpstreamHeaderView | undefined = undefined
  private state: Map<StateKey<unknown>, unknown> | undefined = undefined

  constructor (init: {
    id: string, startNs: bigint, req: IncomingMessage, method: string, path: string, query: string,
    remoteAddress: string, route: CompiledRoute, tls: TlsIdentity | null, listenerTls: boolean, log: Logger,
    /**
     * The headers the gateway itself would send upstream for this request, as a flat lower-case
     * `[name, value, …]` list: the client's after hop-by-hop and identity stripping, plus Host and X-Forwarded-*.
     * Absent (a test's context): the client's headers minus hop-by-hop, gateway-owned and the built-in identity
     * names (x-credential-*, certificate headers).
     */
    upstreamBase?: () => readonly string[]
  }) {
    this.id = init.id
    this.startNs = init.startNs
    this.req = init.req
    this.method = init.method
    this.path = init.path
    this.query = init.query
    this.headers = init.req.headers
    this.remoteAddress = init.remoteAddress
    this.route = init.route
    this.tls = init.tls
    this.listenerTls = init.listenerTls
    this.log = init.log
    this.buildUpstreamBase = init.upstreamBase
  }

  /**
   * The upstream request's headers as they stand now: what the upstream would receive if the chain ended here —
   * the gateway's stripping (hop-by-hop, gateway-owned and every identity header, client copies dropped: strip
   * before set) and then the plugins' mutations so far, in order. A plugin that moves or copies a header reads it
   * here, never from `headers` (the client's raw ones), so it cannot forward a client-forged identity header under
   * another name.
   */
  get upstream (): UpstreamHeaderView {
    return (this.upstreamView ??= { get: (name: string) => this.upstreamHeader(name.toLowerCase()) })
  }

  private upstreamHeader (name: string): string | undefined {
    const base = (this.upstreamBase ??= this.buildUpstreamBase?.() ?? upstreamHeaders(this.req, DEFAULT_STRIP, {
      remoteAddress: this.remoteAddress,
      proto: this.listenerTls ? 'https' : 'http',
      host: this.req.headers.host ?? '',
      upstreamHost: this.req.headers.host ?? '',
      port: this.req.socket?.localPort ?? 0,
      requestId: this.id,
      trustForwardedFor: false,
    }))
    let values: string[] = []
    for (let i = 0; i < base.length; i += 2) if (base[i] === name) values.push(base[i + 1])
    // the same order and semantics as the handler applies them (src/server/handler.ts applyHeaderMutations)
    const muts = this.upstreamHeaders
    for (let i = 0; i < muts.length; i++) {
      const m = muts[i]
      if (m[0] !== name) continue
      if (m[1] === null) values = []
      else if (m[2]) values.push(m[1])
      else values = [m[1]]
    }
    return values.length === 0 ? undefined : values.join(', ')
  }

  /** Set (replace) a header sent upstream. */
  setUpstreamHeader (name: string, value: string): void { this.upstreamHeaders.push([name.toLowerCase(), value, false]) }
  /** Add a header value upstream, keeping existing ones. */
  appendUpstreamHeader (name: string, value: string): void { this.upstreamHeaders.push([name.toLowerCase(), value, true]) }
  /** Remove a header before proxying. */
  removeUpstreamHeader (name: string): void { this.upstreamHeaders.push([name.toLowerCase(), null, false]) }
  setUpstreamQuery (name: string, value: string): void { this.upstreamQuery.push([name, value, false]) }
  appendUpstreamQuery (name: string, value: string): void { this.upstreamQuery.push([name, value, true]) }
  removeUpstreamQuery (name: string): void { this.upstreamQuery.push([name, null, false]) }
  /** Set a header on the answer to the client (replacing the upstream's): see `responseHeaders`. */
  setResponseHeader (name: string, value: string): void { (this.responseHeaders ??= []).push([name.toLowerCase(), value]) }

  /**
   * The client certificate an authentication plugin verified, with the chain it built; undefined until one did
   * (the listener's own client-CA check is `tls`, not this). Write-once: a second plugin cannot replace what
   * the first proved.
   */
  get clientCertificate (): VerifiedClientCertificate | undefined { return this.verifiedClientCertificate }
  set clientCertificate (verified: VerifiedClientCertificate) {
    if (this.verifiedClientCertificate !== undefined) throw new TypeError('ctx.clientCertificate is write-once')
    this.verifiedClientCertificate = verified
  }

  get<T> (key: StateKey<T>): T | undefined { return this.state?.get(key) as T | undefined }
  set<T> (key: StateKey<T>, value: T): void {
    if (this.state === undefined) this.state = new Map()
    if (this.state.has(key)) throw new TypeError(`request state ${key.name} is write-once`)
    this.state.set(key, value)
  }

  /** The incoming value of a header that must occur at most once; `multiple` if it occurs more than once. */
  singleHeader (name: string): string | undefined | typeof MULTIPLE {
    const raw = this.req.rawHeaders
    let found: string | undefined
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length === name.length && raw[i].toLowerCase() === name) {
        if (found !== undefined) return MULTIPLE
        found = raw[i + 1]
      }
    }
    return found
  }
}

export const MULTIPLE: unique symbol = Symbol('multiple')

/** A context built without the gateway's strip set still never shows a client's built-in identity headers. */
const DEFAULT_STRIP = new StripSet([])
