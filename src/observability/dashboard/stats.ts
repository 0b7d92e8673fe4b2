import type { PeerCertificate } from '../../server/peer.js'
import type { Consumer } from '../../pipeline/context.js'

/** Width of one time-series slot, and how many slots are kept: 72 × 5 s = the last six minutes. */
export const SLOT_MS = 5_000
export const SLOTS = 72
/**
 * Latency histogram upper bounds (ms), doubling from 0.25 ms; one more bucket for anything slower. Quantiles read
 * from it are within a factor of two, plenty to tell a 2 ms route from a 200 ms one, and histograms add up across
 * workers where raw samples would not.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = Object.freeze(Array.from({ length: 16 }, (_, i) => 0.25 * 2 ** i))
const NB = LATENCY_BOUNDS_MS.length + 1
/** Status classes 1xx … 5xx; anything else counts as 5xx (a status outside 100–599 is a fault). */
const CLASSES = 5
/** Slots summed for "the last minute" (req/s, p50/p99). */
export const RECENT_SLOTS = 60_000 / SLOT_MS
/**
 * Bounds on what is remembered, whatever the traffic: routes come from the config (past MAX_ROUTES, one more series
 * counts the rest together), the rest from clients.
 */
export const MAX_ROUTES = 512
export const MAX_CERTS = 256
export const MAX_REASONS = 128
const OTHER_ROUTE = '(other routes)'

interface RouteSeries {
  /** Absolute slot number (time / SLOT_MS) each ring position holds. */
  readonly slotOf: Float64Array
  /** Per ring position: requests per status class. */
  readonly classes: Uint32Array
  /** Per ring position: latency histogram. */
  readonly latency: Uint32Array
  /** Since start, per status class. */
  readonly totals: Float64Array
}

interface ReasonSeries {
  readonly slotOf: Float64Array
  readonly counts: Uint32Array
  total: number
}

interface CertSeen {
  readonly x5t: string
  readonly subject: string
  readonly issuer: string
  readonly notAfter: number
  consumer: string | undefined
  clientId: string | undefined
  lastSeen: number
  requests: number
}

/** One process's counters as plain data: what a worker sends the primary, and what the summary is built from. */
export interface StatsSnapshot {
  /** The absolute slot number of the last element of every series (the slot `now` falls in). */
  readonly endSlot: number
  readonly routes: ReadonlyArray<{
    readonly route: string
    /** Requests per slot, oldest first, SLOTS long. */
    readonly requests: readonly number[]
    /** Since start, 1xx … 5xx. */
    readonly totals: readonly number[]
    /** The last minute, 1xx … 5xx. */
    readonly recent: readonly number[]
    /** The last minute's latency histogram (LATENCY_BOUNDS_MS, then overflow). */
    readonly latency: readonly number[]
  }>
  /** By code, and under a code by its sub-reason (`cause`: expired, signature…, see ErrCause) where it has one. */
  readonly reasons: ReadonlyArray<{ readonly code: string, readonly cause?: string, readonly total: number, readonly series: readonly number[] }>
  readonly certs: ReadonlyArray<{
    readonly x5t: string, readonly subject: string, readonly issuer: string, readonly notAfter: number
    readonly consumer?: string, readonly clientId?: string, readonly lastSeen: number, readonly requests: number
  }>
}

/**
 * The dashboard's memory of recent traffic, per process: per-route request counts, status classes and latency
 * histograms in 5-second slots, refusals by error code and sub-reason, and the client certificates seen. Fed once per request
 * from where the access log is written; a request costs a few array increments and a map lookup, and allocates
 * only the first time a route, code or certificate is seen. Everything is bounded (MAX_*), ring buffers overwrite
 * the oldest slot, and the least recently seen certificate makes room for a new one.
 */
export class DashboardStats {
  private readonly routes = new Map<string, RouteSeries>()
  /** code → sub-reason ('' for none) → series: two lookups, so counting a refusal builds no key string. */
  private readonly reasons = new Map<string, Map<string, ReasonSeries>>()
  private reasonCount = 0
  private readonly certs = new Map<string, CertSeen>()

  constructor (private readonly now: () => number = Date.now) {}

  /**
   * One request, from what is at hand where the access log is written: positional arguments, so the hot path
   * allocates nothing. `code` is the stable error code (src/errors/codes.ts) it was answered with, if any, and
   * `cause` its sub-reason (GatewayError.errCause).
   */
  record (route: string, status: number, ms: number, code: string | undefined, cert: PeerCertificate | null | undefined, clientId: string | undefined, consumer: Consumer | undefined, cause?: string): void {
    const t = this.now()
    const slot = Math.floor(t / SLOT_MS)
    const pos = slot % SLOTS
    const r = this.routeSeries(route)
    if (r.slotOf[pos] !== slot) {
      r.slotOf[pos] = slot
      r.classes.fill(0, pos * CLASSES, pos * CLASSES + CLASSES)
      r.latency.fill(0, pos * NB, pos * NB + NB)
    }
    const c = status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 4
    r.classes[pos * CLASSES + c]++
    r.totals[c]++
    const b = LATENCY_BOUNDS_MS
    let i = 0
    while (i < b.length && ms > b[i]) i++
    r.latency[pos * NB + i]++
    if (code !== undefined) this.refused(code, cause ?? '', slot, pos)
    if (cert !== null && cert !== undefined) this.certSeen(cert, t, clientId, consumer)
  }

  /** A refusal that never became a request (a TLS handshake without the required certificate, say). */
  refusal (code: string): void {
    const slot = Math.floor(this.now() / SLOT_MS)
    this.refused(code, '', slot, slot % SLOTS)
  }

  snapshot (): StatsSnapshot {
    const endSlot = Math.floor(this.now() / SLOT_MS)
    const routes = [...this.routes].map(([route, r]) => {
      const requests = new Array<number>(SLOTS).fill(0)
      const recent = new Array<number>(CLASSES).fill(0)
      const latency = new Array<number>(NB).fill(0)
      for (let k = 0; k < SLOTS; k++) {
        const slot = endSlot - SLOTS + 1 + k
        const pos = slot % SLOTS
        if (r.slotOf[pos] !== slot) continue
        let n = 0
        for (let c = 0; c < CLASSES; c++) {
          n += r.classes[pos * CLASSES + c]
          if (k >= SLOTS - RECENT_SLOTS) recent[c] += r.classes[pos * CLASSES + c]
        }
        requests[k] = n
        if (k >= SLOTS - RECENT_SLOTS) for (let j = 0; j < NB; j++) latency[j] += r.latency[pos * NB + j]
      }
      return { route, requests, totals: [...r.totals], recent, latency }
    })
    const reasons = [...this.reasons].flatMap(([code, byCause]) => [...byCause].map(([cause, r]) => {
      const series = new Array<number>(SLOTS).fill(0)
      for (let k = 0; k < SLOTS; k++) {
        const slot = endSlot - SLOTS + 1 + k
        if (r.slotOf[slot % SLOTS] === slot) series[k] = r.counts[slot % SLOTS]
      }
      return cause === '' ? { code, total: r.total, series } : { code, cause, total: r.total, series }
    }))
    const certs = [...this.certs.values()].map(c => ({
      x5t: c.x5t, subject: c.subject, issuer: c.issuer, notAfter: c.notAfter, consumer: c.consumer, clientId: c.clientId, lastSeen: c.lastSeen, requests: c.requests,
    }))
    return { endSlot, routes, reasons, certs }
  }

  private routeSeries (route: string): RouteSeries {
    let r = this.routes.get(route)
    if (r !== undefined) return r
    if (this.routes.size >= MAX_ROUTES) {
      // names come from the config (and reloads can rename routes): past the bound, lump the rest together
      r = this.routes.get(OTHER_ROUTE)
      if (r !== undefined) return r
      route = OTHER_ROUTE
    }
    r = {
      slotOf: new Float64Array(SLOTS).fill(-1),
      classes: new Uint32Array(SLOTS * CLASSES),
      latency: new Uint32Array(SLOTS * NB),
      totals: new Float64Array(CLASSES),
    }
    this.routes.set(route, r)
    return r
  }

  private refused (code: string, cause: string, slot: number, pos: number): void {
    let byCause = this.reasons.get(code)
    let r = byCause?.get(cause)
    if (r === undefined) {
      // codes and causes come from the catalogues, so this bound is never reached in practice; it keeps the promise anyway
      if (this.reasonCount >= MAX_REASONS) return
      r = { slotOf: new Float64Array(SLOTS).fill(-1), counts: new Uint32Array(SLOTS), total: 0 }
      if (byCause === undefined) { byCause = new Map(); this.reasons.set(code, byCause) }
      byCause.set(cause, r)
      this.reasonCount++
    }
    if (r.slotOf[pos] !== slot) { r.slotOf[pos] = slot; r.counts[pos] = 0 }
    r.counts[pos]++
    r.total++
  }

  private certSeen (cert: PeerCertificate, t: number, clientId: string | undefined, consumer: Consumer | undefined): void {
    let c = this.certs.get(cert.x5tS256)
    if (c === undefined) {
      if (this.certs.size >= MAX_CERTS) this.forgetLeastRecent()
      c = { x5t: cert.x5tS256, subject: cert.subject, issuer: cert.issuer, notAfter: cert.validTo.getTime(), consumer: undefined, clientId: undefined, lastSeen: t, requests: 0 }
      this.certs.set(cert.x5tS256, c)
    }
    c.lastSeen = t
    c.requests++
    if (clientId !== undefined) c.clientId = clientId
    if (consumer !== undefined) c.consumer = consumer.username ?? consumer.customId ?? consumer.id
  }

  /** O(MAX_CERTS), and only when a new certificate arrives with the table full. */
  private forgetLeastRecent (): void {
    let oldest: CertSeen | undefined
    for (const c of this.certs.values()) if (oldest === undefined || c.lastSeen < oldest.lastSeen) oldest = c
    if (oldest !== undefined) this.certs.delete(oldest.x5t)
  }
}

/**
 * Add up the snapshots of several processes (gateway.workers): series are aligned on their end slot (workers
 * answer within milliseconds of each other, possibly either side of a slot boundary), totals and histograms
 * summed, certificates merged by thumbprint.
 */
export function mergeSnapshots (snaps: readonly StatsSnapshot[]): StatsSnapshot {
  if (snaps.length === 1) return snaps[0]
  const endSlot = snaps.reduce((m, s) => Math.max(m, s.endSlot), 0)
  const shifted = (series: readonly number[], from: number): number[] => {
    const d = endSlot - from
    const out = new Array<number>(SLOTS).fill(0)
    for (let k = d; k < SLOTS; k++) out[k - d] = series[k]
    return out
  }
  const add = (a: number[], b: readonly number[]): void => { for (let i = 0; i < a.length; i++) a[i] += b[i] ?? 0 }
  const routes = new Map<string, { route: string, requests: number[], totals: number[], recent: number[], latency: number[] }>()
  const reasons = new Map<string, { code: string, cause?: string, total: number, series: number[] }>()
  const certs = new Map<string, StatsSnapshot['certs'][number] & { requests: number, lastSeen: number }>()
  for (const s of snaps) {
    for (const r of s.routes) {
      const m = routes.get(r.route)
      if (m === undefined) { routes.set(r.route, { route: r.route, requests: shifted(r.requests, s.endSlot), totals: [...r.totals], recent: [...r.recent], latency: [...r.latency] }); continue }
      add(m.requests, shifted(r.requests, s.endSlot)); add(m.totals, r.totals); add(m.recent, r.recent); add(m.latency, r.latency)
    }
    for (const r of s.reasons) {
      const key = r.cause === undefined ? r.code : `${r.code} ${r.cause}`
      const m = reasons.get(key)
      if (m === undefined) { reasons.set(key, { ...r, series: shifted(r.series, s.endSlot) }); continue }
      m.total += r.total
      add(m.series, shifted(r.series, s.endSlot))
    }
    for (const c of s.certs) {
      const m = certs.get(c.x5t)
      if (m === undefined) { certs.set(c.x5t, { ...c }); continue }
      m.requests += c.requests
      if (c.lastSeen > m.lastSeen) certs.set(c.x5t, { ...c, requests: m.requests, consumer: c.consumer ?? m.consumer, clientId: c.clientId ?? m.clientId })
    }
  }
  return { endSlot, routes: [...routes.values()], reasons: [...reasons.values()], certs: [...certs.values()] }
}

/** The q-quantile (0…1) of a latency histogram, interpolated inside its bucket; undefined when empty. */
export function quantileMs (hist: readonly number[], q: number): number | undefined {
  const total = hist.reduce((a, b) => a + b, 0)
  if (total === 0) return undefined
  const want = q * total
  let acc = 0
  for (let i = 0; i < hist.length; i++) {
    if (hist[i] === 0) continue
    if (acc + hist[i] >= want) {
      const lo = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]
      // the overflow bucket has no upper bound: report its lower one
      if (i >= LATENCY_BOUNDS_MS.length) return lo
      const hi = LATENCY_BOUNDS_MS[i]
      return lo + (hi - lo) * Math.min(1, Math.max(0, (want - acc) / hist[i]))
    }
    acc += hist[i]
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]
}
