/**
 * Issue 14: token-introspection's verified-token cache with its shared tier (src/auth/shared-token-tier.ts) on a
 * real redis-server, plugin instances standing for routes and nodes (each its own per-process cache), a real HTTPS
 * RFC 7662 endpoint counting its calls, and a ManualClock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import plugin from '../../../plugins/token-introspection/index.js'
import { schema } from '../../../plugins/token-introspection/schema.js'
import type { PluginDeps, PluginInstance } from '../../../src/pipeline/types.js'
import { localIntrospectionKey, type LocalIssuer } from '../../../src/pipeline/local-issuer.js'
import { ServiceMap } from '../../../src/pipeline/services.js'
import { RedisStore } from '../../../src/store/redis.js'
import { MemoryStore } from '../../../src/store/memory.js'
import { IpcStore } from '../../../src/store/ipc.js'
import { SharedTokenTier, sharedTierUnavailable } from '../../../src/auth/shared-token-tier.js'
import { TokenCacheMetrics } from '../../../src/auth/token-cache-metrics.js'
import { Registry } from 'prom-client'
import { createMtlsPki, type MtlsPki } from '../../unit/helpers/mtls-pki.js'
import { startHarness, testDeps, type Harness } from '../../unit/helpers/plugin-harness.js'
import { startIntrospectionServer, type IntrospectionServer } from '../../unit/helpers/introspection-server.js'
import { startRedis, type TestRedis } from '../../helpers/redis.js'
import { ManualClock } from '../../helpers/clock.js'

const SECRET = 'a-test-secret-of-at-least-32-characters!'
let pki: MtlsPki
let idp: IntrospectionServer
let redis: TestRedis
let base: PluginDeps
const clock = new ManualClock(Date.now())
const open: Array<{ close (): Promise<void> }> = []
let seq = 0

beforeAll(async () => {
  pki = await createMtlsPki()
  idp = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  redis = await startRedis()
  base = testDeps(pki.dir, [pki.root.certPem])
}, 60_000)

afterAll(async () => {
  for (const o of open.reverse()) await o.close()
  await base?.http.close()
  await redis?.stop()
  await idp?.close()
  pki?.cleanup()
})

/** A "node": its own Redis connection (sealed with SECRET unless told otherwise), on the shared clock. */
async function redisStore (secret: string | null = SECRET): Promise<RedisStore> {
  const s = new RedisStore({ redis: { url: redis.url, key_prefix: 'cbunit:' }, now: clock.now, secret: secret ?? undefined })
  open.push(s)
  await s.started()
  return s
}

async function route (config: Record<string, unknown>, store: PluginDeps['store'], extra: Partial<PluginDeps> = {}): Promise<Harness> {
  const inst: PluginInstance = await plugin.create(schema.parse({ introspection_endpoint: idp.url, client_id: 'gateway', client_secret: 'secret', ...config }), { ...base, store, now: clock.now, ...extra })
  open.push({ close: () => inst.close?.() ?? Promise.resolve() })
  const h = await startHarness(inst, { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  open.push(h)
  return h
}

function token (expS = 300): string {
  const t = `tok-${++seq}-${Math.random().toString(36).slice(2)}`
  const now = Math.floor(clock.now() / 1000)
  idp.tokens.set(t, { json: { active: true, scope: 'system-access', client_id: 'svc', sub: 'svc', exp: now + expS, iat: now } })
  return t
}
const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } })

describe('shared tier: when it is used', () => {
  it('not with this process\'s own memory store, nor Redis without gateway.store.secret; with workers\' IPC store and sealed Redis', async () => {
    expect(sharedTierUnavailable(new MemoryStore({ now: clock.now }))).toMatch(/only copy/)
    expect(sharedTierUnavailable(await redisStore(null))).toMatch(/gateway.store.secret is not set/)
    expect(sharedTierUnavailable(await redisStore())).toBeUndefined()
    expect(sharedTierUnavailable(new IpcStore(() => undefined, clock.now))).toBeUndefined()
  })

  it('Redis without the secret: each node asks the IdP (nothing written to Redis)', async () => {
    const [a, b] = [await route({}, (await redisStore(null))), await route({}, (await redisStore(null)))]
    const t = token()
    expect((await a.send(bearer(t))).status).toBe(200)
    expect((await b.send(bearer(t))).status).toBe(200)
    expect(idp.calls(t)).toBe(2)
    expect(await redis.command('KEYS', 'cbunit:kv:tok:*')).toBe('')
  })
})

describe('shared tier: token-introspection across nodes', () => {
  it('each route keeps its own ttl, counted from when the IdP answered: a shorter ttl never reuses a longer one\'s answer', async () => {
    const long1 = await route({ ttl: 300 }, (await redisStore()))
    const short = await route({ ttl: 30 }, (await redisStore()))
    const long2 = await route({ ttl: 300 }, (await redisStore()))
    const t = token(600)
    expect((await long1.send(bearer(t))).status).toBe(200)
    clock.advance(31_000)
    expect((await short.send(bearer(t))).status).toBe(200) // 31 s old: past its 30 s ttl, so asked again
    expect(idp.calls(t)).toBe(2)
    expect((await long2.send(bearer(t))).status).toBe(200) // the newest answer, within 300 s
    expect(idp.calls(t)).toBe(2)
  })

  it('negative_ttl: an inactive answer is shared for as long as the reader\'s negative_ttl allows', async () => {
    const a = await route({ negative_ttl: 60 }, (await redisStore()))
    const b = await route({ negative_ttl: 60 }, (await redisStore()))
    const c = await route({ negative_ttl: 0 }, (await redisStore()))
    const t = `unknown-${Math.random().toString(36).slice(2)}`
    expect((await a.send(bearer(t))).body.code).toBe('CB_ERR_TOKEN_INACTIVE')
    expect((await b.send(bearer(t))).body.code).toBe('CB_ERR_TOKEN_INACTIVE')
    expect(idp.calls(t)).toBe(1)
    expect((await c.send(bearer(t))).status).toBe(401)
    expect(idp.calls(t)).toBe(2) // negative_ttl 0: asked every time, as before
  })

  it('a hung Redis (SIGSTOP) costs one bounded wait, then is bypassed: tokens are verified at the IdP, never refused', async () => {
    const registry = new Registry()
    const metrics = new TokenCacheMetrics(registry)
    const lines: Array<Record<string, unknown>> = []
    const logger = pino({ level: 'warn' }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
    const h = await route({}, (await redisStore()), { tokenCacheMetrics: metrics, logger })
    const t1 = token()
    const t2 = token()
    redis.pause()
    try {
      let t0 = performance.now()
      expect((await h.send(bearer(t1))).status).toBe(200)
      expect(performance.now() - t0).toBeLessThan(3000) // the 250 ms bound, not command_timeout + reconnects
      t0 = performance.now()
      expect((await h.send(bearer(t2))).status).toBe(200) // bypassed for 5 s: no wait at all
      expect(performance.now() - t0).toBeLessThan(3000)
    } finally {
      redis.resume()
    }
    expect(idp.calls(t1) + idp.calls(t2)).toBe(2)
    const counted = (await registry.getSingleMetricAsString('certbound_token_cache_shared_total'))
    expect(counted).toMatch(/outcome="get_error"} 1/)
    const warned = lines.filter(l => String(l.msg).startsWith('verified-token cache: the shared store failed'))
    expect(warned).toHaveLength(1)
    expect(JSON.stringify(lines)).not.toContain(t1)
  })

  it('keys and values: tok:<scope>:<SHA-256(token)>, no token even when the IdP echoes it, nothing past the bound', async () => {
    const store = (await redisStore())
    const tier = new SharedTokenTier({ store, now: clock.now, logger: base.logger, plugin: 'test', scope: () => ['rfc7662', 'https://idp/x', 'c'] })
    const t = 'echoed-token-value'
    const key = tier.keyOf(t)!
    expect(key).toMatch(/^tok:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{43}$/)
    expect(key).not.toContain(t)
    await tier.set(t, { at: clock.now(), until: clock.now() + 10_000, claims: { active: true, token: t, sub: 's' } })
    const raw = await redis.command('GET', 'cbunit:kv:' + key)
    expect(raw.startsWith('v1.')).toBe(true)
    const opened = store.secretBox!.open(raw, key)!
    expect(opened).not.toContain(t)
    expect(JSON.parse(opened)).toMatchObject({ v: 1, claims: { active: true, sub: 's' } })
    expect((await tier.get(t))?.claims.sub).toBe('s')
    // another scope (another endpoint or client id) is another key
    const other = new SharedTokenTier({ store, now: clock.now, logger: base.logger, plugin: 'test', scope: () => ['rfc7662', 'https://idp/x', 'd'] })
    expect(other.keyOf(t)).not.toBe(key)
    expect(await other.get(t)).toBeUndefined()
    // the bound holds on the gateway's clock, whatever Redis's TTL says
    clock.advance(10_001)
    expect(await tier.get(t)).toBeUndefined()
    // nothing is written for a bound already past
    await tier.set('past', { at: clock.now(), until: clock.now(), claims: { active: true } })
    expect(await redis.command('EXISTS', 'cbunit:kv:' + tier.keyOf('past')!)).toBe('0')
  })
})

describe('shared tier: the built-in authorization server', () => {
  it('its in-process introspection is never shared, and its revocation refuses a token served from the cache', async () => {
    const url = 'https://local.test/oauth2/introspect'
    let revoked = false
    const local: LocalIssuer = {
      issuer: 'https://local.test',
      metadata: () => ({}),
      jwks: () => ({ keys: [] }),
      introspect: (t: string) => Promise.resolve(t === 'local-token' ? { active: true, iss: 'https://local.test', jti: 'j1', sub: 'local', exp: Math.floor(clock.now() / 1000) + 60 } : { active: false }),
      isRevoked: () => revoked,
    }
    const tokKeys = async (): Promise<string[]> => (await redis.command('KEYS', 'cbunit:kv:tok:*')).split('\n').filter(k => k !== '')
    const before = await tokKeys()
    const h = await route({ introspection_endpoint: url, client_id: undefined, client_secret: undefined }, (await redisStore()), { local: new ServiceMap().set(localIntrospectionKey(url), local) })
    expect((await h.send(bearer('local-token'))).status).toBe(200)
    revoked = true
    // served from the cache, and still refused: the revocation check runs after it on every request
    expect((await h.send(bearer('local-token'))).body.code).toBe('CB_ERR_TOKEN_REVOKED')
    expect((await tokKeys()).sort()).toEqual(before.sort())
  })
})
