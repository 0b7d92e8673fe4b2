import type { Period } from './schema.js'

/**
 * Fixed windows, as Kong's: each period is aligned to the UTC calendar (the second, the minute, the hour, midnight
 * UTC, the 1st of the month, 1 January), so every node and worker with a synchronised clock counts into the same
 * window. A request at exactly a window's start belongs to the new window ([start, end)). Unlike Kong, whose month
 * and year last 30 and 365 days in its Reset header and counter TTL, a month or year here ends when the calendar's
 * does (28–31 days, 365–366), so Reset never points before the window really ends.
 */
export interface Window {
  /** Epoch ms of the window's first instant. */
  readonly start: number
  /** Epoch ms of the next window's first instant. */
  readonly end: number
}

const FIXED: Partial<Record<Period, number>> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 }

export function windowOf (period: Period, now: number): Window {
  const len = FIXED[period]
  if (len !== undefined) {
    const start = now - (((now % len) + len) % len)
    return { start, end: start + len }
  }
  const d = new Date(now)
  const y = d.getUTCFullYear()
  if (period === 'month') {
    const m = d.getUTCMonth()
    return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) }
  }
  return { start: Date.UTC(y, 0, 1), end: Date.UTC(y + 1, 0, 1) }
}

/**
 * Whole seconds until the window resets, at least 1 (Kong's `max(1, window - floor(elapsed))`): the remaining time
 * rounded up, so a client that waits Reset (or Retry-After) seconds is always in the next window.
 */
export function secondsToReset (w: Window, now: number): number {
  return Math.max(1, Math.ceil((w.end - now) / 1000))
}
