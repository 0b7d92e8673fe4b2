/** Drain waits on the event of the in-flight count reaching zero, bounded by the drain timeout. */
import { describe, expect, it } from 'vitest'
import { InFlight } from '../../src/runtime/in-flight.js'

describe('InFlight (runtime drain)', () => {
  it('idle() resolves true as soon as the last request leaves, without waiting out the timeout', async () => {
    const f = new InFlight()
    f.enter(); f.enter()
    const t0 = performance.now()
    const idle = f.idle(30_000)
    f.leave()
    setImmediate(() => f.leave())
    expect(await idle).toBe(true)
    expect(performance.now() - t0).toBeLessThan(5_000)
    expect(f.count).toBe(0)
  })

  it('idle() resolves false at the timeout while something is still in flight; nothing in flight is idle at once', async () => {
    const f = new InFlight()
    expect(await f.idle(0)).toBe(true)
    f.enter()
    expect(await f.idle(0)).toBe(false)
    expect(await f.idle(20)).toBe(false)
    f.leave()
    expect(await f.idle(20)).toBe(true)
  })

  it('closeTunnels() closes the tunnels still tracked, not those that closed by themselves', () => {
    const f = new InFlight()
    const closed: string[] = []
    f.track(() => closed.push('a'))
    const forgetB = f.track(() => closed.push('b'))
    forgetB()
    expect(f.closeTunnels()).toBe(1)
    expect(closed).toEqual(['a'])
    expect(f.closeTunnels()).toBe(0)
  })
})
