import type { IncomingMessage } from 'node:http'

/** RFC 9110 §7.6.1 hop-by-hop headers, never forwarded. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization'])

/** Headers the gateway always sets itself: a client's copies are dropped. */
const GATEWAY_OWNED = new Set(['host', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix', 'x-request-id', 'x-real-ip', 'forwarded'])

/**
 * A header name as a CGI-style upstream sees it: WSGI, Rack, PHP and CGI map `X-Credential-Sub` and
 * `X_Credential_Sub` to the same variable (HTTP_X_CREDENTIAL_SUB). Names are compared with underscores read as
 * hyphens, so an underscore spelling of an identity or gateway-owned header is dropped like the header itself.
 */
export function cgiName (lower: string): string {
  return lower.includes('_') ? lower.replace(/_/g, '-') : lower
}

/** What becomes of a client header on its way upstream. */
const DROP = 0
const FORWARDED_FOR = 1
type Fate = typeof DROP | typeof FORWARDED_FOR | string

/** Header names remembered per StripSet; the set is emptied when full, so odd names cannot grow it. */
const FATE_CACHE_MAX = 1024

/**
 * The identity headers stripped from every client request, gateway-wide (strip before set): the
 * `x-credential-` prefix, certificate headers, and every header a configured plugin can set.
 */
export class StripSet {
  private readonly names: Set<string>
  /** Raw header name (as the client spelled it) -> its fate: the same dozen names come on every request. */
  private readonly fates = new Map<string, Fate>()
  constructor (names: Iterable<string>, private readonly prefixes: readonly string[] = ['x-credential-']) {
    this.names = new Set([...names].map(n => n.toLowerCase()))
    for (const n of ['x-client-cert', 'x-client-cert-chain', 'x-ssl-client-cert', 'ssl-client-cert', 'x-forwarded-client-cert', 'client-cert', 'client-cert-chain']) this.names.add(n)
  }

  has (lower: string): boolean {
    const name = cgiName(lower)
    if (this.names.has(name)) return true
    for (const p of this.prefixes) if (name.startsWith(p)) return true
    return false
  }

  /** The lower-case name to forward the header under, or why not. */
  fate (raw: string): Fate {
    let f = this.fates.get(raw)
    if (f !== undefined) return f
    const name = raw.toLowerCase()
    const cgi = cgiName(name)
    if (HOP_BY_HOP.has(cgi) || GATEWAY_OWNED.has(cgi) || this.has(cgi)) f = DROP
    // X_Forwarded_For is never honoured, not even from a trusted proxy
    else if (cgi === 'x-forwarded-for') f = cgi === name ? FORWARDED_FOR : DROP
    else f = name
    if (this.fates.size >= FATE_CACHE_MAX) this.fates.clear()
    this.fates.set(raw, f)
    return f
  }
}

/**
 * Upstream request headers as a flat `[name, value, name, value, …]` list, names in lower case: the form undici
 * takes cheapest (it walks an object with Object.keys, and a null-prototype object, needed against a client's
 * `__proto__` header, is a slow dictionary). Repeated names are repeated entries.
 */
export type HeaderList = string[]

export function removeHeader (list: HeaderList, name: string): void {
  let w = 0
  for (let r = 0; r < list.length; r += 2) {
    if (list[r] === name) continue
    list[w] = list[r]
    list[w + 1] = list[r + 1]
    w += 2
  }
  list.length = w
}

/** Replace every value of `name` with this one. */
export function setHeader (list: HeaderList, name: string, value: string): void {
  removeHeader(list, name)
  list.push(name, value)
}

/** The list as an object (repeated names as arrays), for node:http. */
export function headerObject (list: HeaderList): Record<string, string | string[]> {
  const out = Object.create(null) as Record<string, string | string[]>
  for (let i = 0; i < list.length; i += 2) {
    const prev = out[list[i]]
    out[list[i]] = prev === undefined ? list[i + 1] : Array.isArray(prev) ? [...prev, list[i + 1]] : [prev, list[i + 1]]
  }
  return out
}

export interface ForwardInfo {
  readonly remoteAddress: string
  readonly proto: 'http' | 'https'
  /** The client's Host, for X-Forwarded-Host. */
  readonly host: string
  /** The Host header sent upstream. */
  readonly upstreamHost: string
  readonly port: number
  readonly requestId: string
  /** Keep the client's X-Forwarded-For (the peer is a trusted proxy); the real peer is appended last either way. */
  readonly trustForwardedFor: boolean
}

/**
 * Build the upstream request headers from the client's raw headers: hop-by-hop and Connection-listed headers
 * removed, identity headers stripped, Host and X-Forwarded-* set by the gateway.
 */
export function upstreamHeaders (req: IncomingMessage, strip: StripSet, fwd: ForwardInfo): HeaderList {
  const raw = req.rawHeaders
  const out: HeaderList = ['host', fwd.upstreamHost]
  let connectionListed: Set<string> | undefined
  const conn = req.headers.connection
  if (conn !== undefined && conn !== 'keep-alive' && conn !== 'close') {
    connectionListed = new Set(conn.toLowerCase().split(',').map(s => s.trim()).filter(s => s !== ''))
  }
  let xff: string | undefined
  let cookieAt = -1
  for (let i = 0; i < raw.length; i += 2) {
    const fate = strip.fate(raw[i])
    if (typeof fate !== 'string') {
      if (fate === FORWARDED_FOR && fwd.trustForwardedFor) xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`
      continue
    }
    if (connectionListed !== undefined && connectionListed.has(fate)) continue
    if (fate === 'cookie') {
      // RFC 9113 §8.2.3 / RFC 6265 §5.4: one Cookie header, pairs joined with "; "
      if (cookieAt >= 0) { out[cookieAt] += '; ' + raw[i + 1]; continue }
      cookieAt = out.length + 1
    }
    out.push(fate, raw[i + 1])
  }
  out.push(
    'x-forwarded-for', xff === undefined ? fwd.remoteAddress : `${xff}, ${fwd.remoteAddress}`,
    'x-forwarded-proto', fwd.proto,
    'x-forwarded-host', fwd.host,
    'x-forwarded-port', String(fwd.port),
    'x-real-ip', fwd.remoteAddress,
    'x-request-id', fwd.requestId,
  )
  return out
}

/** Response headers from the upstream, minus hop-by-hop ones. */
export function downstreamHeaders (h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  let connectionListed: string[] | undefined
  const conn = h.connection
  if (typeof conn === 'string' && conn !== 'keep-alive' && conn !== 'close') connectionListed = conn.toLowerCase().split(',').map(s => s.trim())
  for (const k in h) {
    const v = h[k]
    if (v === undefined || HOP_BY_HOP.has(k)) continue
    if (connectionListed !== undefined && connectionListed.includes(k)) continue
    out[k] = v
  }
  return out
}
