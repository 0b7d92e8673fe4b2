/**
 * deps.openStore (StorePool): one Redis connection per distinct setting, shared by the plugin instances that ask for
 * it and released with the last of them; `certbound validate` connects nowhere. gateway.store.secret's sealing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StorePool } from '../../src/store/pool.js'
import { createSecretBox } from '../../src/store/secret-box.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/process.js'

let redis: TestRedis
beforeAll(async () => { redis = await startRedis() }, 30_000)
afterAll(async () => { await redis?.stop() })

const clients = async (): Promise<number> => Number(/connected_clients:(\d+)/.exec(await redis.command('INFO', 'clients'))![1])

describe('deps.openStore: pooled Redis stores', () => {
  it('same settings share one connection pair; a handle\'s close releases only itself; the last closes it', async () => {
    const pool = new StorePool({ now: () => Date.now() })
    const base = await clients()
    const a = pool.open({ url: redis.url, key_prefix: 'rl:' })
    const b = pool.open({ url: redis.url, key_prefix: 'rl:' })
    const other = pool.open({ url: redis.url, key_prefix: 'other:' })
    expect(a.backend).toBe('redis')
    await waitFor('connected', () => a.status().connected && other.status().connected ? true : undefined, 5000)
    expect(await clients()).toBe(base + 4) // (command + subscriber) × 2 distinct settings
    expect(await a.increment([{ key: 'k', by: 1, ttlMs: 10_000 }])).toEqual([1])
    expect(await b.increment([{ key: 'k', by: 1, ttlMs: 10_000 }])).toEqual([2])
    expect(await other.increment([{ key: 'k', by: 1, ttlMs: 10_000 }])).toEqual([1])
    await a.close()
    await a.close() // idempotent: does not release b's reference
    expect(await b.get('missing')).toBeUndefined()
    await b.close()
    await other.close()
    await waitFor('connections closed', async () => await clients() === base ? true : undefined, 5000)
    await pool.close()
  })

  it('dry run (certbound validate): memory stores, no connection', async () => {
    const pool = new StorePool({ now: () => Date.now(), dryRun: true })
    const s = pool.open({ url: 'redis://127.0.0.1:1' })
    expect(s.backend).toBe('memory')
    await s.close()
  })

  it('rejects settings that are not a valid redis connection', () => {
    const pool = new StorePool({ now: () => Date.now(), dryRun: true })
    expect(() => pool.open({ url: 'http://x' })).toThrow(/redis:\/\/ or rediss:\/\//)
  })
})

describe('gateway.store.secret: sealed values', () => {
  it('AES-256-GCM bound to its key: opens only with the same secret and the same key', () => {
    const box = createSecretBox('s'.repeat(32))
    const sealed = box.seal('{"d":"private"}', 'as:signing-keys:x')
    expect(sealed).not.toContain('private')
    expect(box.open(sealed, 'as:signing-keys:x')).toBe('{"d":"private"}')
    expect(box.open(sealed, 'as:signing-keys:y')).toBeUndefined()
    expect(createSecretBox('t'.repeat(32)).open(sealed, 'as:signing-keys:x')).toBeUndefined()
    expect(box.open(sealed.slice(0, -2) + 'AA', 'as:signing-keys:x')).toBeUndefined()
    expect(box.open('garbage', 'k')).toBeUndefined()
    expect(box.seal('same', 'k')).not.toBe(box.seal('same', 'k'))
  })
})
