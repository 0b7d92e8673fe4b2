import { AsnConvert } from '@peculiar/asn1-schema'
import {
  AuthorityInfoAccessSyntax, Certificate, CRLDistributionPoints, id_ad_ocsp, id_ce_cRLDistributionPoints, id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509'

/**
 * Where a certificate says its revocation status is published: the OCSP responders of its Authority Information
 * Access (RFC 5280 §4.2.2.1) and the full-name URIs of its CRL Distribution Points (§4.2.1.13). Only http(s) URLs
 * are kept: ldap:// and file:// are not fetched.
 */
export interface RevocationUrls {
  readonly ocsp: readonly string[]
  readonly crl: readonly string[]
}

const NONE: RevocationUrls = Object.freeze({ ocsp: Object.freeze([]), crl: Object.freeze([]) })

function httpUrl (u: string | undefined): string | undefined {
  if (u === undefined) return undefined
  try {
    const url = new URL(u)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined
  } catch {
    return undefined
  }
}

/** The revocation URLs in `der`; empty lists when there are none or the extensions do not parse. Never throws. */
export function revocationUrls (der: Uint8Array): RevocationUrls {
  let cert: Certificate
  try {
    cert = AsnConvert.parse(der, Certificate)
  } catch {
    return NONE
  }
  const ocsp: string[] = []
  const crl: string[] = []
  for (const ext of cert.tbsCertificate.extensions ?? []) {
    try {
      if (ext.extnID === id_pe_authorityInfoAccess) {
        for (const d of AsnConvert.parse(ext.extnValue, AuthorityInfoAccessSyntax)) {
          const u = d.accessMethod === id_ad_ocsp ? httpUrl(d.accessLocation.uniformResourceIdentifier) : undefined
          if (u !== undefined && !ocsp.includes(u)) ocsp.push(u)
        }
      } else if (ext.extnID === id_ce_cRLDistributionPoints) {
        for (const dp of AsnConvert.parse(ext.extnValue, CRLDistributionPoints)) {
          // an indirect CRL (cRLIssuer) is signed by someone else than the CA: not supported, so not fetched
          if (dp.cRLIssuer !== undefined) continue
          for (const name of dp.distributionPoint?.fullName ?? []) {
            const u = httpUrl(name.uniformResourceIdentifier)
            if (u !== undefined && !crl.includes(u)) crl.push(u)
          }
        }
      }
    } catch { /* a malformed extension publishes nothing we can use */ }
  }
  return ocsp.length === 0 && crl.length === 0 ? NONE : { ocsp, crl }
}
