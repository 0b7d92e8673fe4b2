/**
 * Issue 14: openid-connect's verified-token cache and its shared tier on a real redis-server: two instances standing
 * for two nodes (each its own per-process cache and Redis connection), a real issuer (discovery, JWKS, RFC 7662).
 * Introspection answers are shared; locally verified JWTs are not (README: "Caching", with the measurement).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import plugin from '../../../plugins/openid-connect/index.js'
import type { PluginInstance, PluginDeps } from '../../../src/pipeline/types.js'
import { createHttpClient, type HttpClient } from '../../../src/http-client/index.js'
import { RedisStore } from '../../../src/store/redis.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { startRedis, type TestRedis } from '../../helpers/redis.js'
import { build, makeCtx, run, testDeps } from './harness.js'
import { AUDIENCE, startIssuer, type TestIssuer } from './issuer.js'

let pki: TestPki
let idp: TestIssuer
let http: HttpClient
let redis: TestRedis
const open: Array<{ close?: () => Promise<void> }> = []

beforeAll(async () => {
  pki = await createTestPki()
  idp = await startIssuer({ cert: pki.server.certPem, key: pki.server.keyPem })
  http = createHttpClient({ trustedCa: [pki.ca.certPem] })
  redis = await startRedis()
}, 60_000)

afterEach(async () => {
  await Promise.all(open.splice(0).reverse().map(p => p.close?.()))
})

afterAll(async () => {
  await redis?.stop()
  await idp?.stop()
  await http?.close()
  pki?.cleanup()
})

async function node (config: Record<string, unknown>): Promise<PluginInstance> {
  const store = new RedisStore({ redis: { url: redis.url, key_prefix: 'cboidc:' }, now: () => Date.now(), secret: 'a-test-secret-of-at-least-32-characters!' })
  open.push(store)
  await store.started()
  const deps: PluginDeps = { ...testDeps({ http }), store }
  const p = await build(plugin, { issuer: idp.issuer, auth_methods: ['bearer', 'introspection'], client_id: ['gw'], client_secret: ['s'], ...config }, deps)
  open.push(p)
  return p
}

const bearer = (t: string) => makeCtx({ headers: [['Authorization', `Bearer ${t}`]], plain: true })
const tokKeys = async (): Promise<string[]> => (await redis.command('KEYS', 'cboidc:kv:tok:*')).split('\n').filter(k => k !== '')

describe('openid-connect: shared tier', () => {
  it('an opaque token introspected at node A is accepted at node B without a second introspection call', async () => {
    const opaque = `opaque-${Math.random().toString(36).slice(2)}`
    idp.introspections.length = 0
    idp.introspect = t => t === opaque
      ? { status: 200, body: { active: true, client_id: 'client1', sub: 'svc', scope: 'system-access', iss: idp.issuer, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 } }
      : { status: 200, body: { active: false } }
    const a = await node({})
    const b = await node({})
    expect(await run(a, bearer(opaque))).toBeUndefined()
    expect(await run(b, bearer(opaque))).toBeUndefined()
    expect(idp.introspections).toHaveLength(1)
    // node C requires another audience: its own check refuses the shared answer, as it would the IdP's
    const c = await node({ audience_required: ['https://other.example.test'] })
    expect(await run(c, bearer(opaque))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(idp.introspections).toHaveLength(1)
    expect(await tokKeys()).toHaveLength(1)
  })

  it('inactive answers are not shared (this plugin never caches them); cache_introspection false shares nothing', async () => {
    idp.introspections.length = 0
    idp.introspect = () => ({ status: 200, body: { active: false } })
    const a = await node({})
    const b = await node({ cache_introspection: false })
    expect(await run(a, bearer('inactive-1'))).toMatchObject({ code: 'CB_ERR_TOKEN_INACTIVE' })
    expect(await run(a, bearer('inactive-1'))).toMatchObject({ code: 'CB_ERR_TOKEN_INACTIVE' })
    expect(idp.introspections).toHaveLength(2)
    const before = await tokKeys()
    idp.introspect = () => ({ status: 200, body: { active: true, sub: 'svc', iss: idp.issuer, exp: Math.floor(Date.now() / 1000) + 60 } })
    expect(await run(b, bearer('active-uncached'))).toBeUndefined()
    expect(await tokKeys()).toEqual(before)
  })

  it('a locally verified JWT stays per process: nothing is written to the store, each node verifies it', async () => {
    const before = await tokKeys()
    const a = await node({})
    const b = await node({})
    const jwt = await idp.sign()
    expect(await run(a, bearer(jwt))).toBeUndefined()
    expect(await run(b, bearer(jwt))).toBeUndefined()
    expect(await tokKeys()).toEqual(before)
  })
})
