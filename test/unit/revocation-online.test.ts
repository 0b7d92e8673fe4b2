import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Registry } from 'prom-client'
import { createHttpClient } from '../../src/http-client/index.js'
import { OnlineRevocationChecker, RevocationState } from '../../src/auth/revocation/online-checker.js'
import { RevocationMetrics } from '../../src/auth/revocation/metrics.js'
import { revocationUrls } from '../../src/auth/revocation/certificate-urls.js'
import { createRevocationPki, type RevocationPki } from '../helpers/revocation-pki.js'
import type { Issued } from './helpers/mtls-pki.js'

let pki: RevocationPki
const http = createHttpClient()
let clock = Date.now()
const now = (): number => clock

beforeAll(async () => { pki = await createRevocationPki() }, 60_000)
afterAll(async () => {
  await http.close()
  await pki?.close()
})

function checker (o: { ttl?: number, timeout?: number, state?: RevocationState, registry?: Registry } = {}): OnlineRevocationChecker {
  return new OnlineRevocationChecker({
    http, now, httpTimeoutMs: o.timeout ?? 3000, cacheTtlMs: o.ttl ?? 60_000, state: o.state ?? new RevocationState(),
    metrics: o.registry === undefined ? undefined : new RevocationMetrics(o.registry),
  })
}

const check = (c: OnlineRevocationChecker, leaf: Issued) => c.check(leaf.x509, pki.root.x509)

async function metric (registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find(x => x.name === name)
  const v = (m?.values as Array<{ labels: Record<string, string>, value: number }> | undefined)?.find(x => Object.entries(labels).every(([k, val]) => x.labels[k] === val))
  return v?.value ?? 0
}

describe('RFC 5280 §4.2.2.1 / §4.2.1.13: revocation URLs', () => {
  it('reads the AIA OCSP responder and the CRL distribution point; none on a bare certificate', () => {
    expect(revocationUrls(pki.good.der)).toEqual({ ocsp: [`http://127.0.0.1:${pki.responder.port}/`], crl: [`${pki.webUrl}/root.crl`] })
    expect(revocationUrls(pki.noInfo.der)).toEqual({ ocsp: [], crl: [] })
    expect(revocationUrls(Buffer.from('garbage'))).toEqual({ ocsp: [], crl: [] })
  })
})

describe('RFC 6960: OCSP against a real openssl responder', () => {
  it('good (delegated id-kp-OCSPSigning responder), revoked, unknown', async () => {
    const c = checker()
    expect(await check(c, pki.good)).toMatchObject({ status: 'good', source: 'ocsp' })
    const r = await check(c, pki.revoked)
    expect(r).toMatchObject({ status: 'revoked', source: 'ocsp' })
    expect(r.detail).toMatch(/revoked at/)
    // unknown has no CDP to fall back to
    expect(await check(c, pki.unknown)).toMatchObject({ status: 'unknown', source: 'ocsp' })
  })

  it('a response signed by the CA itself is accepted', async () => {
    expect(await check(checker(), pki.caSigned)).toMatchObject({ status: 'good', source: 'ocsp', detail: expect.stringContaining('signed by ca') })
  })

  it('§4.2.2.2: a response signed by a responder the CA did not authorise (same name, other key) is not believed', async () => {
    const r = await check(checker(), pki.badSignature)
    expect(r.status).toBe('error')
    expect(r.detail).toMatch(/bad_signature/)
    expect(await pki.rogueResponder.count()).toBeGreaterThan(0)
  })

  it('answers are cached until cert_cache_ttl (counted at the responder), then asked again', async () => {
    const registry = new Registry()
    const c = checker({ ttl: 10_000, registry })
    const before = await pki.responder.count()
    expect((await check(c, pki.good)).status).toBe('good')
    expect(await pki.responder.count()).toBe(before + 1)
    for (let i = 0; i < 5; i++) expect((await check(c, pki.good)).status).toBe('good')
    expect(await pki.responder.count()).toBe(before + 1)
    expect(await metric(registry, 'certbound_revocation_cache_hits_total', { kind: 'answer' })).toBe(5)
    expect(await metric(registry, 'certbound_revocation_checks_total', { source: 'ocsp', result: 'good' })).toBe(1)
    clock += 10_001
    expect((await check(c, pki.good)).status).toBe('good')
    expect(await pki.responder.count()).toBe(before + 2)
    clock = Date.now()
  })

  it('concurrent checks of one certificate make one request (single flight)', async () => {
    const c = checker()
    const before = await pki.responder.count()
    const all = await Promise.all(Array.from({ length: 8 }, () => check(c, pki.good)))
    expect(all.every(r => r.status === 'good')).toBe(true)
    expect(await pki.responder.count()).toBe(before + 1)
  })

  it('nextUpdate bounds the cache, and a response past its nextUpdate is refused (stale)', async () => {
    const c = checker({ ttl: 10 * 86_400_000 })
    expect((await check(c, pki.good)).status).toBe('good')
    const before = await pki.responder.count()
    clock += 86_400_000 + 10 * 60_000 // past the responder's nextUpdate (-ndays 1) and the skew
    const r = await check(c, pki.good)
    expect(await pki.responder.count()).toBe(before + 1)
    expect(r.status).toBe('error')
    expect(r.detail).toMatch(/stale/)
    clock = Date.now()
  })
})

describe('faults: a responder that is down, slow, huge or garbage gives an error answer, quickly', () => {
  it('down → error; with a CRL distribution point → the CRL answers', async () => {
    const c = checker()
    const down = await check(c, pki.down)
    expect(down).toMatchObject({ status: 'error', source: 'ocsp' })
    expect(down.detail).toMatch(/unreachable/)
    expect(await check(c, pki.downWithCrl)).toMatchObject({ status: 'good', source: 'crl' })
  })

  it('slow → error within http_timeout', async () => {
    const t0 = Date.now()
    const r = await check(checker({ timeout: 500 }), pki.slow)
    expect(r.status).toBe('error')
    expect(Date.now() - t0).toBeLessThan(5000)
  })

  it('huge and garbage → error, no crash', async () => {
    const c = checker()
    expect((await check(c, pki.huge)).detail).toMatch(/exceeds/)
    expect((await check(c, pki.garbage)).detail).toMatch(/malformed/)
  })

  it('an error answer is retried after a while, not on every handshake', async () => {
    const c = checker()
    const before = pki.hits.get('/garbage') ?? 0
    await check(c, pki.garbage)
    await check(c, pki.garbage)
    expect(pki.hits.get('/garbage')).toBe(before + 1)
    clock += 31_000
    await check(c, pki.garbage)
    expect(pki.hits.get('/garbage')).toBe(before + 2)
    clock = Date.now()
  })
})

describe('RFC 5280 §6.3: CRLs from distribution points', () => {
  it('DER (not listed → good), PEM (listed → revoked), expired → error', async () => {
    const c = checker()
    expect(await check(c, pki.crlGood)).toMatchObject({ status: 'good', source: 'crl' })
    expect(await check(c, pki.crlRevoked)).toMatchObject({ status: 'revoked', source: 'crl' })
    const e = await check(c, pki.crlExpired)
    expect(e.status).toBe('error')
    expect(e.detail).toMatch(/nextUpdate/)
  })

  it('a CRL signed by another key is refused', async () => {
    const { makeRoot, makeCrl } = await import('./helpers/mtls-pki.js')
    const impostor = await makeRoot('CN=Revocation Test Root,O=certbound test')
    const forged = await makeCrl(impostor, [])
    pki.route('/forged.crl', (_q, res) => { res.writeHead(200).end(forged.der) })
    const { issue } = await import('./helpers/mtls-pki.js')
    const px = await import('@peculiar/x509')
    const leaf = await issue('CN=forged-crl,O=Example Org', pki.root, { extensions: [new px.CRLDistributionPointsExtension([`${pki.webUrl}/forged.crl`])] })
    const r = await check(checker(), leaf)
    expect(r.status).toBe('error')
    expect(r.detail).toMatch(/not signed/)
  })

  it('a downloaded CRL is shared, refreshed ahead of expiry in the background, and kept across instances (reloads)', async () => {
    const state = new RevocationState()
    const a = checker({ ttl: 5000, state })
    const before = pki.hits.get('/root.crl') ?? 0
    expect((await check(a, pki.crlGood)).status).toBe('good')
    expect(pki.hits.get('/root.crl')).toBe(before + 1)
    // a new instance (a reload) with the same state: the CRL is not downloaded again
    const b = checker({ ttl: 5000, state })
    expect((await check(b, pki.downWithCrl)).status).toBe('good')
    expect(pki.hits.get('/root.crl')).toBe(before + 1)
    // past the refresh point: answered from the cached CRL, and a new one is fetched in the background
    clock += 6000
    expect((await check(b, pki.crlGood)).status).toBe('good')
    for (let i = 0; i < 100 && (pki.hits.get('/root.crl') ?? 0) === before + 1; i++) await new Promise(resolve => setTimeout(resolve, 20))
    expect(pki.hits.get('/root.crl')).toBe(before + 2)
    clock = Date.now()
  })
})

describe('CRL renewal without traffic', () => {
  it('refreshDue re-fetches a CRL past its refresh point and nothing else', async () => {
    const c = checker({ ttl: 5000 })
    expect((await check(c, pki.crlGood)).status).toBe('good')
    const before = pki.hits.get('/root.crl') ?? 0
    await c.refreshDue()
    expect(pki.hits.get('/root.crl')).toBe(before)
    clock += 5001
    await c.refreshDue()
    expect(pki.hits.get('/root.crl')).toBe(before + 1)
    await c.refreshDue() // renewed: not due again
    expect(pki.hits.get('/root.crl')).toBe(before + 1)
    clock = Date.now()
  })
})

describe('hostile OCSP responses: a mutated or truncated response never throws anything but OcspError, never changes the answer', () => {
  it('property: byte flips and truncations of a real responder answer', async () => {
    const fc = await import('fast-check')
    const { buildOcspRequest, parseOcspResponse, OcspError } = await import('../../src/auth/revocation/ocsp.js')
    for (const leaf of [pki.good, pki.revoked]) {
      const req = buildOcspRequest(leaf.x509, pki.root.x509)
      const res = await http.request(pki.responder.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: req.der })
      const original = parseOcspResponse(res.body, req.certId, pki.root.x509, Date.now())
      fc.assert(fc.property(
        fc.array(fc.tuple(fc.nat({ max: res.body.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat({ max: res.body.length }), { nil: undefined }),
        (flips, cut) => {
          const b = Buffer.from(res.body)
          for (const [i, x] of flips) b[i] ^= x
          const body = cut === undefined ? b : b.subarray(0, cut)
          try {
            const a = parseOcspResponse(body, req.certId, pki.root.x509, Date.now())
            // only a change the signature does not cover (or a re-encoding of the same value) may still parse
            expect(a.status).toBe(original.status)
            expect(a.thisUpdate).toBe(original.thisUpdate)
          } catch (err) {
            expect(err).toBeInstanceOf(OcspError)
          }
        },
      ), { numRuns: 300 })
    }
  })
})
