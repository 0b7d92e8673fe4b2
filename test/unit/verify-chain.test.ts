import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createTrustStore, parsePemCertificates, verifyChain } from '../../src/auth/verify-chain.js'
import { createMtlsPki, issue, makeRoot, type MtlsPki } from './helpers/mtls-pki.js'

let pki: MtlsPki
beforeAll(async () => { pki = await createMtlsPki() })
afterAll(() => pki.cleanup())

describe('RFC 5280 §6 path validation (verifyChain)', () => {
  it('accepts a leaf issued by a trusted root and returns leaf → root', () => {
    const r = verifyChain(pki.client1.x509, [], createTrustStore([pki.root.x509]))
    expect(r.ok).toBe(true)
    if (r.ok) {
      expect(r.chain.map(c => c.subject)).toEqual([pki.client1.x509.subject, pki.root.x509.subject])
      expect(r.validTo).toBe(Date.parse(pki.client1.x509.validTo))
    }
  })

  it('refuses a leaf from another CA as untrusted, even with the same subject', () => {
    const r = verifyChain(pki.stranger.x509, [], createTrustStore([pki.root.x509]))
    expect(r).toMatchObject({ ok: false, reason: 'untrusted' })
  })

  it('refuses a self-presented root that is not in the trust store', () => {
    const r = verifyChain(pki.stranger.x509, [pki.otherRoot.x509], createTrustStore([pki.root.x509]))
    expect(r).toMatchObject({ ok: false, reason: 'untrusted' })
  })

  it('refuses an expired certificate', () => {
    const r = verifyChain(pki.expired.x509, [], createTrustStore([pki.root.x509]))
    expect(r).toMatchObject({ ok: false, reason: 'expired' })
  })

  it('refuses a certificate that is not yet valid', () => {
    const r = verifyChain(pki.notYetValid.x509, [], createTrustStore([pki.root.x509]))
    expect(r).toMatchObject({ ok: false, reason: 'not_yet_valid' })
  })

  it('checks validity at the given time', () => {
    const store = createTrustStore([pki.root.x509])
    expect(verifyChain(pki.client1.x509, [], store, { at: Date.now() + 365 * 86_400_000 })).toMatchObject({ ok: false, reason: 'expired' })
    expect(verifyChain(pki.notYetValid.x509, [], store, { at: new Date(Date.now() + 2 * 86_400_000) }).ok).toBe(true)
  })

  it('builds a path through an intermediate the client sent', () => {
    const r = verifyChain(pki.chained.x509, [pki.intermediate.x509], createTrustStore([pki.root.x509]))
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.chain).toHaveLength(3)
  })

  it('refuses a leaf whose intermediate was not sent and is not trusted', () => {
    expect(verifyChain(pki.chained.x509, [], createTrustStore([pki.root.x509]))).toMatchObject({ ok: false, reason: 'untrusted' })
  })

  it('without allow_partial_chain, a trusted intermediate is not an anchor: the root must be trusted too', () => {
    const store = createTrustStore([pki.intermediate.x509])
    expect(verifyChain(pki.chained.x509, [], store)).toMatchObject({ ok: false, reason: 'untrusted' })
    expect(verifyChain(pki.chained.x509, [], createTrustStore([pki.intermediate.x509, pki.root.x509])).ok).toBe(true)
  })

  it('with allow_partial_chain, a trusted intermediate is enough', () => {
    const r = verifyChain(pki.chained.x509, [], createTrustStore([pki.intermediate.x509]), { allowPartialChain: true })
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.chain).toHaveLength(2)
  })

  it('with allow_partial_chain, the leaf itself in the trust set is enough (pinning)', () => {
    const store = createTrustStore([pki.client1.x509])
    expect(verifyChain(pki.client1.x509, [], store)).toMatchObject({ ok: false, reason: 'untrusted' })
    expect(verifyChain(pki.client1.x509, [], store, { allowPartialChain: true }).ok).toBe(true)
    expect(verifyChain(pki.client2.x509, [], store, { allowPartialChain: true }).ok).toBe(false)
  })

  it('refuses an issuer that is not a CA (basicConstraints cA false)', async () => {
    // client1 (an end-entity) "issues" a certificate: the signature is fine, the issuer is not a CA
    const fake = await issue('C=SE,O=Callista Enterprise AB,CN=child-of-leaf', pki.client1)
    const r = verifyChain(fake.x509, [pki.client1.x509], createTrustStore([pki.root.x509]))
    expect(r.ok).toBe(false)
    if (!r.ok) expect(['not_ca', 'untrusted']).toContain(r.reason)
  })

  it('refuses a forged issuer: same name, different key → not this issuer', async () => {
    const impostor = await makeRoot('C=SE,O=Callista Enterprise AB,CN=Test Root CA')
    const forged = await issue('C=SE,O=Callista Enterprise AB,CN=client1', impostor)
    const r = verifyChain(forged.x509, [], createTrustStore([pki.root.x509]))
    expect(r.ok).toBe(false)
    if (!r.ok) expect(['untrusted', 'bad_signature']).toContain(r.reason)
  })

  it('enforces max depth', () => {
    const store = createTrustStore([pki.root.x509])
    expect(verifyChain(pki.chained.x509, [pki.intermediate.x509], store, { maxDepth: 1 })).toMatchObject({ ok: false, reason: 'too_deep' })
    expect(verifyChain(pki.chained.x509, [pki.intermediate.x509], store, { maxDepth: 2 }).ok).toBe(true)
  })

  it('checks the client_auth purpose when the leaf has extendedKeyUsage', () => {
    const store = createTrustStore([pki.root.x509])
    expect(verifyChain(pki.serverOnly.x509, [], store, { purpose: 'client_auth' })).toMatchObject({ ok: false, reason: 'bad_purpose' })
    expect(verifyChain(pki.client1.x509, [], store, { purpose: 'client_auth' }).ok).toBe(true)
  })

  it('parsePemCertificates reads a bundle', () => {
    const certs = parsePemCertificates(pki.root.certPem + pki.intermediate.certPem)
    expect(certs.map(c => c.subject)).toEqual([pki.root.x509.subject, pki.intermediate.x509.subject])
    expect(parsePemCertificates('nothing here')).toEqual([])
  })
})
