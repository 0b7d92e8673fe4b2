/**
 * A throwaway PKI for the certificate tests, made with @peculiar/x509 (ECDSA P-256): unlike the openssl CLI it can
 * date certificates in the past or the future, and it signs CRLs. Everything lives in memory unless written out.
 */
import '../../../src/pki/reflect-metadata.js'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as px from '@peculiar/x509'

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 86_400_000

export interface Issued {
  readonly name: string
  readonly certPem: string
  readonly keyPem: string
  readonly der: Buffer
  readonly x509: X509Certificate
  readonly serial: string
  readonly keys: CryptoKeyPair
  readonly cert: px.X509Certificate
}

let serialCounter = 0x1000
function nextSerial (): string {
  serialCounter += 1
  return serialCounter.toString(16).padStart(4, '0')
}

async function finish (name: string, cert: px.X509Certificate, keys: CryptoKeyPair): Promise<Issued> {
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey)
  const der = Buffer.from(cert.rawData)
  return {
    name,
    certPem: cert.toString('pem') + '\n',
    keyPem: px.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
    der,
    x509: new X509Certificate(der),
    serial: cert.serialNumber,
    keys,
    cert,
  }
}

export interface IssueOptions {
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly ca?: boolean
  readonly eku?: readonly string[] | null
  readonly san?: ReadonlyArray<{ type: 'dns' | 'ip' | 'url', value: string }>
  readonly serial?: string
  /** More extensions (Authority Information Access, CRL Distribution Points...). */
  readonly extensions?: readonly px.Extension[]
}

/** A self-signed root CA. `name` is in DER order, least specific first: "C=SE,O=Example,CN=Root". */
export async function makeRoot (name: string, opts: IssueOptions = {}): Promise<Issued> {
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair
  const cert = await px.X509CertificateGenerator.createSelfSigned({
    serialNumber: opts.serial ?? nextSerial(),
    name,
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY),
    notAfter: opts.notAfter ?? new Date(Date.now() + 365 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new px.BasicConstraintsExtension(true, undefined, true),
      new px.KeyUsagesExtension(px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign, true),
      await px.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return finish(name, cert, keys)
}

/** A certificate issued by `issuer`: a CA when opts.ca, else an end-entity (clientAuth unless opts.eku says otherwise). */
export async function issue (name: string, issuer: Issued, opts: IssueOptions = {}): Promise<Issued> {
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair
  const extensions: px.Extension[] = [
    new px.BasicConstraintsExtension(opts.ca === true, undefined, true),
    new px.KeyUsagesExtension(opts.ca === true ? px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign : px.KeyUsageFlags.digitalSignature, true),
    await px.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await px.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
  ]
  const eku = opts.eku === undefined ? (opts.ca === true ? null : [px.ExtendedKeyUsage.clientAuth]) : opts.eku
  if (eku !== null) extensions.push(new px.ExtendedKeyUsageExtension([...eku], false))
  if (opts.san !== undefined) extensions.push(new px.SubjectAlternativeNameExtension(opts.san.map(s => ({ type: s.type, value: s.value })), false))
  extensions.push(...(opts.extensions ?? []))
  const cert = await px.X509CertificateGenerator.create({
    serialNumber: opts.serial ?? nextSerial(),
    subject: name,
    issuer: issuer.cert.subject,
    notBefore: opts.notBefore ?? new Date(Date.now() - DAY),
    notAfter: opts.notAfter ?? new Date(Date.now() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: ALG,
    extensions,
  })
  return finish(name, cert, keys)
}

/** A CRL from `issuer` revoking `serials` (hex). */
export async function makeCrl (issuer: Issued, serials: readonly string[], opts: { thisUpdate?: Date, nextUpdate?: Date | null } = {}): Promise<{ pem: string, der: Buffer }> {
  const crl = await px.X509CrlGenerator.create({
    issuer: issuer.cert.subject,
    thisUpdate: opts.thisUpdate ?? new Date(Date.now() - 60_000),
    nextUpdate: opts.nextUpdate === null ? undefined : (opts.nextUpdate ?? new Date(Date.now() + DAY)),
    signingAlgorithm: ALG,
    signingKey: issuer.keys.privateKey,
    entries: serials.map(serialNumber => ({ serialNumber, revocationDate: new Date(Date.now() - 60_000) })),
  })
  // as openssl writes it (RFC 7468 §5 label)
  return { pem: px.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n', der: Buffer.from(crl.rawData) }
}

export interface MtlsPki {
  readonly dir: string
  readonly root: Issued
  readonly otherRoot: Issued
  readonly intermediate: Issued
  readonly server: Issued
  /** O=Callista Enterprise AB, by root. */
  readonly client1: Issued
  readonly client2: Issued
  /** O=Acme, by root (for subject_dn). */
  readonly acme: Issued
  /** By otherRoot, same O as client1. */
  readonly stranger: Issued
  /** By intermediate. */
  readonly chained: Issued
  readonly expired: Issued
  readonly notYetValid: Issued
  /** extendedKeyUsage serverAuth only. */
  readonly serverOnly: Issued
  /** Write a file into `dir`; returns its absolute path. */
  write (name: string, content: string | Buffer): string
  cleanup (): void
}

/** Root, an unrelated root, an intermediate, a 127.0.0.1 server certificate and a zoo of client certificates. */
export async function createMtlsPki (): Promise<MtlsPki> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-mtls-'))
  const root = await makeRoot('C=SE,O=Callista Enterprise AB,CN=Test Root CA')
  const otherRoot = await makeRoot('C=SE,O=Callista Enterprise AB,CN=Other Root CA')
  const intermediate = await issue('C=SE,O=Callista Enterprise AB,CN=Test Intermediate CA', root, { ca: true })
  const server = await issue('C=SE,O=Callista Enterprise AB,CN=localhost', root, {
    eku: [px.ExtendedKeyUsage.serverAuth],
    san: [{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }],
  })
  const client1 = await issue('C=SE,O=Callista Enterprise AB,CN=client1', root)
  const client2 = await issue('C=SE,O=Callista Enterprise AB,CN=client2', root)
  const acme = await issue('C=SE,O=Acme,CN=client3', root)
  const stranger = await issue('C=SE,O=Callista Enterprise AB,CN=client1', otherRoot)
  const chained = await issue('C=SE,O=Callista Enterprise AB,CN=chained', intermediate)
  const expired = await issue('C=SE,O=Callista Enterprise AB,CN=expired', root, { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) })
  const notYetValid = await issue('C=SE,O=Callista Enterprise AB,CN=future', root, { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 30 * DAY) })
  const serverOnly = await issue('C=SE,O=Callista Enterprise AB,CN=server-only', root, { eku: [px.ExtendedKeyUsage.serverAuth] })
  return {
    dir, root, otherRoot, intermediate, server, client1, client2, acme, stranger, chained, expired, notYetValid, serverOnly,
    write (name, content) {
      const p = join(dir, name)
      writeFileSync(p, content)
      return p
    },
    cleanup () { rmSync(dir, { recursive: true, force: true }) },
  }
}
