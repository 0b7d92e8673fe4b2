import type { revocationUrls } from './certificate-urls.js'
import type { acceptCrl } from './distribution-point-crl.js'
import type { buildOcspRequest, parseOcspResponse } from './ocsp.js'

/**
 * The DER codecs behind online revocation checks (@peculiar/asn1-* and @peculiar/x509): loaded when the first
 * certificate is checked, not at start. They are ~10 MB of a gateway's RSS, which every gateway that never checks
 * revocation online (most) would carry for nothing. A failed load is retried on the next check.
 */
export interface RevocationCodecs {
  readonly revocationUrls: typeof revocationUrls
  readonly acceptCrl: typeof acceptCrl
  readonly buildOcspRequest: typeof buildOcspRequest
  readonly parseOcspResponse: typeof parseOcspResponse
}

let loading: Promise<RevocationCodecs> | undefined

export function revocationCodecs (): Promise<RevocationCodecs> {
  loading ??= Promise.all([import('./certificate-urls.js'), import('./distribution-point-crl.js'), import('./ocsp.js')])
    .then(([urls, crl, ocsp]) => ({
      revocationUrls: urls.revocationUrls,
      acceptCrl: crl.acceptCrl,
      buildOcspRequest: ocsp.buildOcspRequest,
      parseOcspResponse: ocsp.parseOcspResponse,
    }), (err: unknown) => { loading = undefined; throw err })
  return loading
}
