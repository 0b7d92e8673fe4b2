import type { X509Certificate } from 'node:crypto'

/**
 * The issuer of `leaf` within `chain` (leaf first, as verifyChain returns it): the certificate whose subject is
 * the leaf's issuer and whose key verifies the leaf's signature. OCSP CertIDs and CRL signatures are about
 * that very CA (RFC 6960 §4.1.1, RFC 5280 §6.3.3).
 */
export function issuerIn (chain: readonly X509Certificate[], leaf: X509Certificate): X509Certificate | undefined {
  const next = chain.find(c => c !== leaf && leaf.checkIssued(c))
  if (next === undefined) return undefined
  try {
    return leaf.verify(next.publicKey) ? next : undefined
  } catch {
    return undefined
  }
}
