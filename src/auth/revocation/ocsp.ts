import { createHash, verify as verifySignature, X509Certificate, type KeyObject } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509'
import {
  BasicOCSPResponse, CertID, id_kp_OCSPSigning, id_pkix_ocsp_basic, OCSPRequest, OCSPResponse, OCSPResponseStatus,
  Request, TBSRequest,
} from '@peculiar/asn1-ocsp'
import { OcspError } from './errors.js'
export { OcspError, type OcspFailureKind } from './errors.js'

/**
 * OCSP (RFC 6960) for one certificate: the request, and the checks a response must pass before its answer is
 * believed — the CertID is ours, the signature is the CA's or that of a responder the CA delegated with
 * id-kp-OCSPSigning (§4.2.2.2), and thisUpdate/nextUpdate bracket the present (§3.2, RFC 5019 §4).
 * The DER is built and parsed with @peculiar/asn1-ocsp; nothing here is hand-encoded.
 */

export type OcspStatus = 'good' | 'revoked' | 'unknown'

export interface OcspAnswer {
  readonly status: OcspStatus
  /** Epoch ms. */
  readonly thisUpdate: number
  /** Epoch ms; undefined when the responder gave none (RFC 6960 §2.4: newer information is always available). */
  readonly nextUpdate: number | undefined
  readonly revocationTime: number | undefined
  /** Who signed: the issuing CA itself, or a delegated responder (its subject). */
  readonly signer: string
}


/** Clock skew tolerated on thisUpdate/nextUpdate (RFC 5019 §4 leaves it to local policy). */
export const OCSP_CLOCK_SKEW_MS = 5 * 60_000

const SHA1 = '1.3.14.3.2.26'

/** Signature algorithms accepted on responses: OID → [hash for crypto.verify, key type]. */
const SIGNATURE_ALGORITHMS: ReadonlyMap<string, readonly [string | null, string]> = new Map([
  ['1.2.840.113549.1.1.5', ['sha1', 'rsa']],
  ['1.2.840.113549.1.1.11', ['sha256', 'rsa']],
  ['1.2.840.113549.1.1.12', ['sha384', 'rsa']],
  ['1.2.840.113549.1.1.13', ['sha512', 'rsa']],
  ['1.2.840.10045.4.1', ['sha1', 'ec']],
  ['1.2.840.10045.4.3.2', ['sha256', 'ec']],
  ['1.2.840.10045.4.3.3', ['sha384', 'ec']],
  ['1.2.840.10045.4.3.4', ['sha512', 'ec']],
  ['1.3.101.112', [null, 'ed25519']],
  ['1.3.101.113', [null, 'ed448']],
])

/** The request for `leaf` (issued by `issuer`) and the CertID the answer must carry. */
export interface PreparedOcspRequest {
  readonly der: Buffer
  readonly certId: CertID
}

function sha1 (data: ArrayBuffer | Uint8Array): ArrayBuffer {
  const d = createHash('sha1').update(data instanceof Uint8Array ? data : new Uint8Array(data)).digest()
  return d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)
}

/** RFC 6960 §4.1.1 CertID with SHA-1, the hash every responder supports (RFC 5019 §2.1.1). */
export function ocspCertId (leaf: X509Certificate, issuer: X509Certificate): CertID {
  const l = AsnConvert.parse(leaf.raw, Certificate)
  const i = AsnConvert.parse(issuer.raw, Certificate)
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA1, parameters: null }),
    // the DER of the issuer's subject as it appears in the issuer certificate, and the key's BIT STRING content
    issuerNameHash: new OctetString(sha1(AsnConvert.serialize(i.tbsCertificate.subject))),
    issuerKeyHash: new OctetString(sha1(i.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)),
    serialNumber: l.tbsCertificate.serialNumber,
  })
}

/** An unsigned request without a nonce (RFC 5019 §2.1: cacheable by the responder and by us). */
export function buildOcspRequest (leaf: X509Certificate, issuer: X509Certificate): PreparedOcspRequest {
  const certId = ocspCertId(leaf, issuer)
  const req = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certId })] }) })
  return { der: Buffer.from(AsnConvert.serialize(req)), certId }
}

function bytes (b: ArrayBuffer | OctetString): Buffer {
  return b instanceof OctetString ? Buffer.from(b.buffer) : Buffer.from(b)
}

/** INTEGER content bytes compared as numbers (a leading 0x00 pad is not significant). */
function sameSerial (a: ArrayBuffer, b: ArrayBuffer): boolean {
  const strip = (x: Buffer): Buffer => { let i = 0; while (i < x.length - 1 && x[i] === 0) i++; return x.subarray(i) }
  return strip(Buffer.from(a)).equals(strip(Buffer.from(b)))
}

function sameCertId (a: CertID, b: CertID): boolean {
  return a.hashAlgorithm.algorithm === b.hashAlgorithm.algorithm &&
    bytes(a.issuerNameHash).equals(bytes(b.issuerNameHash)) &&
    bytes(a.issuerKeyHash).equals(bytes(b.issuerKeyHash)) &&
    sameSerial(a.serialNumber, b.serialNumber)
}

function verifies (algorithm: string, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  const alg = SIGNATURE_ALGORITHMS.get(algorithm)
  // the key type must fit the algorithm: no RSA key checked "as" ECDSA or the reverse
  if (alg === undefined || key.asymmetricKeyType !== alg[1]) return false
  try {
    return verifySignature(alg[0], data, key, signature)
  } catch {
    return false
  }
}

/**
 * RFC 6960 §4.2.2.2: a delegated responder's certificate is issued directly by the CA that issued the certificate
 * in question and carries id-kp-OCSPSigning; it must be valid now. (id-pkix-ocsp-nocheck is accepted as the
 * RFC intends: the responder certificate's own revocation is not checked.)
 */
function authorizedResponder (cert: X509Certificate, issuer: X509Certificate, at: number): boolean {
  if (!(cert.keyUsage ?? []).includes(id_kp_OCSPSigning)) return false
  if (cert.issuer !== issuer.subject) return false
  const from = Date.parse(cert.validFrom)
  const to = Date.parse(cert.validTo)
  if (!(at >= from - OCSP_CLOCK_SKEW_MS && at <= to)) return false
  try {
    return cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

/**
 * Parse and check a DER OCSPResponse for the request `certId` about a certificate issued by `issuer`, at `at`
 * (epoch ms). Returns the answer, or throws OcspError. Never throws anything else.
 */
export function parseOcspResponse (body: Uint8Array, certId: CertID, issuer: X509Certificate, at: number): OcspAnswer {
  let res: OCSPResponse
  let basic: BasicOCSPResponse
  try {
    res = AsnConvert.parse(body, OCSPResponse)
  } catch (err) {
    throw new OcspError('malformed', `not an OCSPResponse: ${(err as Error).message}`)
  }
  if (res.responseStatus !== OCSPResponseStatus.successful) {
    throw new OcspError('responder_error', `responder answered ${OCSPResponseStatus[res.responseStatus] ?? res.responseStatus} (RFC 6960 §4.2.1)`)
  }
  if (res.responseBytes?.responseType !== id_pkix_ocsp_basic) throw new OcspError('malformed', 'no id-pkix-ocsp-basic response')
  try {
    basic = AsnConvert.parse(res.responseBytes.response, BasicOCSPResponse)
  } catch (err) {
    throw new OcspError('malformed', `not a BasicOCSPResponse: ${(err as Error).message}`)
  }
  const tbs = basic.tbsResponseDataRaw
  if (tbs === undefined) throw new OcspError('malformed', 'the signed part of the response could not be isolated')
  const data = Buffer.from(tbs)
  const signature = Buffer.from(basic.signature)
  const alg = basic.signatureAlgorithm.algorithm

  // the CA itself, else any certificate in the response that the CA authorised for OCSP signing
  let signer: string | undefined
  if (verifies(alg, issuer.publicKey, data, signature)) signer = 'ca'
  else {
    for (const c of basic.certs ?? []) {
      let cert: X509Certificate
      try {
        cert = new X509Certificate(Buffer.from(AsnConvert.serialize(c)))
      } catch { continue }
      if (authorizedResponder(cert, issuer, at) && verifies(alg, cert.publicKey, data, signature)) {
        signer = cert.subject.replace(/\n/g, ', ')
        break
      }
    }
  }
  if (signer === undefined) throw new OcspError('bad_signature', 'the response is not signed by the issuing CA nor by a responder it authorised (id-kp-OCSPSigning)')

  const single = basic.tbsResponseData.responses.find(r => sameCertId(r.certID, certId))
  if (single === undefined) throw new OcspError('mismatch', 'the response does not answer for this certificate (CertID differs)')
  const thisUpdate = single.thisUpdate.getTime()
  const nextUpdate = single.nextUpdate?.getTime()
  if (!Number.isFinite(thisUpdate) || thisUpdate > at + OCSP_CLOCK_SKEW_MS) throw new OcspError('stale', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`)
  if (nextUpdate !== undefined && (!Number.isFinite(nextUpdate) || nextUpdate < at - OCSP_CLOCK_SKEW_MS)) {
    throw new OcspError('stale', `the response expired at its nextUpdate ${new Date(nextUpdate).toISOString()}`)
  }
  const s = single.certStatus
  const status: OcspStatus = s.revoked !== undefined ? 'revoked' : (s.good !== undefined ? 'good' : 'unknown')
  return { status, thisUpdate, nextUpdate, revocationTime: s.revoked?.revocationTime.getTime(), signer }
}
