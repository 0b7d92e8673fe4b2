import { Counter, type Registry } from 'prom-client'
import type { Logger } from 'pino'
import type { Clock } from '../store/types.js'

/**
 * Connection failures that mean "nothing will accept a connection at this origin right now": the request never
 * reached the upstream, and trying again at once gets the same answer.
 */
export const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

/** An undici / net error's code (undici wraps some in `cause`). */
export function errCode (e: unknown): string {
  const err = e as { code?: string, cause?: { code?: string } } | null
  return err?.code ?? err?.cause?.code ?? 'UNKNOWN'
}

/** At most one "still failing fast" line per origin in this many ms, with the count since the last one. */
const LOG_EVERY_MS = 10_000

/** certbound_upstream_fail_fast_total, created once per gateway (GatewayMetrics.upstreamHolds). */
export class ConnectHoldMetrics {
  private readonly failFast: Counter<'service'>
  private readonly holds: Counter<'origin'>
  constructor (registry: Registry) {
    const registers = [registry]
    this.failFast = new Counter({ name: 'certbound_upstream_fail_fast_total', help: 'Requests answered 502 without a connection attempt because their upstream refused (or could not be reached by) the last one, within services[].connect_failure_hold', labelNames: ['service'], registers })
    this.holds = new Counter({ name: 'certbound_upstream_connect_holds_total', help: 'Times an upstream origin was put on hold after a failed connection (each failed probe counts again)', labelNames: ['origin'], registers })
  }

  failedFast (service: string): void { this.failFast.inc({ service }) }
  held (origin: string): void { this.holds.inc({ origin }) }
}

export interface ConnectHoldDeps {
  readonly now: Clock
  readonly logger?: Logger
  readonly metrics?: ConnectHoldMetrics
}

/**
 * Fail fast while an upstream origin refuses connections (nginx's `max_fails=1 fail_timeout=…` for an upstream
 * server, Envoy's outlier ejection, HAProxy's `observe layer4`): after a connection attempt failed before anything
 * was sent (refused, unreachable, DNS, connect timeout), requests to the origin are answered 502 at once for
 * `holdMs`, with no connection attempt and no retry. Once the window is over, one request tries (the probe) while
 * the others keep failing fast; the first connection that succeeds ends the hold, a failed probe starts a new window.
 *
 * Why (issue 20): with nothing listening upstream, every 502 cost a net.Socket, its streams state and an
 * ECONNREFUSED Error with a stack — times `retries + 1` — and at thousands of 502/s enough of them survived a
 * scavenge that the old generation grew by ~10 MB/s between major GCs (RSS 115 → 205 MB). While held, a 502 costs
 * what any error answer costs.
 *
 * The state is fed by the pool's `connect` / `connectionError` events, so it sees every connection of the pool
 * whichever request made it.
 */
export class ConnectHold {
  /** Held while now < until (0: not held). After the window, the probe sets it one window ahead. */
  private until = 0
  private since = 0
  private lastCode = ''
  private failedFastCount = 0
  private unreported = 0
  private lastLog = -Infinity
  /** This hold's start was logged: its end is logged too (a flapping origin logs at most a pair per 10 s). */
  private reported = false

  constructor (readonly origin: string, readonly holdMs: number, private readonly deps: ConnectHoldDeps) {}

  /** Whether a connection failure held this origin less than `holdMs` ago (no side effect). */
  held (now = this.deps.now()): boolean { return this.until !== 0 && now < this.until }

  /**
   * Called before a request dispatches. true: answer 502 now, without trying. false: try (the origin is not held,
   * or this request is the probe of a window that passed: the next window starts now, so the others fail fast).
   */
  failFast (service: string): boolean {
    if (this.until === 0) return false
    const now = this.deps.now()
    if (now >= this.until) { this.until = now + this.holdMs; return false }
    this.failedFastCount++
    this.unreported++
    this.deps.metrics?.failedFast(service)
    if (now - this.lastLog >= LOG_EVERY_MS) this.report(now, 'upstream still refusing connections: failing fast')
    return true
  }

  /** A connection attempt of the origin's pool failed (pool 'connectionError'). */
  connectFailed (code: string): void {
    if (this.holdMs <= 0 || !CONNECT_FAILURES.has(code)) return
    const now = this.deps.now()
    const starting = this.until === 0
    this.until = now + this.holdMs
    this.lastCode = code
    this.deps.metrics?.held(this.origin)
    if (!starting) return
    this.since = now
    this.failedFastCount = 0
    this.unreported = 0
    this.reported = now - this.lastLog >= LOG_EVERY_MS
    if (this.reported) this.report(now, 'upstream refused a connection: failing fast')
  }

  /** A connection of the origin's pool was established (pool 'connect'): the hold ends. */
  connected (): void {
    if (this.until === 0) return
    const now = this.deps.now()
    this.until = 0
    if (this.reported) this.deps.logger?.info({ origin: this.origin, held_ms: now - this.since, failed_fast: this.failedFastCount }, 'upstream accepts connections again: no longer failing fast')
  }

  private report (now: number, msg: string): void {
    this.lastLog = now
    this.reported = true
    this.deps.logger?.warn({ origin: this.origin, code: this.lastCode, hold_ms: this.holdMs, held_ms: now - this.since, failed_fast: this.unreported }, msg)
    this.unreported = 0
  }
}
