/**
 * The memory store across workers: the IPC protocol between the primary's StoreHost and each worker's IpcStore.
 * The transport here is the cluster channel's contract (ordered, asynchronous, structured-clone serialised); the
 * store code on both ends is the real one. Properties: every sequence of operations through any worker answers as
 * one MemoryStore would; a revocation is in every worker's replica when revoke() resolves; no malformed message
 * crashes either side.
 */
import { describe, expect, it } from 'vitest'
import { IpcStore, StoreHost, parseStoreRequest } from '../../src/store/ipc.js'
import { MemoryStore } from '../../src/store/memory.js'
import { ManualClock } from '../helpers/clock.js'

/** Seeded PRNG (mulberry32): failures reproduce. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A primary and `n` workers over ordered async channels (as process.send / 'message'). */
function cluster (n: number, clock: ManualClock, opts: { ackTimeoutMs?: number, deaf?: number } = {}) {
  const host = new StoreHost(new MemoryStore({ now: clock.now }), opts.ackTimeoutMs)
  const workers = Array.from({ length: n }, (_, i) => {
    let w: IpcStore | undefined = undefined
    const peer = { id: i + 1, send: (m: unknown) => { const c = structuredClone(m); setImmediate(() => { if (opts.deaf !== i) w!.handleMessage(c) }) } }
    w = new IpcStore((m) => { const c = structuredClone(m); setImmediate(() => host.handle(peer, c)) }, clock.now, 2000)
    return w
  })
  return { host, workers }
}

describe('store IPC: StoreHost ↔ IpcStore', () => {
  it('property: any sequence of operations through any worker answers as one MemoryStore (seeded, 5 × 300 ops)', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = rng(seed)
      const clock = new ManualClock()
      const { workers } = cluster(3, clock)
      await Promise.all(workers.map(w => w.sync()))
      const model = new MemoryStore({ now: clock.now })
      const key = (): string => 'k' + Math.floor(r() * 6)
      for (let i = 0; i < 300; i++) {
        const w = workers[Math.floor(r() * workers.length)]
        const op = Math.floor(r() * 7)
        const ttl = 1 + Math.floor(r() * 2000)
        const v = String(Math.floor(r() * 1000))
        const k = key()
        switch (op) {
          case 0: expect(await w.get(k), `seed ${seed} op ${i} get`).toBe(await model.get(k)); break
          case 1: { const t = r() < 0.3 ? undefined : ttl; await w.set(k, v, t); await model.set(k, v, t); break }
          case 2: expect(await w.setIfAbsent(k, v, ttl), `seed ${seed} op ${i} setIfAbsent`).toBe(await model.setIfAbsent(k, v, ttl)); break
          case 3: {
            const entries = [{ key: 'c' + k, by: 1 + Math.floor(r() * 3), ttlMs: ttl }, { key: 'c' + key(), by: 1, ttlMs: ttl }]
            expect(await w.increment(entries), `seed ${seed} op ${i} increment`).toEqual(await model.increment(entries))
            break
          }
          case 4: await w.delete(k); await model.delete(k); break
          case 5: { const id = 'r' + Math.floor(r() * 5); const until = clock.now() + ttl; await w.revoke(id, until); await model.revoke(id, until); break }
          case 6: clock.advance(Math.floor(r() * 500)); break
        }
        for (let j = 0; j < 5; j++) {
          const id = 'r' + j
          for (const x of workers) expect(x.isRevoked(id), `seed ${seed} op ${i} isRevoked ${id}`).toBe(model.isRevoked(id))
        }
      }
    }
  })

  it('a revocation is in every worker\'s replica when revoke() resolves (acknowledged before the answer)', async () => {
    const clock = new ManualClock()
    const { workers } = cluster(4, clock)
    await Promise.all(workers.map(w => w.sync()))
    for (let i = 0; i < 20; i++) {
      await workers[i % 4].revoke('id' + i, clock.now() + 60_000)
      // synchronously, no tick in between
      expect(workers.map(w => w.isRevoked('id' + i))).toEqual([true, true, true, true])
    }
  })

  it('a worker that never acknowledges delays a revoke by at most the ack timeout; the others still have it', async () => {
    const clock = new ManualClock()
    const { workers } = cluster(3, clock, { ackTimeoutMs: 200, deaf: 2 })
    await Promise.all(workers.slice(0, 2).map(w => w.sync()))
    const t0 = Date.now()
    await workers[0].revoke('x', clock.now() + 1000)
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(workers[1].isRevoked('x')).toBe(true)
  })

  it('a worker whose replica is not synced answers undefined (the caller fails closed); a primary that never answers: CB_ERR_STORE_UNAVAILABLE', async () => {
    const clock = new ManualClock()
    const lost = new IpcStore(() => undefined, clock.now, 100)
    expect(lost.isRevoked('a')).toBeUndefined()
    expect(lost.status().connected).toBe(false)
    await expect(lost.get('a')).rejects.toMatchObject({ code: 'CB_ERR_STORE_UNAVAILABLE' })
    await expect(lost.revoke('a', 1)).rejects.toMatchObject({ code: 'CB_ERR_STORE_UNAVAILABLE' })
  })

  it('fuzz: 5000 malformed messages crash neither side; those with an id get an error reply', async () => {
    const r = rng(42)
    const clock = new ManualClock()
    const host = new StoreHost(new MemoryStore({ now: clock.now }), 50)
    const replies: unknown[] = []
    const peer = { id: 1, send: (m: unknown) => { replies.push(m) } }
    const worker = new IpcStore(() => undefined, clock.now, 50)
    const atoms: unknown[] = [null, undefined, 0, -1, 1.5, NaN, Infinity, '', 'x', 'store', 'store-reply', 'store-revoked', 'store-ack', 'get', 'set', 'revoke', 'increment', 'persist', 'snapshot', 'publish', true, [], {}, 'a'.repeat(2000), ['x'], { key: 1 }, 2 ** 53]
    const pick = (): unknown => atoms[Math.floor(r() * atoms.length)]
    const gen = (depth: number): unknown => {
      if (depth > 2 || r() < 0.4) return pick()
      if (r() < 0.2) return Array.from({ length: Math.floor(r() * 4) }, () => gen(depth + 1))
      const o: Record<string, unknown> = {}
      for (const k of ['type', 'id', 'op', 'key', 'value', 'ttlMs', 'entries', 'rid', 'until', 'seq', 'channel', 'message', 'file', 'ok', 'error']) if (r() < 0.5) o[k] = gen(depth + 1)
      if (r() < 0.7) o.type = r() < 0.5 ? 'store' : pick()
      if (r() < 0.5) o.id = Math.floor(r() * 100)
      return o
    }
    let withId = 0
    for (let i = 0; i < 5000; i++) {
      const m = gen(0)
      expect(() => host.handle(peer, m)).not.toThrow()
      expect(() => worker.handleMessage(m)).not.toThrow()
      const p = parseStoreRequest(m)
      if ((m as { type?: unknown } | null)?.type === 'store' && !('req' in p) && p.id !== undefined) withId++
    }
    await new Promise(res => setTimeout(res, 100))
    const errors = replies.filter(x => (x as { ok?: boolean }).ok === false)
    expect(withId).toBeGreaterThan(100)
    expect(errors.length).toBeGreaterThanOrEqual(withId)
    // malformed pushes left the worker's replica untouched
    expect(worker.isRevoked('x')).toBeUndefined()
    // and the host still works
    const ok = new IpcStore((m) => { setImmediate(() => host.handle({ id: 9, send: (x) => { setImmediate(() => ok.handleMessage(x)) } }, structuredClone(m))) }, clock.now, 1000)
    await ok.sync()
    await ok.set('k', 'v')
    expect(await ok.get('k')).toBe('v')
  })
})
