import type { RequestContext } from '../../pipeline/context.js'
import type { CidrSet } from '../../net/cidr.js'

const UNRESERVED_ESCAPE = /%([0-9A-Fa-f]{2})/g

/** RFC 3986 §6.2.2.2: decode percent-encoded unreserved characters, upper-case the hex of the rest. */
function normalisePercent (path: string): string {
  return path.replace(UNRESERVED_ESCAPE, function percent (m: string, hex: string): string {
    const c = String.fromCharCode(parseInt(hex, 16))
    return /[A-Za-z0-9\-._~]/.test(c) ? c : '%' + hex.toUpperCase()
  })
}

/**
 * An http(s) URI in the form DPoP compares (RFC 9449 §4.3 step 9): query and fragment dropped; scheme and host
 * lower-cased and the default port removed (RFC 3986 §6.2.2.1, §6.2.3: WHATWG URL does both, and removes dot
 * segments); percent-encodings normalised (§6.2.2.2); an empty path is "/" (§6.2.3). Undefined if not an
 * absolute http(s) URI.
 */
export function normaliseHtu (uri: string): string | undefined {
  let u: URL
  try { u = new URL(uri) } catch { return undefined }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined
  if (u.username !== '' || u.password !== '') return undefined
  return `${u.protocol}//${u.host}${normalisePercent(u.pathname === '' ? '/' : u.pathname)}`
}

function first (v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v
  if (s === undefined) return undefined
  const c = s.indexOf(',')
  const t = (c < 0 ? s : s.slice(0, c)).trim()
  return t === '' ? undefined : t
}

/**
 * The URI the client addressed, as the client saw it (the listener's external view): scheme from the listener,
 * authority from Host — or, when the direct peer is a trusted proxy, from X-Forwarded-Proto/-Host/-Port (the
 * first, client-side, value of each). Path as received (before the gateway's routing). Untrusted peers' X-Forwarded-*
 * are ignored: a client must not be able to choose the URI its proof is checked against.
 */
export function requestHtu (ctx: RequestContext, trustedProxies: CidrSet, normalise: (uri: string) => string | undefined = normaliseHtu): string | undefined {
  let scheme = ctx.listenerTls ? 'https' : 'http'
  let host = first(ctx.headers.host)
  if (trustedProxies.has(ctx.remoteAddress)) {
    const proto = first(ctx.headers['x-forwarded-proto'])?.toLowerCase()
    if (proto === 'http' || proto === 'https') scheme = proto
    const fhost = first(ctx.headers['x-forwarded-host'])
    if (fhost !== undefined) host = fhost
    const port = first(ctx.headers['x-forwarded-port'])
    if (port !== undefined && /^\d{1,5}$/.test(port) && host !== undefined && !/:\d+$/.test(host)) host = `${host}:${port}`
  }
  if (host === undefined) return undefined
  const url = ctx.req.url ?? '/'
  const q = url.search(/[?#]/)
  const path = q < 0 ? url : url.slice(0, q)
  if (!path.startsWith('/')) return normalise(path) // absolute-form request target (RFC 9112 §3.2.2)
  return normalise(`${scheme}://${host}${path}`)
}
