import type { CompiledRoute, RouteMatch } from './types.js'

/** What the router needs of a route definition (besides the compiled route it returns). */
export interface RouteSpec {
  readonly route: CompiledRoute
  readonly paths: readonly string[]
  readonly methods: readonly string[]
  readonly hosts: readonly string[]
  readonly headers: Readonly<Record<string, readonly string[]>>
  readonly regexPriority: number
  /** Declaration order, the last tie-breaker. */
  readonly order: number
  /** Paths match exactly, not as prefixes, and the route is tried before every other (internal routes). */
  readonly exact?: boolean
}

interface HostMatcher { exact?: string, suffix?: string, prefix?: string }
interface Candidate {
  readonly route: CompiledRoute
  readonly methods: ReadonlySet<string> | null
  readonly hosts: readonly HostMatcher[] | null
  readonly headers: ReadonlyArray<[string, ReadonlySet<string>]> | null
  readonly prefix: string | null
  readonly exact: boolean
  readonly regex: RegExp | null
  readonly sortKey: readonly number[]
}

/**
 * Kong's matching rules, compiled once per config: a route matches when every criterion it declares
 * matches. Among matches, the most specific wins: more criteria first; exact hosts before wildcards;
 * regex paths before prefix paths (higher regex_priority first); longer prefixes first; then declaration order.
 */
export class Router {
  private readonly candidates: Candidate[]

  constructor (specs: readonly RouteSpec[]) {
    const cs: Candidate[] = []
    for (const s of specs) {
      const methods = s.methods.length > 0 ? new Set(s.methods) : null
      const hosts = s.hosts.length > 0 ? s.hosts.map(compileHost) : null
      const hdrs = Object.keys(s.headers).length > 0
        ? Object.entries(s.headers).map(([k, v]) => [k.toLowerCase(), new Set(v.map(x => x.toLowerCase()))] as [string, ReadonlySet<string>])
        : null
      const criteria = (methods ? 1 : 0) + (hosts ? 1 : 0) + (hdrs ? 1 : 0) + (s.paths.length > 0 ? 1 : 0)
      const hostRank = hosts === null ? 0 : (hosts.every(h => h.exact !== undefined) ? 2 : 1)
      const paths = s.paths.length > 0 ? s.paths : [null]
      for (const p of paths) {
        const isRegex = p !== null && p.startsWith('~')
        const regex = isRegex ? new RegExp('^(?:' + p.slice(1) + ')') : null
        const prefix = p !== null && !isRegex ? p : null
        const sortKey = [
          s.exact === true ? 1 : 0,
          criteria,
          hdrs ? hdrs.length : 0,
          hostRank,
          isRegex ? 1 : 0,
          isRegex ? s.regexPriority : 0,
          prefix !== null ? prefix.length : 0,
          methods ? 1 : 0,
          -s.order,
        ]
        cs.push({ route: s.route, methods, hosts, headers: hdrs, prefix, exact: s.exact === true && prefix !== null, regex, sortKey })
      }
    }
    cs.sort((a, b) => {
      for (let i = 0; i < a.sortKey.length; i++) if (a.sortKey[i] !== b.sortKey[i]) return b.sortKey[i] - a.sortKey[i]
      return 0
    })
    this.candidates = cs
  }

  /** `host` without port, lower-case. `path` normalised. */
  match (method: string, host: string, path: string, headers: Readonly<Record<string, string | string[] | undefined>>, https: boolean): RouteMatch | undefined {
    const cs = this.candidates
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i]
      if (c.methods !== null && !c.methods.has(method)) continue
      if (c.hosts !== null && !hostMatches(c.hosts, host)) continue
      if (c.headers !== null && !headersMatch(c.headers, headers)) continue
      let strip = 0
      if (c.exact) {
        if (path !== c.prefix) continue
        strip = path.length
      } else if (c.prefix !== null) {
        if (!path.startsWith(c.prefix)) continue
        strip = c.prefix.length
      } else if (c.regex !== null) {
        const m = c.regex.exec(path)
        if (m === null) continue
        strip = m[0].length
      }
      if (!c.route.protocols.has(https ? 'https' : 'http')) continue
      return { route: c.route, stripLength: strip }
    }
    return undefined
  }
}

function compileHost (h: string): HostMatcher {
  const l = h.toLowerCase()
  if (l.startsWith('*.')) return { suffix: l.slice(1) }
  if (l.endsWith('.*')) return { prefix: l.slice(0, -1) }
  return { exact: l.replace(/:\d+$/, '') }
}

function hostMatches (ms: readonly HostMatcher[], host: string): boolean {
  for (const m of ms) {
    if (m.exact !== undefined) { if (m.exact === host) return true } else if (m.suffix !== undefined) { if (host.endsWith(m.suffix) && host.length > m.suffix.length) return true } else if (m.prefix !== undefined && host.startsWith(m.prefix) && host.length > m.prefix.length) return true
  }
  return false
}

function headersMatch (want: ReadonlyArray<[string, ReadonlySet<string>]>, got: Readonly<Record<string, string | string[] | undefined>>): boolean {
  for (const [k, vals] of want) {
    const v = got[k]
    if (v === undefined) return false
    const list = Array.isArray(v) ? v : [v]
    if (!list.some(x => vals.has(x.toLowerCase()))) return false
  }
  return true
}

/**
 * The upstream path for a match (Kong's path_handling v0/v1): the service path joined with what remains of
 * the request path after strip_path.
 */
export function upstreamPath (basePath: string, requestPath: string, stripLength: number, stripPath: boolean, pathHandling: 'v0' | 'v1'): string {
  let rest = stripPath && stripLength > 0 ? requestPath.slice(stripLength) : requestPath
  if (basePath === '') return rest === '' ? '/' : (rest.startsWith('/') ? rest : '/' + rest)
  if (rest === '') return basePath
  if (pathHandling === 'v1' && !stripPath) return basePath.endsWith('/') && rest.startsWith('/') ? basePath + rest.slice(1) : basePath + rest
  if (basePath.endsWith('/')) return rest.startsWith('/') ? basePath + rest.slice(1) : basePath + rest
  if (!rest.startsWith('/')) rest = '/' + rest
  return basePath + rest
}
