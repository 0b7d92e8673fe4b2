import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../../src/store/memory.js'
import { ManualClock } from '../helpers/clock.js'

describe('store: memory backend', () => {
  it('get/set/delete with a TTL measured on the deps clock', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now })
    await s.set('a', '1', 1000)
    await s.set('b', '2')
    expect(await s.get('a')).toBe('1')
    clock.advance(999)
    expect(await s.get('a')).toBe('1')
    clock.advance(1)
    expect(await s.get('a')).toBeUndefined()
    expect(await s.get('b')).toBe('2')
    await s.delete('b')
    expect(await s.get('b')).toBeUndefined()
  })

  it('setIfAbsent stores once within the TTL, again after it (replay detection)', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now })
    expect(await s.setIfAbsent('jti', 'x', 500)).toBe(true)
    expect(await s.setIfAbsent('jti', 'y', 500)).toBe(false)
    expect(await s.get('jti')).toBe('x')
    clock.advance(500)
    expect(await s.setIfAbsent('jti', 'z', 500)).toBe(true)
  })

  it('increment: fixed windows, created on first use, not extended by later increments', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now })
    expect(await s.increment([{ key: 'm', by: 1, ttlMs: 60_000 }, { key: 'h', by: 1, ttlMs: 3_600_000 }])).toEqual([1, 1])
    clock.advance(59_999)
    expect(await s.increment([{ key: 'm', by: 2, ttlMs: 60_000 }, { key: 'h', by: 1, ttlMs: 3_600_000 }])).toEqual([3, 2])
    clock.advance(1)
    expect(await s.increment([{ key: 'm', by: 1, ttlMs: 60_000 }, { key: 'h', by: 1, ttlMs: 3_600_000 }])).toEqual([1, 3])
  })

  it('revocations hold until their time and are never evicted by maxKeys', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now, maxKeys: 10 })
    await s.revoke('t1', clock.now() + 1000)
    for (let i = 0; i < 100; i++) await s.set(`k${i}`, 'v')
    expect(s.isRevoked('t1')).toBe(true)
    expect(s.isRevoked('t2')).toBe(false)
    await s.revoke('t1', clock.now() + 10) // an earlier end never shortens a revocation
    clock.advance(999)
    expect(s.isRevoked('t1')).toBe(true)
    clock.advance(1)
    expect(s.isRevoked('t1')).toBe(false)
  })

  it('bounded: never more than maxKeys live keys; expired ones go first, then those expiring soonest', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now, maxKeys: 100 })
    await s.set('keep', 'v')
    for (let i = 0; i < 50; i++) await s.set(`short${i}`, 'v', 10)
    clock.advance(10)
    for (let i = 0; i < 60; i++) await s.set(`long${i}`, 'v', 3_600_000)
    expect(await s.get('keep')).toBe('v') // the expired ones made room; nothing live was evicted
    expect(s.status().evictions).toBeUndefined()
    for (let i = 0; i < 1000; i++) await s.set(`more${i}`, 'v', 60_000 + i)
    let live = 0
    for (let i = 0; i < 1000; i++) if (await s.get(`more${i}`) !== undefined) live++
    expect(live).toBeLessThanOrEqual(100)
    expect(await s.get('more999')).toBe('v')
    // the soonest-expiring went, not the hour-long keys inserted before them, and never a key without a TTL
    for (let i = 0; i < 60; i++) expect(await s.get(`long${i}`)).toBe('v')
    expect(await s.get('keep')).toBe('v')
    expect(s.status().evictions).toBeGreaterThan(0)
    expect(s.status().detail).toMatch(/evicted for room \(max_keys 100\)/)
  })

  it('keys without a TTL are never evicted (the store grows past maxKeys rather than lose one)', async () => {
    const s = new MemoryStore({ now: () => 0, maxKeys: 10 })
    for (let i = 0; i < 30; i++) await s.set(`k${i}`, 'v')
    for (let i = 0; i < 30; i++) expect(await s.get(`k${i}`)).toBe('v')
  })

  it('eviction never lets setIfAbsent accept a key it may have held (a DPoP jti replayed after eviction)', async () => {
    const clock = new ManualClock()
    const s = new MemoryStore({ now: clock.now, maxKeys: 100 })
    // proof markers: each expires at its iat + 300 s, one proof per 10 ms
    const ttlOf = (iat: number): number => iat + 300_000 - clock.now()
    const iats: number[] = []
    for (let i = 0; i < 500; i++) {
      iats.push(clock.now())
      expect(await s.setIfAbsent(`jti${i}`, '1', ttlOf(iats[i]))).toBe(true)
      clock.advance(10)
    }
    expect(s.status().evictions).toBeGreaterThan(0)
    // every proof replayed is refused, whether its marker is still there or was evicted
    for (let i = 0; i < 500; i++) expect(await s.setIfAbsent(`jti${i}`, '1', ttlOf(iats[i]))).toBe(false)
    // a fresh proof passes; one as old as an evicted marker cannot be told from a replay and is refused
    expect(await s.setIfAbsent('fresh', '1', ttlOf(clock.now()))).toBe(true)
    expect(await s.setIfAbsent('old-but-new-jti', '1', ttlOf(iats[0]))).toBe(false)
    // long-lived keys made once (the DPoP nonce key) are untouched by the markers' turnover
    expect(await s.setIfAbsent('nonce-key', 'k', 365 * 86_400_000)).toBe(true)
    for (let i = 500; i < 2000; i++) { await s.setIfAbsent(`jti${i}`, '1', ttlOf(clock.now())); clock.advance(10) }
    expect(await s.get('nonce-key')).toBe('k')
  })

  it('publish reaches every subscriber of the channel; a throwing subscriber does not stop the others', async () => {
    const s = new MemoryStore({ now: () => 0 })
    const got: string[] = []
    s.subscribe('c', () => { throw new Error('boom') })
    const off = s.subscribe('c', m => got.push(m))
    s.subscribe('other', m => got.push('other:' + m))
    await s.publish('c', 'one')
    off()
    await s.publish('c', 'two')
    expect(got).toEqual(['one'])
  })
})
