import { createHash, X509Certificate } from 'node:crypto'

/**
 * Certificate path validation (RFC 5280 §6, the parts a TLS client-certificate check needs) against a set of
 * trust anchors, with node:crypto's X509Certificate: issuer/subject linkage and key usage (`checkIssued`),
 * signatures (`verify`), validity periods, basicConstraints cA on issuers, a maximum depth and, optionally,
 * OpenSSL's X509_V_FLAG_PARTIAL_CHAIN (any certificate in the trust set is an anchor).
 *
 * Used by mtls-auth (independent of the listener's client CA) and by the built-in authorization server.
 */

/** Why a chain did not verify. Stable: tests and logs rely on these names. */
export type ChainFailureReason =
  | 'untrusted' // no path to a trust anchor
  | 'bad_signature' // an issuer was found by name but its key did not verify the signature
  | 'not_ca' // an issuer is not a CA (basicConstraints cA false or absent)
  | 'expired'
  | 'not_yet_valid'
  | 'too_deep' // the path would exceed maxDepth
  | 'bad_purpose' // the leaf's extendedKeyUsage excludes the required purpose
  | 'too_complex' // path building hit its fixed budget (MAX_SIGNATURE_CHECKS / MAX_ISSUER_CANDIDATES) first

export type ChainResult =
  | { readonly ok: true, readonly chain: readonly X509Certificate[], readonly validFrom: number, readonly validTo: number }
  | { readonly ok: false, readonly reason: ChainFailureReason, readonly detail: string }

/** Trust anchors indexed for path building. Build once at load; read-only afterwards. */
export interface TrustStore {
  readonly anchors: readonly X509Certificate[]
  /** Node's issuer/subject strings (one attribute per line) → anchors with that subject. */
  readonly bySubject: ReadonlyMap<string, readonly X509Certificate[]>
  /** SHA-256 (hex) of each anchor's DER. */
  readonly fingerprints: ReadonlySet<string>
}

export interface VerifyChainOptions {
  /** The time to check validity at, as a Date or epoch ms; default now. */
  readonly at?: Date | number
  /** Most issuers above the leaf (OpenSSL's verify depth); default 8. */
  readonly maxDepth?: number
  /** Any certificate in the trust store (an intermediate, or the leaf itself) ends the path (X509_V_FLAG_PARTIAL_CHAIN). */
  readonly allowPartialChain?: boolean
  /** Require the leaf's extendedKeyUsage (when present) to allow this purpose, as OpenSSL's purpose check does. */
  readonly purpose?: 'client_auth' | 'server_auth'
}

const EKU_ANY = '2.5.29.37.0'
const EKU = { client_auth: '1.3.6.1.5.5.7.3.2', server_auth: '1.3.6.1.5.5.7.3.1' } as const

/**
 * Most signature verifications one chain may cost. A real path (depth ≤ 8, a cross-signed pair or a renewed
 * root on the way) needs a handful; the budget is what bounds hostile input (a loop of same-named CAs used to
 * cost k!/(k−8)! checks).
 */
export const MAX_SIGNATURE_CHECKS = 64
/** Most issuer candidates (name matches) one chain may examine, each costing a `checkIssued`. */
export const MAX_ISSUER_CANDIDATES = 512

const fingerprints = new WeakMap<X509Certificate, string>()
const keyFingerprints = new WeakMap<X509Certificate, string>()
const validity = new WeakMap<X509Certificate, readonly [from: number, to: number]>()

/** SHA-256 (hex) of a certificate's DER, memoised per object. */
export function certificateFingerprint (c: X509Certificate): string {
  let fp = fingerprints.get(c)
  if (fp === undefined) {
    fp = createHash('sha256').update(c.raw).digest('hex')
    fingerprints.set(c, fp)
  }
  return fp
}

/** notBefore/notAfter as epoch ms, memoised per object (Node 20 only offers the OpenSSL text form). */
export function certificateValidity (c: X509Certificate): readonly [from: number, to: number] {
  let v = validity.get(c)
  if (v === undefined) {
    const from = Date.parse(c.validFrom)
    const to = Date.parse(c.validTo)
    // An unparsable date must never widen validity: treat it as "never valid".
    v = [Number.isNaN(from) ? Number.POSITIVE_INFINITY : from, Number.isNaN(to) ? Number.NEGATIVE_INFINITY : to]
    validity.set(c, v)
  }
  return v
}

/** Index trust anchors for {@link verifyChain}. Duplicates are dropped. */
export function createTrustStore (certs: Iterable<X509Certificate>): TrustStore {
  const anchors: X509Certificate[] = []
  const bySubject = new Map<string, X509Certificate[]>()
  const fps = new Set<string>()
  for (const c of certs) {
    const fp = certificateFingerprint(c)
    if (fps.has(fp)) continue
    fps.add(fp)
    anchors.push(c)
    const list = bySubject.get(c.subject)
    if (list === undefined) bySubject.set(c.subject, [c])
    else list.push(c)
  }
  return Object.freeze({ anchors: Object.freeze(anchors), bySubject, fingerprints: fps })
}

/** Every certificate in a PEM text (a bundle may hold several). Throws on a block that does not parse. */
export function parsePemCertificates (pem: string): X509Certificate[] {
  const out: X509Certificate[] = []
  const re = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g
  for (const m of pem.matchAll(re)) out.push(new X509Certificate(m[0]))
  return out
}

/** SHA-256 (hex) of a certificate's SubjectPublicKeyInfo, memoised per object. */
function publicKeyFingerprint (c: X509Certificate): string {
  let fp = keyFingerprints.get(c)
  if (fp === undefined) {
    try {
      fp = createHash('sha256').update(c.publicKey.export({ type: 'spki', format: 'der' })).digest('hex')
    } catch {
      fp = 'certificate:' + certificateFingerprint(c) // a key node:crypto cannot read: no sharing with others
    }
    keyFingerprints.set(c, fp)
  }
  return fp
}

function nodeKey (c: X509Certificate): string {
  return c.subject + '\0' + publicKeyFingerprint(c)
}

function indexBySubject (certs: readonly X509Certificate[]): Map<string, X509Certificate[]> {
  const m = new Map<string, X509Certificate[]>()
  for (const c of certs) {
    const list = m.get(c.subject)
    if (list === undefined) m.set(c.subject, [c])
    else list.push(c)
  }
  return m
}

function isSelfIssued (c: X509Certificate): boolean {
  return c.subject === c.issuer
}

function describe (c: X509Certificate): string {
  return c.subject.replace(/\n/g, ', ')
}

// When several candidate paths fail, report the most telling reason: a signature or date problem on a path
// that reached a trust anchor says more than "untrusted".
const SEVERITY: Record<ChainFailureReason, number> = {
  untrusted: 0, too_complex: 0, too_deep: 1, not_ca: 2, bad_signature: 3, bad_purpose: 4, not_yet_valid: 5, expired: 5,
}

/**
 * Verify `leaf` (with the `intermediates` the peer sent, in any order, untrusted) against `store`.
 * Pure and synchronous; the caller caches the result (per TLS connection in mtls-auth).
 */
export function verifyChain (leaf: X509Certificate, intermediates: readonly X509Certificate[], store: TrustStore, opts: VerifyChainOptions = {}): ChainResult {
  const at = opts.at === undefined ? Date.now() : (typeof opts.at === 'number' ? opts.at : opts.at.getTime())
  const maxDepth = opts.maxDepth ?? 8
  const partial = opts.allowPartialChain === true

  if (opts.purpose !== undefined) {
    const eku = leaf.keyUsage
    if (eku !== undefined && eku.length > 0 && !eku.includes(EKU[opts.purpose]) && !eku.includes(EKU_ANY)) {
      return { ok: false, reason: 'bad_purpose', detail: `certificate ${describe(leaf)} does not allow ${opts.purpose} (extendedKeyUsage ${eku.join(', ')})` }
    }
  }

  let best: { reason: ChainFailureReason, detail: string } = { reason: 'untrusted', detail: `no path from ${describe(leaf)} (issuer ${leaf.issuer.replace(/\n/g, ', ')}) to a trusted CA` }
  const fail = (reason: ChainFailureReason, detail: string): void => {
    if (SEVERITY[reason] > SEVERITY[best.reason]) best = { reason, detail }
  }

  const path: X509Certificate[] = [leaf]
  // RFC 4158 §2.4.2/§5.2: a path never repeats a (subject, public key) pair. Keyed by name + key rather than by
  // certificate, so k re-issued copies of one CA (same name, same key) are one node, not k! orderings.
  const inPath = new Set<string>([nodeKey(leaf)])
  // Signature results per (certificate, issuer key): a failed edge is never checked twice, and issuers that
  // share a key cost one check between them.
  const signatures = new Map<string, boolean>()
  const byIssuerName = indexBySubject(intermediates)
  let signatureChecks = 0
  let edges = 0
  let exhausted = false

  const verifiedBy = (cert: X509Certificate, issuer: X509Certificate): boolean | undefined => {
    const k = certificateFingerprint(cert) + '/' + publicKeyFingerprint(issuer)
    let ok = signatures.get(k)
    if (ok === undefined) {
      if (signatureChecks >= MAX_SIGNATURE_CHECKS) return undefined
      signatureChecks += 1
      try { ok = cert.verify(issuer.publicKey) } catch { ok = false }
      signatures.set(k, ok)
    }
    return ok
  }

  // Depth-first path building: trusted issuers first, then the peer's intermediates; backtrack on failure
  // (cross-signed CAs can offer more than one path). Bounded by maxDepth, by never repeating a (name, key) in a
  // path, and by a fixed budget of signature checks and issuer candidates per chain, whatever the input.
  const build = (cert: X509Certificate): boolean => {
    const trusted = store.fingerprints.has(certificateFingerprint(cert))
    if (trusted && (partial || isSelfIssued(cert))) return checkDates()
    if (path.length - 1 >= maxDepth) { fail('too_deep', `path from ${describe(leaf)} exceeds ${maxDepth} issuers`); return false }
    const seen = new Set<string>()
    const candidates: Array<[X509Certificate, boolean]> = []
    for (const a of store.bySubject.get(cert.issuer) ?? []) { seen.add(certificateFingerprint(a)); candidates.push([a, true]) }
    for (const i of byIssuerName.get(cert.issuer) ?? []) {
      const fp = certificateFingerprint(i)
      if (!seen.has(fp)) { seen.add(fp); candidates.push([i, false]) }
    }
    for (const [issuer, issuerTrusted] of candidates) {
      if (exhausted) return false
      const node = nodeKey(issuer)
      if (inPath.has(node)) continue
      if (++edges > MAX_ISSUER_CANDIDATES) { exhausted = true; return false }
      if (!cert.checkIssued(issuer)) continue // name/AKID/keyUsage mismatch: not this issuer
      const sig = verifiedBy(cert, issuer)
      if (sig === undefined) { exhausted = true; return false }
      if (!sig) { fail('bad_signature', `signature of ${describe(cert)} does not verify with the key of ${describe(issuer)}`); continue }
      // RFC 5280 §4.2.1.9: an issuer must be a CA. A self-signed anchor configured explicitly is trusted as is
      // (old v1 roots carry no basicConstraints).
      if (!issuer.ca && !(issuerTrusted && isSelfIssued(issuer))) { fail('not_ca', `issuer ${describe(issuer)} is not a CA (basicConstraints)`); continue }
      path.push(issuer)
      inPath.add(node)
      if (build(issuer)) return true
      path.pop()
      inPath.delete(node)
    }
    return false
  }

  let validFrom = Number.NEGATIVE_INFINITY
  let validTo = Number.POSITIVE_INFINITY
  const checkDates = (): boolean => {
    let from = Number.NEGATIVE_INFINITY
    let to = Number.POSITIVE_INFINITY
    for (const c of path) {
      const [nb, na] = certificateValidity(c)
      if (at < nb) { fail('not_yet_valid', `${describe(c)} is not valid before ${c.validFrom}`); return false }
      if (at > na) { fail('expired', `${describe(c)} expired ${c.validTo}`); return false }
      if (nb > from) from = nb
      if (na < to) to = na
    }
    validFrom = from
    validTo = to
    return true
  }

  if (build(leaf)) return { ok: true, chain: Object.freeze([...path]), validFrom, validTo }
  if (exhausted) {
    return { ok: false, reason: 'too_complex', detail: `gave up building a path from ${describe(leaf)} after ${signatureChecks} signature checks and ${Math.min(edges, MAX_ISSUER_CANDIDATES)} issuer candidates (${intermediates.length} certificates sent); ${best.reason}: ${best.detail}` }
  }
  return { ok: false, reason: best.reason, detail: best.detail }
}
