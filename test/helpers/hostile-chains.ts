/**
 * Certificates an attacker can make without any trusted key, for the path-building tests: a "loop" of CA
 * certificates that share one subject name and one key (each verifies the others), and arbitrary
 * subject/issuer/key combinations. ECDSA P-256 with @peculiar/x509, in memory.
 */
import '../../src/pki/reflect-metadata.js'
import { X509Certificate } from 'node:crypto'
import * as px from '@peculiar/x509'

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 86_400_000
let serial = 0x7000

export interface HostileCert {
  readonly x509: X509Certificate
  readonly certPem: string
  readonly keyPem: string
}

export function newKeys (): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>
}

export interface CertSpec {
  readonly subject: string
  readonly issuer: string
  readonly keys: CryptoKeyPair
  readonly signer: CryptoKeyPair
  readonly ca: boolean
}

/** A certificate with exactly the given names and keys (SKID from its key, AKID from the signer's). */
export async function makeCert (spec: CertSpec): Promise<HostileCert> {
  serial += 1
  const cert = await px.X509CertificateGenerator.create({
    serialNumber: serial.toString(16),
    subject: spec.subject,
    issuer: spec.issuer,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    publicKey: spec.keys.publicKey,
    signingKey: spec.signer.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new px.BasicConstraintsExtension(spec.ca, undefined, true),
      new px.KeyUsagesExtension(spec.ca ? px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign : px.KeyUsageFlags.digitalSignature, true),
      await px.SubjectKeyIdentifierExtension.create(spec.keys.publicKey),
      await px.AuthorityKeyIdentifierExtension.create(spec.signer.publicKey),
    ],
  })
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', spec.keys.privateKey)
  return {
    x509: new X509Certificate(Buffer.from(cert.rawData)),
    certPem: cert.toString('pem') + '\n',
    keyPem: px.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
  }
}

export interface LoopChain {
  /** An end-entity certificate issued by "CN=Loop CA". */
  readonly leaf: HostileCert
  /** k CA certificates, all subject = issuer = "CN=Loop CA", one shared key, distinct serials. */
  readonly loop: readonly HostileCert[]
}

/** The issue-12 freeze: k same-named, same-key CA certificates behind one leaf (k!/(k−8)! orderings). */
export async function makeLoopChain (k: number, leafSubject = 'CN=loop-client'): Promise<LoopChain> {
  const caKeys = await newKeys()
  const loop: HostileCert[] = []
  for (let i = 0; i < k; i++) loop.push(await makeCert({ subject: 'CN=Loop CA', issuer: 'CN=Loop CA', keys: caKeys, signer: caKeys, ca: true }))
  const leaf = await makeCert({ subject: leafSubject, issuer: 'CN=Loop CA', keys: await newKeys(), signer: caKeys, ca: false })
  return { leaf, loop }
}
