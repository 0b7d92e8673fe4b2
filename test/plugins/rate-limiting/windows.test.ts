/** Fixed windows aligned to the UTC calendar, as Kong's (kong/tools/timestamp get_timestamps), and Reset. */
import { describe, it, expect } from 'vitest'
import { windowOf, secondsToReset } from '../../../plugins/rate-limiting/windows.js'

const t = Date.UTC(2026, 1, 14, 13, 37, 42, 250) // Sat 14 Feb 2026 13:37:42.250 UTC

describe('windowOf: [start, end) aligned to the UTC calendar', () => {
  it('second, minute, hour, day', () => {
    expect(windowOf('second', t)).toEqual({ start: Date.UTC(2026, 1, 14, 13, 37, 42), end: Date.UTC(2026, 1, 14, 13, 37, 43) })
    expect(windowOf('minute', t)).toEqual({ start: Date.UTC(2026, 1, 14, 13, 37), end: Date.UTC(2026, 1, 14, 13, 38) })
    expect(windowOf('hour', t)).toEqual({ start: Date.UTC(2026, 1, 14, 13), end: Date.UTC(2026, 1, 14, 14) })
    expect(windowOf('day', t)).toEqual({ start: Date.UTC(2026, 1, 14), end: Date.UTC(2026, 1, 15) })
  })

  it('month and year end with the calendar (February 2026: 28 days; 2028: 366)', () => {
    expect(windowOf('month', t)).toEqual({ start: Date.UTC(2026, 1, 1), end: Date.UTC(2026, 2, 1) })
    expect(windowOf('month', Date.UTC(2026, 11, 31, 23, 59, 59, 999))).toEqual({ start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) })
    expect(windowOf('year', t)).toEqual({ start: Date.UTC(2026, 0, 1), end: Date.UTC(2027, 0, 1) })
    const leap = windowOf('year', Date.UTC(2028, 5, 1))
    expect((leap.end - leap.start) / 86_400_000).toBe(366)
  })

  it('the window\'s first instant belongs to it; the instant before belongs to the previous one', () => {
    const start = Date.UTC(2026, 1, 14, 13, 38)
    expect(windowOf('minute', start).start).toBe(start)
    expect(windowOf('minute', start - 1).end).toBe(start)
    expect(windowOf('month', Date.UTC(2026, 2, 1)).start).toBe(Date.UTC(2026, 2, 1))
    expect(windowOf('month', Date.UTC(2026, 2, 1) - 1).start).toBe(Date.UTC(2026, 1, 1))
  })
})

describe('secondsToReset: Kong\'s max(1, window - floor(elapsed))', () => {
  it('rounds the time left up, never below 1', () => {
    const w = windowOf('minute', t)
    expect(secondsToReset(w, w.start)).toBe(60)
    expect(secondsToReset(w, w.start + 200)).toBe(60)
    expect(secondsToReset(w, w.start + 58_500)).toBe(2)
    expect(secondsToReset(w, w.start + 59_000)).toBe(1)
    expect(secondsToReset(w, w.end - 1)).toBe(1)
  })

  it('a month resets when the calendar month ends, not after Kong\'s 30 days', () => {
    const w = windowOf('month', Date.UTC(2026, 0, 31, 12))
    expect(secondsToReset(w, Date.UTC(2026, 0, 31, 12))).toBe(12 * 3600)
  })
})
