/**
 * Issue 14: the shared tier of the verified-token cache (src/auth/shared-token-tier.ts), between two gateway nodes
 * sharing one real redis-server, in front of a real RFC 7662 endpoint that counts its calls. Both nodes run in this
 * process (two Gateways, each with its own Redis connections and its own per-process cache) on one ManualClock, so
 * the bounds are reached by moving the clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { ManualClock } from '../helpers/clock.js'
import { createSecretBox } from '../../src/store/secret-box.js'
import { startIntrospectionServer, type IntrospectionServer } from '../unit/helpers/introspection-server.js'

const SECRET = 'a-test-secret-of-at-least-32-characters!'
const PREFIX = 'cbtok:'

let pki: TestPki
let idp: IntrospectionServer
let redis: TestRedis
let a: TestGateway
let b: TestGateway
const clock = new ManualClock(Date.now())
const issued: string[] = []
let seq = 0

/** A token the IdP answers as active, expiring `expS` seconds after the gateways' clock. */
function token (expS = 300, claims: Record<string, unknown> = {}): string {
  const t = `opaque-${++seq}-${Math.random().toString(36).slice(2)}`
  const now = Math.floor(clock.now() / 1000)
  idp.tokens.set(t, { json: { active: true, scope: 'system-access', client_id: 'svc', token_type: 'Bearer', sub: 'service-account-svc', iss: 'https://idp.test', aud: 'https://api.test', exp: now + expS, iat: now, jti: `jti-${seq}`, ...claims } })
  issued.push(t)
  return t
}

function config (): string {
  const intro = (clientId: string, ttl = 60): string => `
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.url}
              client_id: ${clientId}
              client_secret: secret-${clientId}
              ttl: ${ttl}
          - name: request-termination
            config: { status_code: 200, message: ok }`
  return `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  trusted_certificates: ${pki.ca.certFile}
  store:
    redis:
      url: ${redis.url}
      key_prefix: "${PREFIX}"
    secret: "${SECRET}"
services:
  - name: api
    url: http://127.0.0.1:9/unused
    routes:
      - name: intro
        paths: [/intro]
        plugins:${intro('gateway')}
      - name: other-client
        paths: [/other-client]
        plugins:${intro('another-gateway')}
      - name: oidc
        paths: [/oidc]
        plugins:
          - name: openid-connect
            config:
              auth_methods: [introspection]
              issuers_allowed: [https://idp.test]
              jwks_endpoint: ${idp.url.replace('/introspect', '/jwks')}
              audience_required: [https://api.test]
              introspection_endpoint: ${idp.url}
              client_id: [gateway]
              client_secret: [secret-gateway]
              cache_ttl_max: 60
          - name: request-termination
            config: { status_code: 200, message: ok }
`
}

async function call (gw: TestGateway, path: string, t: string): Promise<number> {
  const r = await request(gw.url() + path, { headers: { authorization: `Bearer ${t}` }, headersTimeout: 10_000, bodyTimeout: 10_000 })
  await r.body.text()
  return r.statusCode
}

async function sharedCounter (gw: TestGateway, outcome: string, plugin = 'token-introspection'): Promise<number> {
  const r = await request(gw.adminUrl! + '/metrics')
  const text = await r.body.text()
  const line = text.split('\n').find(l => l.startsWith(`certbound_token_cache_shared_total{plugin="${plugin}",outcome="${outcome}"}`))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

beforeAll(async () => {
  pki = await createTestPki()
  idp = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem })
  redis = await startRedis()
  a = await startGateway(config(), { now: clock.now })
  b = await startGateway(config(), { now: clock.now })
}, 60_000)

afterAll(async () => {
  await b?.close()
  await a?.close()
  await redis?.stop()
  await idp?.close()
  pki?.cleanup()
})

describe('verified-token cache, shared tier: two nodes, one Redis', () => {
  it('a token introspected at node A is accepted at node B without a second introspection call', async () => {
    const t = token()
    expect(await call(a, '/intro', t)).toBe(200)
    expect(idp.calls(t)).toBe(1)
    for (let i = 0; i < 3; i++) expect(await call(b, '/intro', t)).toBe(200)
    expect(await call(a, '/intro', t)).toBe(200)
    expect(idp.calls(t)).toBe(1)
    expect(await sharedCounter(b, 'hit')).toBeGreaterThanOrEqual(1)
  })

  it('openid-connect introspecting at the same endpoint as the same client reuses the answer; another client_id does not', async () => {
    const t = token()
    expect(await call(a, '/intro', t)).toBe(200)
    expect(await call(b, '/oidc', t)).toBe(200) // openid-connect applies its own iss/aud checks to the shared answer
    expect(idp.calls(t)).toBe(1)
    // the IdP may answer another client differently (RFC 7662 §4): never shared across client ids
    expect(await call(b, '/other-client', t)).toBe(200)
    expect(idp.calls(t)).toBe(2)
  })

  it('an answer is never used past its bound on the gateways\' clock: the cache ttl, then the token\'s exp', async () => {
    // ttl 60 s, exp in 300 s: at +61 s node B does not reuse A's answer (Redis's own TTL runs on real time)
    const t = token(300)
    expect(await call(a, '/intro', t)).toBe(200)
    clock.advance(61_000)
    expect(await call(b, '/intro', t)).toBe(200)
    expect(idp.calls(t)).toBe(2)

    // exp in 20 s (before the 60 s ttl): shared until exp, then refused (the IdP still says active: certbound checks exp)
    const e = token(20)
    expect(await call(a, '/intro', e)).toBe(200)
    expect(await call(b, '/intro', e)).toBe(200)
    expect(idp.calls(e)).toBe(1)
    clock.advance(21_000)
    expect(await call(b, '/intro', e)).toBe(401)
    expect(await call(a, '/intro', e)).toBe(401)
    expect(idp.calls(e)).toBe(3) // each node asked again: the shared answer was past its bound
  })

  it('an inactive answer is shared only as long as negative_ttl allows (0 by default: asked every time)', async () => {
    const t = `never-issued-${Math.random().toString(36).slice(2)}`
    issued.push(t)
    expect(await call(a, '/intro', t)).toBe(401)
    expect(await call(b, '/intro', t)).toBe(401)
    expect(idp.calls(t)).toBe(2)
  })

  it('Redis holds no raw token and no readable claims: keys are tok:<scope>:<SHA-256>, values sealed', async () => {
    const keys = (await redis.command('KEYS', '*')).split('\n').filter(k => k !== '')
    const tok = keys.filter(k => k.startsWith(`${PREFIX}kv:tok:`))
    expect(tok.length).toBeGreaterThan(0)
    for (const k of tok) {
      expect(k).toMatch(new RegExp(`^${PREFIX}kv:tok:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{43}$`))
      const v = await redis.command('GET', k)
      expect(v.startsWith('v1.')).toBe(true) // AES-256-GCM with gateway.store.secret
      expect(v).not.toContain('service-account-svc')
    }
    for (const k of keys) {
      const type = await redis.command('TYPE', k)
      const v = type === 'string' ? await redis.command('GET', k) : type === 'zset' ? await redis.command('ZRANGE', k, '0', '-1') : ''
      for (const t of issued) {
        expect(k).not.toContain(t)
        expect(v).not.toContain(t)
      }
    }
    // TTLs follow the bound (≤ the 60 s ttl)
    const ttl = Number(await redis.command('PTTL', tok[0]))
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })

  it('a value not sealed with gateway.store.secret is never trusted: write access to Redis is no way past authentication', async () => {
    const t = token()
    expect(await call(a, '/intro', t)).toBe(200)
    const key = (await redis.command('KEYS', `${PREFIX}kv:tok:*:${createHash('sha256').update(t).digest('base64url')}`)).split('\n')[0]
    const scope = key.slice(`${PREFIX}kv:tok:`.length).split(':')[0]
    const forged = `forged-${Math.random().toString(36).slice(2)}`
    issued.push(forged)
    const at = clock.now()
    const claims = { active: true, scope: 'system-access', sub: 'admin', iss: 'https://idp.test', aud: 'https://api.test', exp: Math.floor(at / 1000) + 300 }
    const fake = JSON.stringify({ v: 1, at, until: at + 60_000, claims })
    const forgedKey = `${PREFIX}kv:tok:${scope}:${createHash('sha256').update(forged).digest('base64url')}`
    // in the clear, and sealed with another secret
    for (const value of [fake, createSecretBox('another-secret-of-at-least-32-characters').seal(fake, forgedKey.slice(PREFIX.length + 3))]) {
      expect(await redis.command('SET', forgedKey, value, 'PX', '60000')).toBe('OK')
      expect(await call(b, '/intro', forged)).toBe(401) // asked the IdP, which never issued it
    }
    expect(idp.calls(forged)).toBe(2)
  })

  it('Redis stopped: tokens are still verified at the IdP (no 5xx), the failure counted and logged without the token', async () => {
    await redis.kill()
    const t = token()
    expect(await call(a, '/intro', t)).toBe(200)
    expect(await call(b, '/intro', t)).toBe(200)
    expect(await call(b, '/oidc', t)).toBe(200)
    expect(idp.calls(t)).toBe(3) // nothing shared, nothing refused
    expect(await sharedCounter(a, 'get_error') + await sharedCounter(a, 'set_error')).toBeGreaterThanOrEqual(1)
    const warned = a.logs.filter(l => typeof l.msg === 'string' && l.msg.startsWith('verified-token cache: the shared store failed'))
    expect(warned.length).toBe(1)
    for (const l of [...a.logs, ...b.logs]) for (const x of issued) expect(JSON.stringify(l)).not.toContain(x)

    // back: after the backoff (on the gateways' clock) the tier is used again
    await redis.restart()
    clock.advance(6_000)
    const u = token()
    let first = 0
    for (let i = 0; i < 50 && first !== 200; i++) {
      first = await call(a, '/intro', u)
      if (first !== 200) await new Promise(r => setTimeout(r, 100))
    }
    // the first call may still find the connection reconnecting; once A has stored the answer, B reuses it
    const before = idp.calls(u)
    const deadline = Date.now() + 10_000
    let shared = false
    while (!shared && Date.now() < deadline) {
      const v = token()
      clock.advance(6_000) // past any backoff a reconnecting connection caused
      expect(await call(a, '/intro', v)).toBe(200)
      expect(await call(b, '/intro', v)).toBe(200)
      shared = idp.calls(v) === 1
      if (!shared) await new Promise(r => setTimeout(r, 200))
    }
    expect(before).toBeGreaterThanOrEqual(1)
    expect(shared).toBe(true)
  })
})
