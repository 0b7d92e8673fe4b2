/**
 * The authorization server's generated signing keys in the shared store: one key set for every worker and node
 * (set-if-absent), sealed with gateway.store.secret in Redis, rotated by adding a key that the next reload picks up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MemoryStore } from '../../src/store/memory.js'
import { createRedisStore, type RedisStore } from '../../src/store/redis.js'
import { rotateSharedKey, sharedKeys } from '../../src/authorization-server/store-keys.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const ISS = 'https://gw.example'
const now = (): number => Date.now()
let redis: TestRedis
const open: RedisStore[] = []
beforeAll(async () => { redis = await startRedis() }, 30_000)
afterAll(async () => { for (const s of open) await s.close(); await redis?.stop() })
const redisStore = (secret?: string): RedisStore => { const s = createRedisStore({ redis: { url: redis.url }, now, secret }); open.push(s); return s }

describe('AS signing keys in gateway.store', () => {
  it('memory: created once, the same for every reader; rotation adds a key that signs, the old one stays published', async () => {
    const store = new MemoryStore({ now })
    const [a, b] = await Promise.all([sharedKeys(store, ISS, 'ES256', now), sharedKeys(store, ISS, 'ES256', now)])
    expect(a.signing.kid).toBe(b.signing.kid)
    const kid2 = await rotateSharedKey(store, ISS, { alg: 'EdDSA' })
    const c = await sharedKeys(store, ISS, 'ES256', now)
    expect(c.signing.kid).toBe(kid2)
    expect(c.signing.alg).toBe('EdDSA')
    expect(c.keys.map(k => k.kid)).toEqual([a.signing.kid, kid2])
    expect((await sharedKeys(store, 'https://other.example', 'ES256', now)).signing.kid).not.toBe(a.signing.kid)
  })

  it('redis: sealed with gateway.store.secret (no private key in the clear); the same keys at every node; a wrong or missing secret is refused', async () => {
    const secret = 's'.repeat(40)
    const n1 = redisStore(secret)
    const n2 = redisStore(secret)
    await Promise.all([n1.started(), n2.started()])
    const [a, b] = await Promise.all([sharedKeys(n1, ISS, 'ES256', now), sharedKeys(n2, ISS, 'ES256', now)])
    expect(a.signing.kid).toBe(b.signing.kid)
    const keys = (await redis.command('KEYS', 'certbound:kv:as:signing-keys:*')).split('\n').filter(Boolean)
    expect(keys).toHaveLength(1)
    const raw = await redis.command('GET', keys[0])
    expect(raw.startsWith('v1.')).toBe(true)
    expect(raw).not.toContain('"d"')
    const wrong = redisStore('t'.repeat(40))
    await wrong.started()
    await expect(sharedKeys(wrong, ISS, 'ES256', now)).rejects.toThrow(/do not open with gateway\.store\.secret/)
    const none = redisStore()
    await none.started()
    await expect(sharedKeys(none, ISS, 'ES256', now)).rejects.toThrow(/set gateway\.store\.secret/)
    const kid2 = await rotateSharedKey(n1, ISS)
    expect((await sharedKeys(n2, ISS, 'ES256', now)).signing.kid).toBe(kid2)
  })
})
