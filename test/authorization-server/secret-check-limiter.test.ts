import { describe, expect, it } from 'vitest'
import { OAuthError } from '../../src/authorization-server/oauth-error.js'
import { SecretCheckLimiter } from '../../src/authorization-server/secret-check-limiter.js'
import { MemoryStore } from '../../src/store/memory.js'
import { ManualClock } from '../helpers/clock.js'

interface Gate { promise: Promise<boolean>, open (ok: boolean): void }
function gate (): Gate {
  let open!: (ok: boolean) => void
  const promise = new Promise<boolean>(resolve => { open = resolve })
  return { promise, open }
}
const refusal = (p: Promise<unknown>): Promise<OAuthError> => p.then(() => { throw new Error('expected a refusal') }, (e: unknown) => e as OAuthError)

describe('issue 12 (4): SecretCheckLimiter', () => {
  it('runs at most `concurrency` checks, queues up to `queue`, answers 503 + Retry-After beyond', async () => {
    const l = new SecretCheckLimiter({ concurrency: 1, queue: 2, perClient: 10, retryAfterSeconds: 3, failuresPerMinute: 100 })
    const gates = [gate(), gate(), gate()]
    let started = 0
    const runs = gates.map((g, i) => l.run(`c${i}`, () => { started += 1; return g.promise }))
    await Promise.resolve()
    expect(started).toBe(1)
    expect(l.load).toEqual({ running: 1, queued: 2 })
    const e = await refusal(l.run('c9', () => Promise.resolve(true)))
    expect(e).toMatchObject({ error: 'temporarily_unavailable', status: 503 })
    expect(e.opts.headers).toEqual({ 'retry-after': '3' })
    gates[0]!.open(true)
    await runs[0]
    await new Promise(r => setImmediate(r))
    expect(started).toBe(2)
    gates[1]!.open(true); gates[2]!.open(true)
    await Promise.all(runs)
    expect(l.load).toEqual({ running: 0, queued: 0 })
  })

  it('one client may hold at most `perClient` checks', async () => {
    const l = new SecretCheckLimiter({ concurrency: 1, queue: 100, perClient: 2, retryAfterSeconds: 1, failuresPerMinute: 100 })
    const g = gate()
    const a = l.run('flooded', () => g.promise)
    const b = l.run('flooded', () => g.promise)
    expect(await refusal(l.run('flooded', () => Promise.resolve(true)))).toMatchObject({ status: 503 })
    const other = l.run('other', () => Promise.resolve(true)) // still queued, not refused
    g.open(false)
    await Promise.all([a, b, other])
  })

  it('after `failuresPerMinute` failures a client gets 429 without a check, until the budget refills (driven clock)', async () => {
    let now = 0
    const l = new SecretCheckLimiter({ concurrency: 4, queue: 4, perClient: 4, retryAfterSeconds: 1, failuresPerMinute: 3 }, () => now)
    let checks = 0
    const wrong = (): Promise<boolean> => { checks += 1; return Promise.resolve(false) }
    for (let i = 0; i < 3; i++) expect(await l.run('victim', wrong)).toBe(false)
    const e = await refusal(l.run('victim', wrong))
    expect(e).toMatchObject({ error: 'temporarily_unavailable', status: 429 })
    expect(e.opts.headers).toEqual({ 'retry-after': '20' }) // one token refills in 60 s / 3
    expect(checks).toBe(3)
    expect(await l.run('neighbour', () => Promise.resolve(true))).toBe(true) // other clients are not affected
    now += 20_000
    expect(await l.run('victim', () => Promise.resolve(true))).toBe(true)
    expect(await l.run('victim', wrong)).toBe(false)
    expect(await refusal(l.run('victim', wrong))).toMatchObject({ status: 429 })
    now += 60_000
    expect(await l.run('victim', wrong)).toBe(false)
  })

  it('the failure budget is shared through the store: two workers (or nodes) grant one budget, not two', async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 4, 12, 0, 30)) // half-way through a minute
    const store = new MemoryStore({ now: clock.now })
    const limits = { concurrency: 4, queue: 4, perClient: 4, retryAfterSeconds: 1, failuresPerMinute: 4 }
    const a = new SecretCheckLimiter(limits, clock.now, store)
    const b = new SecretCheckLimiter(limits, clock.now, store)
    let checks = 0
    const wrong = (): Promise<boolean> => { checks += 1; return Promise.resolve(false) }
    for (let i = 0; i < 2; i++) expect(await a.run('victim', wrong)).toBe(false)
    for (let i = 0; i < 2; i++) expect(await b.run('victim', wrong)).toBe(false)
    // each process spent 2 of its local 4: only the shared count knows the client has spent 4
    const e = await refusal(a.run('victim', wrong))
    expect(e).toMatchObject({ error: 'temporarily_unavailable', status: 429, opts: { detail: expect.stringMatching(/all workers and nodes/) } })
    expect(e.opts.headers).toEqual({ 'retry-after': '30' }) // this minute alone holds 4: the next minute
    expect(await refusal(b.run('victim', wrong))).toMatchObject({ status: 429 })
    expect(checks).toBe(4)
    expect(await b.run('neighbour', () => Promise.resolve(true))).toBe(true)
    // the minute turns: the previous minute still weighs (4 × 0.75 = 3 < 4: one more failure is allowed, not four)
    clock.advance(45_000)
    expect(await a.run('victim', wrong)).toBe(false)
    expect(await refusal(b.run('victim', wrong))).toMatchObject({ status: 429 })
    // the store keeps no client_id in the clear
    expect(JSON.stringify([...(store as unknown as { entries: Map<string, unknown> }).entries.keys()])).not.toContain('victim')
  })

  it('a store that cannot answer leaves the local budget in charge; the secret is still checked', async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 4, 12, 0, 0))
    const broken = Object.assign(Object.create(new MemoryStore({ now: clock.now })) as MemoryStore, {
      get: () => Promise.reject(new Error('connection refused')), increment: () => Promise.reject(new Error('connection refused')),
    })
    const l = new SecretCheckLimiter({ concurrency: 4, queue: 4, perClient: 4, retryAfterSeconds: 1, failuresPerMinute: 2 }, clock.now, broken)
    expect(await l.run('victim', () => Promise.resolve(true))).toBe(true)
    expect(await l.run('victim', () => Promise.resolve(false))).toBe(false)
    expect(await l.run('victim', () => Promise.resolve(false))).toBe(false)
    expect(await refusal(l.run('victim', () => Promise.resolve(false)))).toMatchObject({ status: 429, opts: { detail: expect.stringMatching(/this process/) } })
  })
})
