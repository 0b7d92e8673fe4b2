/**
 * The redis backend against a real redis-server (its own process, free port, no persistence): the StateStore
 * contract, atomicity across two clients, revocation propagation by pub/sub, re-seeding an emptied Redis, bounded
 * failure on a hung Redis, keys under the prefix, AUTH, and TLS verified against gateway.trusted_certificates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { createRedisStore, type RedisStore } from '../../src/store/redis.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { waitFor } from '../helpers/process.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

let redis: TestRedis
let pki: TestPki
const stores: RedisStore[] = []

beforeAll(async () => {
  pki = await createTestPki()
  redis = await startRedis({ tls: { cert: pki.server.certFile, key: pki.server.keyFile, ca: pki.ca.certFile } })
}, 60_000)

afterAll(async () => {
  for (const s of stores) await s.close()
  await redis?.stop()
  pki?.cleanup()
})

function open (o: Partial<Parameters<typeof createRedisStore>[0]> = {}): RedisStore {
  const s = createRedisStore({ redis: { url: redis.url, key_prefix: 't1:' }, now: () => Date.now(), resyncIntervalMs: 500, healthIntervalMs: 200, ...o })
  stores.push(s)
  return s
}

describe('store: redis backend (real redis-server)', () => {
  it('get/set/delete with TTL, setIfAbsent, fixed-window increment, under the key prefix', async () => {
    const s = open()
    expect(await s.started(5000)).toBe(true)
    expect(s.status()).toMatchObject({ backend: 'redis', connected: true })
    await s.set('a', '1', 200)
    await s.set('b', '2')
    expect(await s.get('a')).toBe('1')
    expect(await s.get('b')).toBe('2')
    await new Promise(r => setTimeout(r, 300))
    expect(await s.get('a')).toBeUndefined()
    await s.delete('b')
    expect(await s.get('b')).toBeUndefined()
    expect(await s.setIfAbsent('jti', 'x', 10_000)).toBe(true)
    expect(await s.setIfAbsent('jti', 'y', 10_000)).toBe(false)
    expect(await s.increment([{ key: 'c', by: 2, ttlMs: 5000 }, { key: 'c', by: 3, ttlMs: 60_000 }, { key: 'd', by: 1, ttlMs: 5000 }])).toEqual([2, 5, 1])
    const pttl = Number(await redis.command('PTTL', 't1:kv:c'))
    expect(pttl).toBeGreaterThan(4000)
    expect(pttl).toBeLessThanOrEqual(5000) // the window is the first increment's, not extended by the second
    expect(await s.increment([])).toEqual([])
    const keys = (await redis.command('KEYS', '*')).split('\n').filter(Boolean)
    expect(keys.every(k => k.startsWith('t1:'))).toBe(true)
  })

  it('setIfAbsent and increment are atomic across clients (two stores, 200 racing calls)', async () => {
    const a = open()
    const b = open()
    await Promise.all([a.started(), b.started()])
    const wins = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).setIfAbsent('race', String(i), 10_000)))
    expect(wins.filter(Boolean)).toHaveLength(1)
    const counts = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).increment([{ key: 'n', by: 1, ttlMs: 10_000 }])))
    expect(new Set(counts.map(c => c[0])).size).toBe(200)
    expect(Math.max(...counts.map(c => c[0]))).toBe(200)
  })

  it('a revocation reaches every replica by pub/sub at once; publish/subscribe delivers to other nodes', async () => {
    const a = open({ redis: { url: redis.url, key_prefix: 't2:' } })
    const b = open({ redis: { url: redis.url, key_prefix: 't2:' } })
    await Promise.all([a.started(), b.started()])
    const got: string[] = []
    b.subscribe('news', (m) => got.push(m))
    await new Promise(r => setTimeout(r, 100))
    await a.publish('news', 'hello')
    const t0 = Date.now()
    await a.revoke('id1', Date.now() + 60_000)
    expect(a.isRevoked('id1')).toBe(true)
    await waitFor('b sees the revocation', () => b.isRevoked('id1') === true ? true : undefined, 2000)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(b.isRevoked('other')).toBe(false)
    await waitFor('b got the message', () => got.includes('hello') ? true : undefined, 2000)
  })

  it('Redis restarted empty: the revocations a node holds are re-seeded; a hung Redis fails commands in bounded time and the replica goes stale after replica_max_age', async () => {
    const s = open({ redis: { url: redis.url, key_prefix: 't3:', command_timeout: 300, reconnect_max_delay: 200 }, replicaMaxAgeMs: 1500 })
    await s.started()
    await s.revoke('keep', Date.now() + 60_000)
    await redis.restart()
    await waitFor('re-seeded', async () => (await redis.command('ZSCORE', 't3:revocations', 'keep')) !== '(nil)' ? true : undefined, 10_000)
    expect(s.isRevoked('keep')).toBe(true)

    redis.pause()
    try {
      const t0 = Date.now()
      await expect(s.get('x')).rejects.toMatchObject({ code: 'CB_ERR_STORE_UNAVAILABLE' })
      expect(Date.now() - t0).toBeLessThan(1500)
      await waitFor('not connected', () => s.status().connected ? undefined : true, 5000)
      await waitFor('stale replica', () => s.isRevoked('unknown') === undefined ? true : undefined, 5000)
      expect(s.isRevoked('keep')).toBe(true) // a known revocation holds however stale the rest is
    } finally { redis.resume() }
    await waitFor('connected again', () => s.status().connected ? true : undefined, 10_000)
    expect(s.isRevoked('unknown')).toBe(false)
  })

  it('AUTH: the right password connects, a wrong one never does (and says so in status)', async () => {
    const locked = await startRedis({ args: ['--requirepass', 'pw-of-the-test'] })
    try {
      const good = open({ redis: { url: locked.url, password: 'pw-of-the-test' } })
      expect(await good.started(5000)).toBe(true)
      const bad = open({ redis: { url: `redis://:wrong@127.0.0.1:${locked.port}`, connect_timeout: 300, reconnect_max_delay: 200 } })
      expect(await bad.started(1500)).toBe(false)
      expect(bad.status().connected).toBe(false)
      await expect(bad.get('a')).rejects.toMatchObject({ code: 'CB_ERR_STORE_UNAVAILABLE' })
      await good.close(); await bad.close()
    } finally { await locked.stop() }
  })

  it('rediss:// verifies the server against gateway.trusted_certificates; without that CA it does not connect', async () => {
    const url = `rediss://localhost:${redis.tlsPort!}`
    const trusted = open({ redis: { url }, trustedCa: [readFileSync(pki.ca.certFile, 'utf8')] })
    expect(await trusted.started(5000)).toBe(true)
    await trusted.set('tls', 'yes')
    expect(await trusted.get('tls')).toBe('yes')
    const untrusted = open({ redis: { url, connect_timeout: 500, reconnect_max_delay: 300 } })
    expect(await untrusted.started(1500)).toBe(false)
    expect(untrusted.status().connected).toBe(false)
  })
})
