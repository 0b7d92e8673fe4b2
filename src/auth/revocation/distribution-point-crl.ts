import '../../pki/reflect-metadata.js' // must precede @peculiar/x509 (tsyringe needs Reflect.getMetadata at import)
import type { X509Certificate } from 'node:crypto'
import { X509Crl, X509Certificate as PeculiarCertificate } from '@peculiar/x509'
import { normalizeSerial } from '../crl.js'
import { CrlFetchError } from './errors.js'
export { CrlFetchError } from './errors.js'

/**
 * A CRL downloaded from a certificate's CRL Distribution Point (RFC 5280 §4.2.1.13), accepted only when it is
 * signed by the CA that issued the certificate (§6.3.3 (f)), names that CA as its issuer, and has a nextUpdate
 * still ahead (§5.1.2.5: without nextUpdate we could never tell a stale CRL from a current one).
 */
export interface FetchedCrl {
  readonly url: string
  readonly revoked: ReadonlySet<string>
  /** Epoch ms. */
  readonly thisUpdate: number
  readonly nextUpdate: number
}

const PEM_CRL = /-----BEGIN (?:X509 )?CRL-----[\s\S]*?-----END (?:X509 )?CRL-----/

/** Parse a DER or PEM CRL body and check it against `issuer` at `at`; throws CrlFetchError. */
export async function acceptCrl (url: string, body: Uint8Array, issuer: X509Certificate, at: number): Promise<FetchedCrl> {
  let crl: X509Crl
  try {
    const text = Buffer.from(body.subarray(0, 64)).toString('latin1')
    if (text.includes('-----BEGIN')) {
      const m = PEM_CRL.exec(Buffer.from(body).toString('latin1'))
      if (m === null) throw new Error('no "-----BEGIN X509 CRL-----" block')
      crl = new X509Crl(m[0])
    } else {
      crl = new X509Crl(new Uint8Array(body))
    }
  } catch (err) {
    throw new CrlFetchError('malformed', `not a CRL (DER or PEM): ${(err as Error).message}`)
  }
  const ca = new PeculiarCertificate(new Uint8Array(issuer.raw))
  let ok = false
  try {
    ok = ca.subjectName.toString() === crl.issuerName.toString() && await crl.verify({ publicKey: ca })
  } catch { ok = false }
  if (!ok) throw new CrlFetchError('bad_signature', `the CRL of "${crl.issuer}" is not signed by "${ca.subject}"`)
  const thisUpdate = crl.thisUpdate.getTime()
  const nextUpdate = crl.nextUpdate?.getTime()
  if (nextUpdate === undefined) throw new CrlFetchError('stale', 'the CRL has no nextUpdate')
  if (at > nextUpdate) throw new CrlFetchError('stale', `the CRL expired at its nextUpdate ${new Date(nextUpdate).toISOString()}`)
  return { url, revoked: new Set(crl.entries.map(e => normalizeSerial(e.serialNumber))), thisUpdate, nextUpdate }
}
