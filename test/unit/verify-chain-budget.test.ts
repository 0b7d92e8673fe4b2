/**
 * Issue 12 (1): path building must cost a small, fixed budget whatever certificates a client sends. Signature
 * checks are counted by wrapping `verify` on the certificate objects (node:crypto's, not certbound's code).
 */
import type { X509Certificate } from 'node:crypto'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { MAX_SIGNATURE_CHECKS, createTrustStore, verifyChain } from '../../src/auth/verify-chain.js'
import { makeCert, makeLoopChain, newKeys, type HostileCert } from '../helpers/hostile-chains.js'

let checks = 0
function counted<T extends X509Certificate> (c: T): T {
  if (Object.hasOwn(c, 'verify')) return c
  const verify = c.verify.bind(c)
  Object.defineProperty(c, 'verify', { value: (key: Parameters<X509Certificate['verify']>[0]) => { checks += 1; return verify(key) } })
  return c
}

describe('issue 12: a loop of same-named CA certificates (k = 6…16) costs a fixed budget', () => {
  it.each([6, 8, 10, 12, 16])('k = %i: refused quickly, at most MAX_SIGNATURE_CHECKS signature checks', async (k) => {
    const { leaf, loop } = await makeLoopChain(k)
    const root = await makeCert({ subject: 'CN=Real Root', issuer: 'CN=Real Root', keys: await newKeys(), signer: await newKeys(), ca: true })
    const store = createTrustStore([counted(root.x509)])
    checks = 0
    const t0 = performance.now()
    const r = verifyChain(counted(leaf.x509), loop.map(c => counted(c.x509)), store, { purpose: 'client_auth' })
    const ms = performance.now() - t0
    expect(r.ok).toBe(false)
    expect(checks).toBeLessThanOrEqual(MAX_SIGNATURE_CHECKS)
    // the dedup by (name, key) makes this a handful of checks, far under the budget
    expect(checks).toBeLessThanOrEqual(k + 2)
    expect(ms).toBeLessThan(500) // was 8.3 s at k = 8 (loaded machine: generous margin)
  })

  it('a legitimate chain among the loop certificates still verifies', async () => {
    const rootKeys = await newKeys()
    const root = await makeCert({ subject: 'CN=Real Root', issuer: 'CN=Real Root', keys: rootKeys, signer: rootKeys, ca: true })
    const caKeys = await newKeys()
    const ca = await makeCert({ subject: 'CN=Loop CA', issuer: 'CN=Real Root', keys: caKeys, signer: rootKeys, ca: true })
    const loopCopies: HostileCert[] = []
    for (let i = 0; i < 10; i++) loopCopies.push(await makeCert({ subject: 'CN=Loop CA', issuer: 'CN=Loop CA', keys: caKeys, signer: caKeys, ca: true }))
    const leaf = await makeCert({ subject: 'CN=client', issuer: 'CN=Loop CA', keys: await newKeys(), signer: caKeys, ca: false })
    // the real (cross-signed) intermediate last, behind ten self-issued copies of the same name and key
    const r = verifyChain(leaf.x509, [...loopCopies.map(c => c.x509), ca.x509], createTrustStore([root.x509]))
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.chain.map(c => c.subject)).toEqual(['CN=client', 'CN=Loop CA', 'CN=Real Root'])
  })

  it('same name, many different keys: the budget ends the search with too_complex, never a hang', async () => {
    const keys = await Promise.all(Array.from({ length: 12 }, () => newKeys()))
    const certs: HostileCert[] = []
    // every ordered pair (i → j): CA "X" with key i signed by key j, so every step has many verifying issuers
    for (let i = 0; i < keys.length; i++) {
      for (let j = 0; j < keys.length; j += 3) certs.push(await makeCert({ subject: 'CN=X', issuer: 'CN=X', keys: keys[i]!, signer: keys[(i + j + 1) % keys.length]!, ca: true }))
    }
    const leaf = await makeCert({ subject: 'CN=client', issuer: 'CN=X', keys: await newKeys(), signer: keys[0]!, ca: false })
    const store = createTrustStore([(await makeCert({ subject: 'CN=R', issuer: 'CN=R', keys: keys[1]!, signer: keys[1]!, ca: true })).x509])
    checks = 0
    const t0 = performance.now()
    const r = verifyChain(counted(leaf.x509), certs.map(c => counted(c.x509)), store)
    expect(performance.now() - t0).toBeLessThan(1000)
    expect(checks).toBeLessThanOrEqual(MAX_SIGNATURE_CHECKS)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(['too_complex', 'untrusted', 'bad_signature']).toContain(r.reason)
  })
})

/**
 * The path-building rules of the previous (unbounded) implementation, as a reference: DFS over every ordering,
 * trusted issuers first. Signature and checkIssued results are memoised so the reference itself stays cheap.
 */
function referenceHasPath (leaf: X509Certificate, inter: readonly X509Certificate[], anchors: readonly X509Certificate[], partial: boolean, memo: Map<string, boolean>): boolean {
  const trustedSet = new Set(anchors)
  const edge = (c: X509Certificate, i: X509Certificate): boolean => {
    const k = c.fingerprint256 + i.fingerprint256
    let v = memo.get(k)
    if (v === undefined) { v = c.checkIssued(i) && c.verify(i.publicKey); memo.set(k, v) }
    return v
  }
  const inPath = new Set<string>([leaf.fingerprint256])
  const build = (c: X509Certificate, depth: number): boolean => {
    if (trustedSet.has(c) && (partial || c.subject === c.issuer)) return true
    if (depth >= 8) return false
    const cands = [...anchors.map(a => [a, true] as const), ...inter.map(i => [i, false] as const)]
    for (const [i, t] of cands) {
      if (i.subject !== c.issuer || inPath.has(i.fingerprint256)) continue
      if (!edge(c, i)) continue
      if (!i.ca && !(t && i.subject === i.issuer)) continue
      inPath.add(i.fingerprint256)
      if (build(i, depth + 1)) return true
      inPath.delete(i.fingerprint256)
    }
    return false
  }
  return build(leaf, 0)
}

describe('issue 12: property: random chains (duplicates, loops, wrong order, cross-signed pairs) stay within budget', () => {
  const NAMES = ['CN=Root', 'CN=A', 'CN=B', 'CN=C']
  let pool: X509Certificate[] = []
  let leaves: X509Certificate[] = []
  const memo = new Map<string, boolean>()

  beforeAll(async () => {
    const keys = await Promise.all([newKeys(), newKeys(), newKeys()])
    const p: HostileCert[] = []
    for (const subject of NAMES) {
      for (const issuer of NAMES) {
        for (let k = 0; k < keys.length; k++) {
          for (let s = 0; s < keys.length; s++) {
            // cross-signed pairs arise naturally: same subject and key, different issuer names or signers
            p.push(await makeCert({ subject, issuer, keys: keys[k]!, signer: keys[s]!, ca: (k + s) % 4 !== 3 }))
          }
        }
      }
    }
    pool = p.map(c => counted(c.x509))
    const l: HostileCert[] = []
    const leafKeys = await newKeys()
    for (const issuer of NAMES) for (const signer of keys) l.push(await makeCert({ subject: 'CN=leaf', issuer, keys: leafKeys, signer, ca: false }))
    leaves = l.map(c => counted(c.x509))
  }, 60_000)

  it('never more than MAX_SIGNATURE_CHECKS checks; finds a path whenever the exhaustive reference does', () => {
    const idx = (n: number): fc.Arbitrary<number> => fc.integer({ min: 0, max: n - 1 })
    fc.assert(fc.property(
      idx(12), fc.array(idx(144), { maxLength: 9 }), fc.array(idx(144), { minLength: 1, maxLength: 3 }), fc.boolean(),
      (leafIdx, interIdx, anchorIdx, partial) => {
        const leaf = leaves[leafIdx]!
        const inter = interIdx.map(i => pool[i]!) // duplicates and any order allowed
        const anchors = anchorIdx.map(i => pool[i]!)
        checks = 0
        const r = verifyChain(leaf, inter, createTrustStore(anchors), { allowPartialChain: partial })
        expect(checks).toBeLessThanOrEqual(MAX_SIGNATURE_CHECKS)
        if (r.ok) {
          // soundness: every link verifies and the path ends at an anchor
          for (let i = 0; i + 1 < r.chain.length; i++) expect(r.chain[i]!.verify(r.chain[i + 1]!.publicKey)).toBe(true)
          expect(anchors.some(a => a.fingerprint256 === r.chain.at(-1)!.fingerprint256)).toBe(true)
        }
        if (r.ok || r.reason !== 'too_complex') {
          checks = 0
          expect(r.ok).toBe(referenceHasPath(leaf, inter, [...new Map(anchors.map(a => [a.fingerprint256, a])).values()], partial, memo))
        }
      },
    ), { numRuns: 300 })
  })
})
