import { timingSafeEqual } from 'node:crypto'

/** Constant-time comparison of two thumbprints (or any two ASCII secrets). */
export function safeEqual (a: string, b: string): boolean {
  const ba = Buffer.from(a)
  const bb = Buffer.from(b)
  if (ba.length !== bb.length) {
    timingSafeEqual(ba, ba) // keep the timing independent of where the lengths differ
    return false
  }
  return timingSafeEqual(ba, bb)
}

/** RFC 8705 §3.1: the `cnf."x5t#S256"` of a claim set; undefined if absent; null if present but malformed. */
export function cnfThumbprint (claims: Readonly<Record<string, unknown>>): string | undefined | null {
  const cnf = claims.cnf
  if (cnf === undefined) return undefined
  if (cnf === null || typeof cnf !== 'object' || Array.isArray(cnf)) return null
  const t = (cnf as Record<string, unknown>)['x5t#S256']
  if (t === undefined) return undefined
  if (typeof t !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(t)) return null
  return t
}
