/**
 * rate-limiting (issue 15) through the real gateway: Kong's keys and answers, fixed windows driven by a ManualClock
 * (no sleeps), every limit_by, the headers on every answer, 429 with Retry-After, and a burst that never lets more
 * than the limit through.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Agent, request } from 'undici'
import { startGateway, type TestGateway } from '../../helpers/gateway.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { ManualClock } from '../../helpers/clock.js'
import { loadPlugins } from '../../../src/plugins-registry.js'

interface Res { status: number, headers: Record<string, string>, body: string }

async function get (url: string, opts: { headers?: Record<string, string>, dispatcher?: Agent, method?: string, body?: string } = {}): Promise<Res> {
  const r = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, dispatcher: opts.dispatcher, body: opts.body })
  const body = await r.body.text()
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v)
  return { status: r.statusCode, headers, body }
}

/** The rate-limit headers of an answer, for whole-set assertions. */
function rl (r: Res): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) if (k.includes('ratelimit') || k === 'retry-after') out[k] = v
  return out
}

// the gateway's clock for everything (certificate validity included): start from now, whole minutes from there
const clock = new ManualClock(Math.floor(Date.now() / 60_000) * 60_000)
/** Move the clock to the start of a fresh minute (each test counts from zero). */
function freshMinute (): number {
  const t = Math.floor(clock.now() / 60_000) * 60_000 + 60_000
  clock.set(t)
  return t
}

let pki: TestPki
let up: Upstream
let gw: TestGateway
let proxied: TestGateway
let tls: TestGateway

const rateLimit = (config: string): string => `          - name: rate-limiting
            config: ${config}`

beforeAll(async () => {
  pki = await createTestPki()
  up = await startUpstream()
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen: [{ address: 127.0.0.1:0 }]
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: minute
        paths: [/minute]
        plugins:
${rateLimit('{ minute: 3, limit_by: ip }')}
      - name: windows
        paths: [/windows]
        plugins:
${rateLimit('{ second: 1, minute: 3, hour: 10, limit_by: ip }')}
      - name: hidden
        paths: [/hidden]
        plugins:
${rateLimit('{ minute: 1, limit_by: ip, hide_client_headers: true, error_code: 503, error_message: "slow down" }')}
      - name: header
        paths: [/header]
        plugins:
${rateLimit('{ minute: 2, limit_by: header, header_name: X-Api-Key }')}
      - name: path
        paths: [/path]
        plugins:
${rateLimit('{ minute: 2, limit_by: path, path: /path/limited }')}
      - name: terminated
        paths: [/terminated]
        plugins:
${rateLimit('{ minute: 5, limit_by: ip }')}
          - name: request-termination
            config: { status_code: 403, message: "closed" }
      - name: burst
        paths: [/burst]
        plugins:
${rateLimit('{ minute: 50, limit_by: ip }')}
          - name: request-termination
            config: { status_code: 200, message: "ok" }
      - name: kong-dump
        paths: [/kong-dump]
        plugins:
          - name: rate-limiting
            config:
              day: null
              error_code: 429
              error_message: API rate limit exceeded
              fault_tolerant: true
              header_name: null
              hide_client_headers: false
              hour: null
              limit_by: consumer
              minute: 2
              month: null
              path: null
              policy: local
              redis:
                database: 0
                host: null
                password: null
                port: 6379
                server_name: null
                ssl: false
                ssl_verify: false
                timeout: 2000
                username: null
              second: null
              sync_rate: -1
              year: null
  - name: shared
    url: ${up.url}
    plugins:
${rateLimit('{ minute: 2, limit_by: service }').replace(/^ {4}/gm, '')}
    routes:
      - { name: svc-a, paths: [/svc-a] }
      - { name: svc-b, paths: [/svc-b] }
`, { now: clock.now })
  proxied = await startGateway(`_format_version: "3.0"
gateway:
  listen: [{ address: 127.0.0.1:0 }]
  trusted_ips: [127.0.0.1]
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: behind-proxy
        paths: [/]
        plugins:
${rateLimit('{ minute: 1, limit_by: ip }')}
`, { now: clock.now })
  tls = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
authorization_server:
  issuer: https://localhost:8443
  ca_certificates: ${pki.ca.certFile}
  clients:
    - client_id: client1
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: read
    - client_id: client2
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client2,O=Example Org
      scope: read
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: credential
        paths: [/credential]
        plugins:
          - name: openid-connect
            config: { issuer: "https://localhost:8443", auth_methods: [bearer], proof_of_possession_mtls: strict }
${rateLimit('{ minute: 2, limit_by: credential }')}
      - name: consumer
        paths: [/consumer]
        plugins:
          - name: openid-connect
            config: { issuer: "https://localhost:8443", auth_methods: [bearer], proof_of_possession_mtls: strict }
${rateLimit('{ minute: 2 }')}
      - name: scoped
        paths: [/scoped]
        plugins:
          - name: openid-connect
            config: { issuer: "https://localhost:8443", auth_methods: [bearer], proof_of_possession_mtls: strict }
${rateLimit('{ minute: 5, limit_by: credential }')}
          - name: require-scopes
            config: { scopes: [admin] }
      - name: certificate
        paths: [/certificate]
        plugins:
          - name: mtls-auth
            config: { ca_certificates: ["${pki.ca.certFile}"] }
${rateLimit('{ minute: 2, limit_by: credential }')}
`, { now: clock.now })
}, 60_000)

afterAll(async () => {
  await tls?.close()
  await proxied?.close()
  await gw?.close()
  await up?.close()
  pki?.cleanup()
})

describe('fixed windows (Kong): minute: 3', () => {
  it('three pass with Kong\'s headers; the fourth is 429 {"message":"API rate limit exceeded"} with Retry-After', async () => {
    const t = freshMinute()
    clock.set(t + 15_000)
    const seen: Array<Record<string, string>> = []
    for (let i = 0; i < 3; i++) {
      const r = await get(`${gw.url()}/minute`)
      expect(r.status).toBe(200)
      seen.push(rl(r))
    }
    expect(seen).toEqual([2, 1, 0].map(left => ({
      'x-ratelimit-limit-minute': '3', 'x-ratelimit-remaining-minute': String(left),
      'ratelimit-limit': '3', 'ratelimit-remaining': String(left), 'ratelimit-reset': '45',
    })))
    const refused = await get(`${gw.url()}/minute`)
    expect(refused.status).toBe(429)
    expect(JSON.parse(refused.body)).toEqual({ message: 'API rate limit exceeded' })
    expect(refused.headers['content-type']).toMatch(/^application\/json/)
    expect(rl(refused)).toEqual({
      'x-ratelimit-limit-minute': '3', 'x-ratelimit-remaining-minute': '0',
      'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'ratelimit-reset': '45', 'retry-after': '45',
    })
    const log = gw.logs.filter(l => l.err === 'CB_ERR_RATE_LIMITED').at(-1)
    expect(log?.status).toBe(429)
  })

  it('edges: the last millisecond of a window still counts in it; its end starts a new one', async () => {
    const t = freshMinute()
    for (let i = 0; i < 3; i++) expect((await get(`${gw.url()}/minute`)).status).toBe(200)
    clock.set(t + 59_999)
    const last = await get(`${gw.url()}/minute`)
    expect(last.status).toBe(429)
    expect(last.headers['retry-after']).toBe('1')
    clock.set(t + 60_000)
    const next = await get(`${gw.url()}/minute`)
    expect(next.status).toBe(200)
    expect(next.headers['ratelimit-remaining']).toBe('2')
    expect(next.headers['ratelimit-reset']).toBe('60')
  })

  it('several windows at once: each enforced; a refused request spends none of them (Kong)', async () => {
    const t = freshMinute()
    const a = await get(`${gw.url()}/windows`)
    expect(a.status).toBe(200)
    // the second window is the tightest: RateLimit-* describe it
    expect(rl(a)).toEqual({
      'x-ratelimit-limit-second': '1', 'x-ratelimit-remaining-second': '0',
      'x-ratelimit-limit-minute': '3', 'x-ratelimit-remaining-minute': '2',
      'x-ratelimit-limit-hour': '10', 'x-ratelimit-remaining-hour': '9',
      'ratelimit-limit': '1', 'ratelimit-remaining': '0', 'ratelimit-reset': '1',
    })
    // hammer the second limit: refused, and the minute and hour counts do not move
    for (let i = 0; i < 5; i++) {
      const r = await get(`${gw.url()}/windows`)
      expect(r.status).toBe(429)
      expect(r.headers['x-ratelimit-remaining-minute']).toBe('2')
      expect(r.headers['x-ratelimit-remaining-hour']).toBe('9')
      expect(r.headers['retry-after']).toBe('1')
    }
    clock.set(t + 1000)
    expect((await get(`${gw.url()}/windows`)).status).toBe(200)
    clock.set(t + 2000)
    expect((await get(`${gw.url()}/windows`)).status).toBe(200)
    clock.set(t + 3000)
    const m = await get(`${gw.url()}/windows`)
    // the minute is spent: Retry-After is the minute's reset, not the second's
    expect(m.status).toBe(429)
    expect(rl(m)).toMatchObject({ 'x-ratelimit-remaining-second': '1', 'x-ratelimit-remaining-minute': '0', 'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'retry-after': '57' })
    clock.set(t + 60_000)
    const h = await get(`${gw.url()}/windows`)
    expect(h.status).toBe(200)
    expect(h.headers['x-ratelimit-remaining-hour']).toBe('6')
  })

  it('hide_client_headers, error_code and error_message: no RateLimit headers, the configured answer, Retry-After kept', async () => {
    freshMinute()
    const ok = await get(`${gw.url()}/hidden`)
    expect(ok.status).toBe(200)
    expect(rl(ok)).toEqual({})
    const refused = await get(`${gw.url()}/hidden`)
    expect(refused.status).toBe(503)
    expect(JSON.parse(refused.body)).toEqual({ message: 'slow down' })
    expect(rl(refused)).toEqual({ 'retry-after': '60' })
  })

  it('the headers are on answers the gateway writes for a later plugin too (request-termination 403)', async () => {
    freshMinute()
    const r = await get(`${gw.url()}/terminated`)
    expect(r.status).toBe(403)
    expect(rl(r)).toMatchObject({ 'ratelimit-limit': '5', 'ratelimit-remaining': '4', 'x-ratelimit-remaining-minute': '4' })
  })

  it('the gateway\'s headers replace an upstream\'s own RateLimit-* on a proxied answer', async () => {
    freshMinute()
    up.handler = (_req, res) => { res.writeHead(200, { 'ratelimit-remaining': '999', 'content-type': 'text/plain' }); res.end('upstream') }
    try {
      const r = await get(`${gw.url()}/minute`)
      expect(r.body).toBe('upstream')
      expect(r.headers['ratelimit-remaining']).toBe('2')
    } finally { up.handler = undefined }
  })

  it('a decK dump of Kong\'s plugin (every key, nulls included) loads and limits', async () => {
    freshMinute()
    expect((await get(`${gw.url()}/kong-dump`)).status).toBe(200)
    expect((await get(`${gw.url()}/kong-dump`)).status).toBe(200)
    expect((await get(`${gw.url()}/kong-dump`)).status).toBe(429)
  })
})

describe('limit_by', () => {
  it('ip: X-Forwarded-For from an untrusted peer is ignored (a client cannot pick its own counter)', async () => {
    freshMinute()
    for (let i = 0; i < 3; i++) expect((await get(`${gw.url()}/minute`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } })).status).toBe(200)
    expect((await get(`${gw.url()}/minute`, { headers: { 'x-forwarded-for': '203.0.113.99' } })).status).toBe(429)
  })

  it('ip: behind a trusted proxy (gateway.trusted_ips) each forwarded client has its own counter', async () => {
    freshMinute()
    expect((await get(`${proxied.url()}/`, { headers: { 'x-forwarded-for': '203.0.113.1' } })).status).toBe(200)
    expect((await get(`${proxied.url()}/`, { headers: { 'x-forwarded-for': '203.0.113.1' } })).status).toBe(429)
    // a forged leftmost entry does not help: the proxy appended the real address after it
    expect((await get(`${proxied.url()}/`, { headers: { 'x-forwarded-for': '198.51.100.5, 203.0.113.1' } })).status).toBe(429)
    expect((await get(`${proxied.url()}/`, { headers: { 'x-forwarded-for': '203.0.113.2' } })).status).toBe(200)
    // no X-Forwarded-For: the proxy itself is the client
    expect((await get(`${proxied.url()}/`)).status).toBe(200)
    expect((await get(`${proxied.url()}/`)).status).toBe(429)
  })

  it('header: one counter per value; without the header, the client address (Kong\'s fallback)', async () => {
    freshMinute()
    for (const key of ['k1', 'k1']) expect((await get(`${gw.url()}/header`, { headers: { 'x-api-key': key } })).status).toBe(200)
    expect((await get(`${gw.url()}/header`, { headers: { 'x-api-key': 'k1' } })).status).toBe(429)
    expect((await get(`${gw.url()}/header`, { headers: { 'x-api-key': 'k2' } })).status).toBe(200)
    expect((await get(`${gw.url()}/header`)).status).toBe(200)
    expect((await get(`${gw.url()}/header`)).status).toBe(200)
    expect((await get(`${gw.url()}/header`)).status).toBe(429)
    // the key value is never a store key in clear (it can be an API key): covered by the hashing in index.ts
  })

  it('path: requests to exactly that path share a counter; other paths count by address (Kong)', async () => {
    freshMinute()
    expect((await get(`${gw.url()}/path/limited`)).status).toBe(200)
    // the normalised path: dot segments and encoded unreserved characters do not make a new counter
    expect((await get(`${gw.url()}/path/x/../limited`)).status).toBe(200)
    expect((await get(`${gw.url()}/path/%6Cimited`)).status).toBe(429)
    expect((await get(`${gw.url()}/path/other`)).status).toBe(200)
    expect((await get(`${gw.url()}/path/other2`)).status).toBe(200)
    expect((await get(`${gw.url()}/path/other3`)).status).toBe(429)
  })

  it('service: a plugin on a service counts every route of the service together', async () => {
    freshMinute()
    expect((await get(`${gw.url()}/svc-a`)).status).toBe(200)
    expect((await get(`${gw.url()}/svc-b`)).status).toBe(200)
    expect((await get(`${gw.url()}/svc-a`)).status).toBe(429)
    expect((await get(`${gw.url()}/svc-b`)).status).toBe(429)
  })

  describe('with verified clients (built-in authorization server, RFC 8705 bound tokens)', () => {
    const agents: Agent[] = []
    const agentFor = (c: 'client1' | 'client2'): Agent => {
      const a = new Agent({ connect: { ca: pki.ca.certPem, cert: pki[c].certPem, key: pki[c].keyPem, servername: 'localhost' } })
      agents.push(a)
      return a
    }
    afterAll(async () => { await Promise.all(agents.map(a => a.close())) })
    async function token (c: 'client1' | 'client2'): Promise<string> {
      const r = await get(`${tls.url()}/oauth2/token`, { method: 'POST', dispatcher: agentFor(c), headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_id=${c}` })
      expect(r.status, r.body).toBe(200)
      return (JSON.parse(r.body) as { access_token: string }).access_token
    }
    const call = (path: string, c: 'client1' | 'client2', tok?: string): Promise<Res> =>
      get(`${tls.url()}${path}`, { dispatcher: agentFor(c), headers: tok === undefined ? {} : { authorization: `Bearer ${tok}` } })

    it('credential: per client_id; a fresh token for the same client shares its counter (no dodging by minting tokens)', async () => {
      freshMinute()
      const [a1, a2, b] = [await token('client1'), await token('client1'), await token('client2')]
      expect(a1).not.toBe(a2)
      expect((await call('/credential', 'client1', a1)).status).toBe(200)
      expect((await call('/credential', 'client1', a2)).status).toBe(200)
      expect((await call('/credential', 'client1', a2)).status).toBe(429)
      expect((await call('/credential', 'client2', b)).status).toBe(200)
      // a request without a token is refused by openid-connect before it costs a counter
      expect((await call('/credential', 'client2')).status).toBe(401)
      expect((await call('/credential', 'client2', b)).status).toBe(200)
      expect((await call('/credential', 'client2', b)).status).toBe(429)
    })

    it('credential without a token: the verified client certificate\'s thumbprint (mtls-auth)', async () => {
      freshMinute()
      expect((await call('/certificate', 'client1')).status).toBe(200)
      expect((await call('/certificate', 'client1')).status).toBe(200)
      expect((await call('/certificate', 'client1')).status).toBe(429)
      expect((await call('/certificate', 'client2')).status).toBe(200)
    })

    it('consumer (Kong\'s default): without a consumer, the credential', async () => {
      freshMinute()
      const a = await token('client1')
      const b = await token('client2')
      expect((await call('/consumer', 'client1', a)).status).toBe(200)
      expect((await call('/consumer', 'client1', a)).status).toBe(200)
      expect((await call('/consumer', 'client1', a)).status).toBe(429)
      expect((await call('/consumer', 'client2', b)).status).toBe(200)
    })

    it('runs between authentication and authorisation: a 403 insufficient_scope carries the RateLimit headers', async () => {
      freshMinute()
      const r = await call('/scoped', 'client1', await token('client1'))
      expect(r.status).toBe(403)
      expect(r.headers['www-authenticate']).toMatch(/insufficient_scope/)
      expect(rl(r)).toMatchObject({ 'ratelimit-limit': '5', 'ratelimit-remaining': '4' })
    })
  })
})

describe('a burst of 1000 concurrent requests never lets more than the limit through', () => {
  it('minute: 50 → exactly 50 answered 200, 950 answered 429', async () => {
    freshMinute()
    const agent = new Agent({ connections: 100, pipelining: 1 })
    try {
      const started = Date.now()
      const all = await Promise.all(Array.from({ length: 1000 }, async () => (await get(`${gw.url()}/burst`, { dispatcher: agent })).status))
      const ok = all.filter(s => s === 200).length
      expect({ ok, refused: all.filter(s => s === 429).length }).toEqual({ ok: 50, refused: 950 })
      expect(Date.now() - started).toBeLessThan(30_000)
    } finally { await agent.close() }
  }, 60_000)
})

describe('plugin order', () => {
  it('runs after every authentication plugin and before require-scopes (priorities are unique)', async () => {
    const plugins = await loadPlugins()
    const p = (n: string): number => plugins.get(n)!.priority
    for (const auth of ['mtls-auth', 'tls-handshake-modifier', 'token-introspection', 'openid-connect']) expect(p('rate-limiting')).toBeLessThan(p(auth))
    expect(p('rate-limiting')).toBeGreaterThan(p('require-scopes'))
    expect(p('rate-limiting')).toBeGreaterThan(p('request-transformer'))
  })
})

describe('counters across a reload', () => {
  it('a route keeps its count when the file changes around it (counters are named by route, in the gateway\'s store)', async () => {
    const yaml = (extra: string): string => `_format_version: "3.0"
gateway:
  listen: [{ address: 127.0.0.1:0 }]
services:
  - name: echo
    url: ${up.url}
    routes:
${extra}      - name: kept
        paths: [/kept]
        plugins:
          - name: rate-limiting
            config: { minute: 2, limit_by: ip }
`
    const g = await startGateway(yaml(''), { now: clock.now })
    try {
      freshMinute()
      expect((await get(`${g.url()}/kept`)).status).toBe(200)
      // a new route before it: the entry moves in the file (services[0].routes[1]), its counter does not
      const r = await g.gateway.reload(yaml('      - { name: added, paths: [/added] }\n'))
      expect(r.ok).toBe(true)
      expect((await get(`${g.url()}/kept`)).status).toBe(200)
      expect((await get(`${g.url()}/kept`)).status).toBe(429)
    } finally { await g.close() }
  })
})
