/**
 * The dashboard's memory (src/observability/dashboard/stats.ts) with a driven clock: slots age out of the window,
 * bounds hold whatever the traffic, quantiles come from the histogram, and workers' snapshots add up aligned.
 */
import { describe, it, expect } from 'vitest'
import { DashboardStats, MAX_CERTS, MAX_REASONS, MAX_ROUTES, RECENT_SLOTS, SLOT_MS, SLOTS, mergeSnapshots, quantileMs } from '../../src/observability/dashboard/stats.js'
import { buildSummary } from '../../src/observability/dashboard/summary.js'
import { ReloadHistory } from '../../src/observability/dashboard/reload-history.js'
import type { PeerCertificate } from '../../src/server/peer.js'
import type { LoadedConfig } from '../../src/config/validate.js'

const T0 = 1_800_000_000_000 - (1_800_000_000_000 % SLOT_MS)
const DAY_MS = 86_400_000

function clock (): { now: () => number, t: number } {
  const c = { t: T0, now: () => c.t }
  return c
}

/** A stand-in with the fields the stats read; certificates in the e2e test are real. */
function cert (n: number, validTo: number): PeerCertificate {
  return { x5tS256: `thumb-${n}`, subject: `CN=c${n}`, issuer: 'CN=ca', validTo: new Date(validTo) } as unknown as PeerCertificate
}

describe('time series: 5 s slots over the last 6 minutes', () => {
  it('counts land in the slot of their time; older slots age out of the window', () => {
    const c = clock()
    const s = new DashboardStats(c.now)
    s.record('r', 200, 1, undefined, null, undefined, undefined)
    c.t += SLOT_MS
    s.record('r', 503, 1, 'CB_ERR_UPSTREAM_UNAVAILABLE', null, undefined, undefined)
    s.record('r', 404, 1, 'CB_ERR_NO_ROUTE', null, undefined, undefined)
    let snap = s.snapshot()
    const r = snap.routes[0]
    expect(r.requests.length).toBe(SLOTS)
    expect(r.requests.slice(-2)).toEqual([1, 2])
    expect(r.totals).toEqual([0, 1, 0, 1, 1])
    expect(r.recent).toEqual([0, 1, 0, 1, 1])
    expect(snap.reasons.map(x => [x.code, x.total])).toEqual([['CB_ERR_UPSTREAM_UNAVAILABLE', 1], ['CB_ERR_NO_ROUTE', 1]])
    // past the last minute: out of "recent", still in the series
    c.t += RECENT_SLOTS * SLOT_MS
    snap = s.snapshot()
    expect(snap.routes[0].recent).toEqual([0, 0, 0, 0, 0])
    expect(snap.routes[0].requests.reduce((a, b) => a + b, 0)).toBe(3)
    // past the whole window: the ring position is reused, stale counts are not read back
    c.t += SLOTS * SLOT_MS
    s.record('r', 200, 1, undefined, null, undefined, undefined)
    snap = s.snapshot()
    expect(snap.routes[0].requests.reduce((a, b) => a + b, 0)).toBe(1)
    expect(snap.routes[0].totals).toEqual([0, 2, 0, 1, 1])
    expect(snap.reasons.every(x => x.series.every(v => v === 0))).toBe(true)
  })

  it('p50 and p99 from the latency histogram, within its doubling buckets', () => {
    const c = clock()
    const s = new DashboardStats(c.now)
    for (let i = 0; i < 98; i++) s.record('r', 200, 3, undefined, null, undefined, undefined)
    for (let i = 0; i < 2; i++) s.record('r', 200, 300, undefined, null, undefined, undefined)
    const h = s.snapshot().routes[0].latency
    const p50 = quantileMs(h, 0.5)!
    const p99 = quantileMs(h, 0.99)!
    expect(p50).toBeGreaterThan(2); expect(p50).toBeLessThanOrEqual(4)
    expect(p99).toBeGreaterThan(256); expect(p99).toBeLessThanOrEqual(512)
    expect(quantileMs(new Array(h.length).fill(0), 0.5)).toBeUndefined()
  })
})

describe('bounded memory', () => {
  it(`remembers at most ${MAX_CERTS} certificates, forgetting the least recently seen`, () => {
    const c = clock()
    const s = new DashboardStats(c.now)
    for (let i = 0; i < MAX_CERTS + 50; i++) { c.t += 1; s.record('r', 200, 1, undefined, cert(i, T0 + DAY_MS), undefined, undefined) }
    // certificate 60 seen again: it is now recent, and survives the next eviction
    c.t += 1; s.record('r', 200, 1, undefined, cert(60, T0 + DAY_MS), 'client-60', { id: 'u', username: 'consumer-60', customId: undefined, groups: [] })
    c.t += 1; s.record('r', 200, 1, undefined, cert(9999, T0 + DAY_MS), undefined, undefined)
    const certs = s.snapshot().certs
    expect(certs.length).toBe(MAX_CERTS)
    const x5ts = new Set(certs.map(x => x.x5t))
    expect(x5ts.has('thumb-0')).toBe(false)
    expect(x5ts.has('thumb-9999')).toBe(true)
    const c60 = certs.find(x => x.x5t === 'thumb-60')!
    expect([c60.requests, c60.clientId, c60.consumer]).toEqual([2, 'client-60', 'consumer-60'])
  })

  it(`remembers at most ${MAX_REASONS} refusal reasons (code × sub-reason)`, () => {
    const s = new DashboardStats(clock().now)
    for (let i = 0; i < MAX_REASONS + 10; i++) s.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, `c${i}`)
    expect(s.snapshot().reasons.length).toBe(MAX_REASONS)
  })

  it(`routes past ${MAX_ROUTES} are counted together`, () => {
    const s = new DashboardStats(clock().now)
    for (let i = 0; i < MAX_ROUTES + 10; i++) s.record(`route-${i}`, 200, 1, undefined, null, undefined, undefined)
    const routes = s.snapshot().routes
    // the named routes, and one series for the rest
    expect(routes.length).toBe(MAX_ROUTES + 1)
    expect(routes.find(r => r.route === '(other routes)')!.totals[1]).toBe(10)
  })
})

describe('gateway.workers: snapshots add up', () => {
  it('series align on their end slot; totals, histograms and certificates merge', () => {
    const a = clock(); const b = clock()
    const sa = new DashboardStats(a.now); const sb = new DashboardStats(b.now)
    sa.record('r', 200, 1, 'CB_ERR_TOKEN_INVALID', cert(1, T0 + DAY_MS), undefined, undefined)
    b.t += SLOT_MS // worker b answered just after a slot boundary
    sb.record('r', 200, 1, 'CB_ERR_TOKEN_INVALID', cert(1, T0 + DAY_MS), 'c1', undefined)
    sb.record('q', 500, 1, undefined, null, undefined, undefined)
    const m = mergeSnapshots([sa.snapshot(), sb.snapshot()])
    const r = m.routes.find(x => x.route === 'r')!
    expect(r.requests.slice(-2)).toEqual([1, 1])
    expect(r.totals[1]).toBe(2)
    expect(m.reasons[0].total).toBe(2)
    expect(m.reasons[0].series.slice(-2)).toEqual([1, 1])
    expect(m.certs).toEqual([expect.objectContaining({ x5t: 'thumb-1', requests: 2, clientId: 'c1', lastSeen: T0 + SLOT_MS })])
    // the same code with different sub-reasons stays apart when workers' snapshots add up
    sa.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, 'expired')
    sb.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, 'expired')
    sb.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, 'signature')
    const m2 = mergeSnapshots([sa.snapshot(), sb.snapshot()])
    expect(m2.reasons.map(x => [x.code, x.cause, x.total])).toEqual([['CB_ERR_TOKEN_INVALID', undefined, 2], ['CB_ERR_TOKEN_INVALID', 'expired', 2], ['CB_ERR_TOKEN_INVALID', 'signature', 1]])
    expect(m.routes.find(x => x.route === 'q')!.totals[4]).toBe(1)
  })
})

describe('the summary', () => {
  it('certificates soonest expiry first; within 30 days flagged, past expiry marked expired', () => {
    const c = clock()
    const s = new DashboardStats(c.now)
    s.record('r', 200, 1, undefined, cert(1, T0 + 400 * DAY_MS), undefined, undefined)
    s.record('r', 200, 1, undefined, cert(2, T0 + 10 * DAY_MS), undefined, undefined)
    s.record('r', 200, 1, undefined, cert(3, T0 - DAY_MS), undefined, undefined)
    const config = { routes: [], settings: {} } as unknown as LoadedConfig
    const sum = buildSummary({ now: c.t, config, status: { version: 'x', config_hash: 'h', started_at: '', uptime_s: 0, ready: true }, stats: s.snapshot(), clients: undefined, reloads: new ReloadHistory().summary(), store: { backend: 'memory', connected: true } })
    expect(sum.certificates.map(x => [x.subject, x.expiring_soon, x.expired, x.days_left])).toEqual([
      ['CN=c3', true, true, -1], ['CN=c2', true, false, 10], ['CN=c1', false, false, 400],
    ])
    // requests of a route no longer in the config still show, without a shape
    expect(sum.routes.map(r => [r.name, r.requests_total, r.service])).toEqual([['r', 3, null]])
  })

  it('refusals by code and sub-reason: an expired token and a bad signature are two reasons under one stable code', () => {
    const c = clock()
    const s = new DashboardStats(c.now)
    for (let i = 0; i < 3; i++) s.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, 'expired')
    s.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined, 'signature')
    s.record('r', 401, 1, 'CB_ERR_TOKEN_INVALID', null, undefined, undefined) // an invalid token with no finer reason
    s.record('r', 401, 1, 'CB_ERR_TOKEN_BINDING_MISMATCH', null, undefined, undefined)
    s.refusal('CB_TLS_NO_CERTIFICATE')
    const config = { routes: [], settings: {} } as unknown as LoadedConfig
    const sum = buildSummary({ now: c.t, config, status: { version: 'x', config_hash: 'h', started_at: '', uptime_s: 0, ready: true }, stats: s.snapshot(), clients: undefined, reloads: new ReloadHistory().summary(), store: { backend: 'memory', connected: true } })
    expect(sum.refusals.map(r => [r.reason, r.code, r.cause, r.status, r.total, r.recent])).toEqual([
      ['token expired', 'CB_ERR_TOKEN_INVALID', 'expired', 401, 3, 3],
      ['binding mismatch (token bound to another certificate)', 'CB_ERR_TOKEN_BINDING_MISMATCH', undefined, 401, 1, 1],
      ['invalid token', 'CB_ERR_TOKEN_INVALID', undefined, 401, 1, 1],
      ['invalid signature', 'CB_ERR_TOKEN_INVALID', 'signature', 401, 1, 1],
      ['TLS handshake refused: no certificate', 'CB_TLS_NO_CERTIFICATE', undefined, undefined, 1, 1],
    ])
    // the JSON has no `cause` key where there is none
    expect(Object.keys(JSON.parse(JSON.stringify(sum.refusals[1])) as object)).not.toContain('cause')
  })

  it('a sub-reason under another code qualifies that code\'s label', async () => {
    const { reasonLabel } = await import('../../src/observability/dashboard/reasons.js')
    expect(reasonLabel('CB_ERR_TOKEN_INVALID', 'not_yet_valid')).toBe('token not yet valid (nbf)')
    expect(reasonLabel('CB_ERR_TOKEN_INACTIVE', 'expired')).toBe('inactive token (expired or revoked, per introspection): token expired')
    expect(reasonLabel('CB_ERR_TOKEN_INVALID', 'from_a_newer_worker')).toBe('from_a_newer_worker')
  })

  it('reload history keeps the last refusal\'s diagnostics, bounded', () => {
    const h = new ReloadHistory(() => T0)
    h.record({ ok: false, errors: 'gateway.yml:3:5  CB_CFG_UNKNOWN_FIELD  gateway.x' })
    for (let i = 0; i < 30; i++) h.record({ ok: true, hash: `h${i}` })
    const s = h.summary()
    expect([s.applied, s.refused, s.recent.length]).toEqual([30, 1, 20])
    expect(s.last_refusal?.errors).toMatch(/CB_CFG_UNKNOWN_FIELD/)
    h.record({ ok: false, errors: 'x'.repeat(100_000) })
    expect(h.summary().last_refusal!.errors!.length).toBeLessThan(9_000)
  })
})

