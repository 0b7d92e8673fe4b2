/**
 * The revocation checkers' failure types, apart from the ASN.1 code that throws them: the checkers test for them
 * on every failure, while the parsers (@peculiar/*, ~10 MB of a gateway's RSS) load only when a certificate is first
 * checked online (lazy-codecs.ts).
 */

/** Why no OCSP answer could be believed. `kind` is stable (metrics label, log field). */
export type OcspFailureKind = 'malformed' | 'responder_error' | 'bad_signature' | 'mismatch' | 'stale'

export class OcspError extends Error {
  constructor (readonly kind: OcspFailureKind, message: string) {
    super(message)
    this.name = 'OcspError'
  }
}

export class CrlFetchError extends Error {
  constructor (readonly kind: 'malformed' | 'bad_signature' | 'stale', message: string) {
    super(message)
    this.name = 'CrlFetchError'
  }
}
