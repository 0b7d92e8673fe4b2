/**
 * Routing (issue 2, "Routing (Kong's rules)"): Kong's priority order, path normalisation (RFC 3986 §6.2.2 and
 * §5.2.4) and the upstream path (strip_path, service path joining), with fast-check properties for the parts
 * an attacker controls: the request path.
 */
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { Router, upstreamPath, type RouteSpec } from '../../src/router/router.js'
import { normalizePath, removeDotSegments } from '../../src/router/normalize-path.js'
import type { CompiledRoute } from '../../src/router/types.js'

interface R {
  name: string
  paths?: string[]
  methods?: string[]
  hosts?: string[]
  headers?: Record<string, string[]>
  regexPriority?: number
  protocols?: Array<'http' | 'https'>
  exact?: boolean
}

/** A router over route definitions in declaration order (the router reads only protocols of the compiled route). */
function router (routes: R[]): Router {
  const specs: RouteSpec[] = routes.map((r, order) => ({
    route: { name: r.name, protocols: new Set(r.protocols ?? ['http', 'https']) } as unknown as CompiledRoute,
    paths: r.paths ?? [],
    methods: r.methods ?? [],
    hosts: r.hosts ?? [],
    headers: r.headers ?? {},
    regexPriority: r.regexPriority ?? 0,
    order,
    exact: r.exact,
  }))
  return new Router(specs)
}

function match (rt: Router, path: string, opts: { method?: string, host?: string, headers?: Record<string, string>, https?: boolean } = {}): string | undefined {
  return rt.match(opts.method ?? 'GET', opts.host ?? 'localhost', path, opts.headers ?? {}, opts.https ?? false)?.route.name
}

/** Both declaration orders must give the same answer: priority, not YAML order, decides. */
function bothOrders (routes: R[], check: (rt: Router) => void): void {
  check(router(routes))
  check(router([...routes].reverse()))
}

describe('internal routes (exact paths, tried first)', () => {
  it('match their paths exactly, before any user route, and nothing below them', () => {
    bothOrders([
      { name: 'all', paths: ['/'] },
      { name: 'regex', paths: ['~/oauth2/.*'], regexPriority: 100 },
      { name: 'hosted', paths: ['/oauth2'], hosts: ['localhost'], methods: ['POST'] },
      { name: 'as.token', paths: ['/oauth2/token'], exact: true },
    ], (rt) => {
      expect(match(rt, '/oauth2/token', { method: 'POST' })).toBe('as.token')
      expect(match(rt, '/oauth2/token/x', { method: 'POST' })).toBe('hosted')
      expect(match(rt, '/oauth2/tokens', { method: 'GET' })).toBe('regex')
      expect(match(rt, '/other')).toBe('all')
    })
  })
})

describe('Kong route priority', () => {
  it('regex paths are evaluated before prefix paths', () => {
    bothOrders([{ name: 'prefix', paths: ['/orders'] }, { name: 'regex', paths: ['~/orders/\\d+$'] }], (rt) => {
      expect(match(rt, '/orders/123')).toBe('regex')
      expect(match(rt, '/orders/abc')).toBe('prefix')
      expect(match(rt, '/orders')).toBe('prefix')
    })
  })

  it('a regex path is anchored at the start of the path', () => {
    const rt = router([{ name: 'regex', paths: ['~/v\\d+/orders'] }])
    expect(match(rt, '/v2/orders/1')).toBe('regex')
    expect(match(rt, '/api/v2/orders')).toBeUndefined()
  })

  it('longer prefixes win over shorter ones, whatever the declaration order', () => {
    bothOrders([{ name: 'short', paths: ['/orders'] }, { name: 'long', paths: ['/orders/special'] }, { name: 'root', paths: ['/'] }], (rt) => {
      expect(match(rt, '/orders/special/1')).toBe('long')
      expect(match(rt, '/orders/1')).toBe('short')
      expect(match(rt, '/other')).toBe('root')
    })
  })

  it('hosts add specificity; an exact host beats a *. wildcard', () => {
    bothOrders([
      { name: 'any-host', paths: ['/orders'] },
      { name: 'exact', paths: ['/orders'], hosts: ['api.example.com'] },
      { name: 'wildcard', paths: ['/orders'], hosts: ['*.example.com'] },
    ], (rt) => {
      expect(match(rt, '/orders', { host: 'api.example.com' })).toBe('exact')
      expect(match(rt, '/orders', { host: 'eu.example.com' })).toBe('wildcard')
      expect(match(rt, '/orders', { host: 'deep.eu.example.com' })).toBe('wildcard')
      // "*.example.com" needs a label before the suffix
      expect(match(rt, '/orders', { host: 'example.com' })).toBe('any-host')
      expect(match(rt, '/orders', { host: 'example.org' })).toBe('any-host')
    })
  })

  it('a suffix wildcard (example.*) matches any last label', () => {
    const rt = router([{ name: 'suffix', hosts: ['example.*'] }])
    expect(match(rt, '/', { host: 'example.org' })).toBe('suffix')
    expect(match(rt, '/', { host: 'www.example.org' })).toBeUndefined()
  })

  it('host-only routes match any path on that host', () => {
    const rt = router([{ name: 'host', hosts: ['api.example.com'] }])
    expect(match(rt, '/anything/at/all', { host: 'api.example.com' })).toBe('host')
    expect(match(rt, '/anything', { host: 'other.example.com' })).toBeUndefined()
  })

  it('methods add specificity and restrict the match', () => {
    bothOrders([{ name: 'all', paths: ['/orders'] }, { name: 'post', paths: ['/orders'], methods: ['POST'] }], (rt) => {
      expect(match(rt, '/orders', { method: 'POST' })).toBe('post')
      expect(match(rt, '/orders', { method: 'GET' })).toBe('all')
    })
    const only = router([{ name: 'post', paths: ['/orders'], methods: ['POST', 'PUT'] }])
    expect(match(only, '/orders', { method: 'GET' })).toBeUndefined()
    expect(match(only, '/orders', { method: 'PUT' })).toBe('post')
  })

  it('a route with more criteria wins over a longer prefix alone (Kong: most rules first)', () => {
    bothOrders([{ name: 'long', paths: ['/orders/special'] }, { name: 'host+path', paths: ['/orders'], hosts: ['api.example.com'] }], (rt) => {
      expect(match(rt, '/orders/special', { host: 'api.example.com' })).toBe('host+path')
      expect(match(rt, '/orders/special', { host: 'other.example.com' })).toBe('long')
    })
  })

  it('regex_priority orders regex paths (higher first); ties go to declaration order', () => {
    bothOrders([
      { name: 'low', paths: ['~/orders/\\d+'], regexPriority: 1 },
      { name: 'high', paths: ['~/orders/[0-9]+$'], regexPriority: 10 },
    ], (rt) => {
      expect(match(rt, '/orders/42')).toBe('high')
      expect(match(rt, '/orders/42/items')).toBe('low')
    })
    const tie = router([{ name: 'first', paths: ['~/a'] }, { name: 'second', paths: ['~/a/b'] }])
    expect(match(tie, '/a/b')).toBe('first')
  })

  it('headers add specificity; values match case-insensitively', () => {
    bothOrders([{ name: 'plain', paths: ['/orders'] }, { name: 'v2', paths: ['/orders'], headers: { 'X-Version': ['v2'] } }], (rt) => {
      expect(match(rt, '/orders', { headers: { 'x-version': 'V2' } })).toBe('v2')
      expect(match(rt, '/orders', { headers: { 'x-version': 'v1' } })).toBe('plain')
      expect(match(rt, '/orders')).toBe('plain')
    })
  })

  it('protocols narrow a route to http or https listeners', () => {
    const rt = router([{ name: 'tls-only', paths: ['/orders'], protocols: ['https'] }, { name: 'fallback', paths: ['/'] }])
    expect(match(rt, '/orders', { https: true })).toBe('tls-only')
    expect(match(rt, '/orders', { https: false })).toBe('fallback')
  })

  it('no route: undefined (the handler answers 404)', () => {
    const rt = router([{ name: 'orders', paths: ['/orders'] }])
    expect(match(rt, '/billing')).toBeUndefined()
  })

  it('reports how much of the path a prefix or regex matched (for strip_path)', () => {
    const rt = router([{ name: 'prefix', paths: ['/orders'] }, { name: 'regex', paths: ['~/items/\\d+'] }])
    expect(rt.match('GET', 'h', '/orders/1', {}, false)?.stripLength).toBe('/orders'.length)
    expect(rt.match('GET', 'h', '/items/42/x', {}, false)?.stripLength).toBe('/items/42'.length)
  })
})

describe('normalizePath (RFC 3986 §6.2.2)', () => {
  it.each([
    ['/orders/1', '/orders/1'],
    ['/a/%7Euser', '/a/~user'],
    ['/%41%62%63', '/Abc'],
    ['/a%2db%5Fc%2E', '/a-b_c.'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%20b', '/a%20b'],
    ['/q%3fx', '/q%3Fx'],
    ['/%c3%a9', '/%C3%A9'],
  ])('percent-encoding: %s → %s (unreserved decoded, others upper-cased)', (raw, want) => {
    expect(normalizePath(raw)).toBe(want)
  })

  it.each([
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../etc/passwd', '/etc/passwd'],
    ['/orders/../admin', '/admin'],
    ['/orders/%2e%2e/admin', '/admin'],
    ['/orders/%2E%2e/admin', '/admin'],
    ['/orders/.%2e/admin', '/admin'],
    ['/orders/%2e/admin', '/orders/admin'],
    ['/a/..b/c', '/a/..b/c'],
    ['/a/b.../c', '/a/b.../c'],
  ])('dot segments (§5.2.4): %s → %s', (raw, want) => {
    expect(normalizePath(raw)).toBe(want)
  })

  it.each([
    ['', 'empty'],
    ['orders', 'not absolute'],
    ['/a%zz', 'non-hex escape'],
    ['/a%2', 'truncated escape'],
    ['/a%', 'lone %'],
    ['/a%00b', 'NUL'],
    ['/a\\..\\admin', 'backslash'],
    ['/a b', 'raw space'],
    ['/caf\u00e9', 'raw non-ASCII'],
  ])('%j (%s) is not a valid path: undefined', (raw) => {
    expect(normalizePath(raw)).toBeUndefined()
  })

  it('removeDotSegments keeps a path without dots as it is', () => {
    expect(removeDotSegments('/a/b/c')).toBe('/a/b/c')
  })
})

describe('upstreamPath (strip_path, service path)', () => {
  it.each([
    // [service path, request path, matched prefix, strip_path, upstream path]
    ['', '/orders/1', '/orders', true, '/1'],
    ['', '/orders', '/orders', true, '/'],
    ['', '/orders/1', '/orders', false, '/orders/1'],
    ['/v1', '/orders/1', '/orders', true, '/v1/1'],
    ['/v1', '/orders', '/orders', true, '/v1'],
    ['/v1', '/orders/', '/orders', true, '/v1/'],
    ['/v1', '/orders/1', '/orders', false, '/v1/orders/1'],
    ['/v1/', '/orders/1', '/orders', true, '/v1/1'],
    ['/v1/', '/orders', '/orders', true, '/v1/'],
    ['/v1/', '/orders/1', '/orders', false, '/v1/orders/1'],
    ['/v1', '/ordersX', '/orders', true, '/v1/X'],
    ['', '/anything', '', true, '/anything'],
  ] as const)('service %j + %j (prefix %j, strip_path %s) → %j', (base, path, prefix, strip, want) => {
    expect(upstreamPath(base, path, prefix.length, strip, 'v0')).toBe(want)
  })
})

// ---- properties ----------------------------------------------------------------------------------------

const segment = fc.oneof(
  fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '.%2E', '%2E.', '', 'admin', 'orders', 'a.b', '..a', '%7E', '%2F', '%41', '%25', '~'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/),
)
const rawPath = fc.array(segment, { minLength: 0, maxLength: 8 }).map(segs => '/' + segs.join('/'))

describe('properties (fast-check)', () => {
  it('normalizePath output has no dot segments and is idempotent', () => {
    fc.assert(fc.property(rawPath, (raw) => {
      const n = normalizePath(raw)
      if (n === undefined) return
      expect(n.startsWith('/')).toBe(true)
      const segs = n.split('/')
      expect(segs.includes('.')).toBe(false)
      expect(segs.includes('..')).toBe(false)
      expect(n).not.toMatch(/%2e/i)
      expect(normalizePath(n)).toBe(n)
    }), { numRuns: 2000 })
  })

  it('normalizePath never fails on any printable-ASCII path, and never yields dot segments', () => {
    fc.assert(fc.property(fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/), (raw) => {
      const n = normalizePath(raw)
      if (n === undefined) return
      expect(n.split('/').some(s => s === '.' || s === '..')).toBe(false)
      expect(normalizePath(n)).toBe(n)
    }), { numRuns: 2000 })
  })

  const prefixes = ['/', '/orders', '/orders/special', '/admin', '/admin/users', '/public', '/a']

  it('the router never matches a prefix route whose prefix the normalised path does not start with; the longest wins', () => {
    fc.assert(fc.property(fc.subarray(prefixes, { minLength: 1 }), rawPath, (chosen, raw) => {
      const rt = router(chosen.map(p => ({ name: p, paths: [p] })))
      const path = normalizePath(raw)
      if (path === undefined) return
      const m = match(rt, path)
      const candidates = chosen.filter(p => path.startsWith(p))
      if (candidates.length === 0) { expect(m).toBeUndefined(); return }
      expect(m).toBeDefined()
      expect(path.startsWith(m!)).toBe(true)
      expect(m!.length).toBe(Math.max(...candidates.map(c => c.length)))
    }), { numRuns: 2000 })
  })

  it('a path that normalises outside /public never reaches a /public-only router', () => {
    const rt = router([{ name: 'public', paths: ['/public'] }])
    fc.assert(fc.property(rawPath, (tail) => {
      const path = normalizePath('/public' + tail)
      if (path === undefined) return
      if (match(rt, path) === 'public') expect(path.startsWith('/public')).toBe(true)
      else expect(path.startsWith('/public')).toBe(false)
    }), { numRuns: 2000 })
  })
})
