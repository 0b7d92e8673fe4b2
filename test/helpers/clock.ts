import { MemoryStore } from '../../src/store/memory.js'
import type { Clock, StateStore } from '../../src/store/types.js'

/** A clock the test moves: `clock.now` is the deps clock, `advance` moves it forward. */
export class ManualClock {
  constructor (private t: number = Date.UTC(2026, 0, 1)) {}
  readonly now: Clock = () => this.t
  advance (ms: number): void { this.t += ms }
  set (t: number): void { this.t = t }
}

/**
 * `store`, `now` and `openStore` for hand-built PluginDeps/ExtensionDeps: a fresh memory store on the given clock;
 * openStore hands out memory stores too (as `certbound validate` does), for tests without a Redis.
 */
export function storeDeps (now: Clock = () => Date.now()): { store: StateStore, now: Clock, openStore: (r: unknown) => StateStore } {
  return { store: new MemoryStore({ now }), now, openStore: () => new MemoryStore({ now }) }
}

/**
 * Real time plus a skew the test moves forward: for a gateway that also checks tokens an external IdP (oidc-provider)
 * issues on real time, so the clock cannot be frozen, yet expiry is reached by moving it rather than by sleeping.
 */
export class SkewedClock {
  private skew = 0
  readonly now: Clock = () => Date.now() + this.skew
  /** Moves the clock forward to `t`; never back (a gateway's clock does not run backwards). */
  advanceTo (t: number): void { this.skew += Math.max(0, t - this.now()) }
}
