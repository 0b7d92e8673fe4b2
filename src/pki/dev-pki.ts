/**
 * Throwaway PKI for development and tests: CAs, server and client certificates, CRLs. Pure Node (WebCrypto +
 * @peculiar/x509); no openssl binary at run time. Not for production CAs: keys are written unencrypted.
 */
import './reflect-metadata.js'
import * as x509 from '@peculiar/x509'
import { KeyObject, X509Certificate, createPrivateKey, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'

x509.cryptoProvider.set(globalThis.crypto)

/** A certificate with its private key, in the forms callers need. */
export interface IssuedCert {
  /** PEM, one certificate, ending in a newline. */
  certPem: string
  /** PKCS#8 PEM ("PRIVATE KEY"), unencrypted. */
  keyPem: string
  x509: X509Certificate
  /** Upper-case hex without separators, as `X509Certificate.serialNumber` prints it. */
  serialHex: string
}

export interface CertOptions {
  /**
   * RFC 4514 order, most specific first, as users write it: `'CN=client1, O=Example Org'`. Encoded in reverse
   * so the DER reads O then CN, as `openssl req -subj "/O=Example Org/CN=client1"` would produce.
   */
  subject: string
  kind: 'ca' | 'server' | 'client'
  dns?: string[]
  ips?: string[]
  uris?: string[]
  emails?: string[]
  /** Default: now - 1 hour (or notAfter - lifetime when notAfter is already past). */
  notBefore?: Date
  /** Default: now + 825 days; CAs now + 10 years. */
  notAfter?: Date
  /** Default P-256 (ECDSA with SHA-256). */
  keyAlg?: 'P-256' | 'RSA-2048'
  /** basicConstraints pathLenConstraint for CAs. Default: none for a root, 0 for an intermediate. */
  pathLength?: number
}

export type CaOptions = Omit<CertOptions, 'kind'> & {
  /** Sign with this CA instead of self-signing: the result is an intermediate CA. */
  issuer?: IssuedCert
}

export interface CrlOptions {
  /** Default: now - 1 hour. Also the revocation date of every entry. */
  thisUpdate?: Date
  /** Default: thisUpdate + 30 days. */
  nextUpdate?: Date
}

export interface DevPkiOptions {
  /** Names for the server certificate. IPv4/IPv6 literals become IP SANs, the rest DNS SANs. */
  hosts?: string[]
}

export interface DevPkiResult {
  /** Absolute path of the output directory. */
  dir: string
  /** Base names of the files written by this call, in write order (empty when everything existed). */
  files: string[]
  /** Pairs that existed and were kept as they are (`ca`, `server`…): delete them to regenerate. */
  kept: string[]
}

type KeyAlg = NonNullable<CertOptions['keyAlg']>
type LeafKind = Exclude<CertOptions['kind'], 'ca'>

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
/** 825 days: the longest TLS server certificate lifetime Apple platforms still accept. */
const LEAF_LIFETIME_MS = 825 * DAY_MS
const CA_LIFETIME_MS = 3650 * DAY_MS
/** Back-date so a peer whose clock lags ours still accepts a certificate or CRL made a moment ago. */
const CLOCK_SKEW_MS = HOUR_MS
const CRL_LIFETIME_MS = 30 * DAY_MS

const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const OID_CRL_NUMBER = '2.5.29.20'

/** Create a CA: self-signed (a root), or signed by `opts.issuer` (an intermediate). */
export async function createCa (opts: CaOptions): Promise<IssuedCert> {
  const signer = opts.issuer === undefined ? undefined : await signerFor(opts.issuer)
  const pathLength = opts.pathLength ?? (signer === undefined ? undefined : 0)
  return await mint(opts, { ca: true, pathLength, keyUsage: CA_KEY_USAGE }, signer, CA_LIFETIME_MS)
}

/**
 * Issue a certificate signed by `ca`: basicConstraints CA:FALSE, keyUsage digitalSignature (+keyEncipherment for
 * RSA), EKU serverAuth or clientAuth by `kind`, SKI/AKI, SANs, a random 16-byte serial. `kind: 'ca'` issues an
 * intermediate CA, as `createCa({ ...opts, issuer: ca })`.
 */
export async function issueCert (ca: IssuedCert, opts: CertOptions): Promise<IssuedCert> {
  if (opts.kind === 'ca') return await createCa({ ...opts, issuer: ca })
  const signer = await signerFor(ca)
  return await mint(opts, leafProfile(opts.kind, opts.keyAlg), signer, LEAF_LIFETIME_MS)
}

/** A self-signed client certificate, for RFC 8705 §2.2 `self_signed_tls_client_auth`. */
export async function selfSignedClient (opts: Omit<CertOptions, 'kind'>): Promise<IssuedCert> {
  return await mint(opts, leafProfile('client', opts.keyAlg), undefined, LEAF_LIFETIME_MS)
}

/**
 * A CRL (RFC 5280 §5) signed by `ca`, listing `revoked` (certificates it issued, or serials in hex).
 * @returns PEM with the "X509 CRL" label that OpenSSL and Node's `crl` option read.
 */
export async function createCrl (ca: IssuedCert, revoked: Array<IssuedCert | string>, opts: CrlOptions = {}): Promise<string> {
  const signer = await signerFor(ca)
  const thisUpdate = opts.thisUpdate ?? new Date(Date.now() - CLOCK_SKEW_MS)
  const nextUpdate = opts.nextUpdate ?? new Date(thisUpdate.getTime() + CRL_LIFETIME_MS)
  if (nextUpdate <= thisUpdate) throw new TypeError('createCrl: nextUpdate must be after thisUpdate')
  const serials = new Set(revoked.map(function serialOf (r) { return revokedSerial(ca, r) }))
  const crl = await x509.X509CrlGenerator.create({
    issuer: signer.name,
    thisUpdate,
    nextUpdate,
    signingKey: signer.key,
    signingAlgorithm: signingAlgorithm(signer.key),
    entries: [...serials].map(function entry (serialNumber) { return { serialNumber, revocationDate: thisUpdate } }),
    extensions: [
      new x509.AuthorityKeyIdentifierExtension(signer.keyId),
      // RFC 5280 §5.2.3 requires a CRL number; seconds since the epoch increase with every CRL we make, statelessly
      new x509.Extension(OID_CRL_NUMBER, false, derInteger(Math.floor(thisUpdate.getTime() / 1000))),
    ],
  })
  // @peculiar/x509 labels CRLs "CRL"; OpenSSL (and so Node's tls `crl` option) only reads "X509 CRL"
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n'
}

/**
 * Write a development PKI into `outDir`: ca, server (CN=localhost), client1 and client2, each as `.crt` + `.key`
 * (keys 0600, certificates 0644), all EC P-256. An existing CA (ca.crt and ca.key) is reused and only missing
 * files are created; a fresh CA replaces every leaf, since leftovers from another CA could never verify.
 * Half a CA (one of ca.crt / ca.key) is an error: a CA key is never replaced silently.
 */
export async function writeDevPki (outDir: string, opts: DevPkiOptions = {}): Promise<DevPkiResult> {
  const dir = resolve(outDir)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const existing = loadExistingCa(dir)
  const ca = existing ?? await createCa({ subject: DEV_CA_SUBJECT })
  const files = existing === undefined ? writePair(dir, 'ca', ca) : []
  const kept = existing === undefined ? [] : ['ca']
  const hosts = splitHosts(opts.hosts ?? ['localhost', '127.0.0.1'])
  const leaves: ReadonlyArray<readonly [string, CertOptions]> = [
    ['server', { kind: 'server', subject: DEV_SERVER_SUBJECT, dns: hosts.dns, ips: hosts.ips }],
    ['client1', { kind: 'client', subject: 'CN=client1, O=Example Org' }],
    ['client2', { kind: 'client', subject: 'CN=client2, O=Example Org' }],
  ]
  for (const [name, certOpts] of leaves) {
    if (existing !== undefined && pairExists(dir, name)) { kept.push(name); continue }
    files.push(...writePair(dir, name, await issueCert(ca, certOpts)))
  }
  return { dir, files, kept }
}

/**
 * An `IssuedCert` from PEM text (e.g. files on disk). Checks that the key belongs to the certificate and
 * normalises the key to PKCS#8 (SEC1 "EC PRIVATE KEY" and PKCS#1 "RSA PRIVATE KEY" are accepted).
 */
export function loadIssuedCert (certPem: string, keyPem: string): IssuedCert {
  const cert = new X509Certificate(certPem)
  const key = createPrivateKey(keyPem)
  if (!cert.checkPrivateKey(key)) throw new TypeError(`the private key does not match the certificate ${cert.subject.replace(/\n/g, ', ')}`)
  return issued(cert, key)
}

// ---------------------------------------------------------------------------------------------------------------
// Minting

/** What kind of certificate to make, beyond names and validity. */
interface Profile {
  ca: boolean
  pathLength: number | undefined
  keyUsage: number
  eku?: string[]
}

/** The CA that signs a certificate, ready to use. */
interface Signer {
  /** The CA's subject exactly as encoded in its certificate, so issuer and subject match byte for byte. */
  name: x509.Name
  key: CryptoKey
  /** The CA's subject key identifier (hex), which becomes the issued certificate's AKI. */
  keyId: string
}

const CA_KEY_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign

function leafProfile (kind: LeafKind, keyAlg: KeyAlg | undefined): Profile {
  // RFC 5280 §4.2.1.3 / RFC 8446 §4.4.2.4: an RSA key may do TLS 1.2 RSA key transport (keyEncipherment);
  // an ECDSA key only ever signs
  const keyUsage = x509.KeyUsageFlags.digitalSignature | (keyAlg === 'RSA-2048' ? x509.KeyUsageFlags.keyEncipherment : 0)
  return { ca: false, pathLength: undefined, keyUsage, eku: [kind === 'server' ? EKU_SERVER_AUTH : EKU_CLIENT_AUTH] }
}

/** Generate a key pair and a certificate for it, signed by `signer` or self-signed when there is none. */
async function mint (opts: Omit<CertOptions, 'kind'>, profile: Profile, signer: Signer | undefined, lifetimeMs: number): Promise<IssuedCert> {
  const subject = toX509Name(opts.subject)
  const { notBefore, notAfter } = validity(opts, lifetimeMs)
  const keys = await generateKeyPair(opts.keyAlg ?? 'P-256')
  const signingKey = signer?.key ?? keys.privateKey
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject,
    issuer: signer?.name ?? subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithm(signingKey),
    extensions: await extensionsFor(profile, keys.publicKey, signer?.keyId, subjectAltNames(opts)),
  })
  return issued(new X509Certificate(cert.toString('pem')), KeyObject.from(keys.privateKey))
}

async function extensionsFor (profile: Profile, publicKey: CryptoKey, authorityKeyId: string | undefined, sans: x509.JsonGeneralName[]): Promise<x509.Extension[]> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(publicKey)
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(profile.ca, profile.pathLength, true),
    new x509.KeyUsagesExtension(profile.keyUsage, true),
  ]
  if (profile.eku !== undefined) extensions.push(new x509.ExtendedKeyUsageExtension(profile.eku, false))
  extensions.push(ski)
  // RFC 5280 §4.2.1.1: the AKI key id is the issuer's SKI, so a verifier picks the right key among same-named CAs;
  // a self-signed certificate points at itself, as openssl's default `authorityKeyIdentifier=keyid:always` does
  extensions.push(new x509.AuthorityKeyIdentifierExtension(authorityKeyId ?? ski.keyId))
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans))
  return extensions
}

function issued (cert: X509Certificate, key: KeyObject): IssuedCert {
  return Object.freeze({
    certPem: cert.toString(),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    x509: cert,
    serialHex: cert.serialNumber.toUpperCase(),
  })
}

async function signerFor (ca: IssuedCert): Promise<Signer> {
  if (!ca.x509.ca) throw new TypeError(`not a CA certificate: ${ca.x509.subject.replace(/\n/g, ', ')}`)
  const cert = new x509.X509Certificate(ca.certPem)
  const [key, keyId] = await Promise.all([importSigningKey(ca.keyPem), subjectKeyId(cert)])
  return { name: cert.subjectName, key, keyId }
}

async function subjectKeyId (cert: x509.X509Certificate): Promise<string> {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)
  if (ski !== null) return ski.keyId
  // A CA loaded from disk may lack an SKI; RFC 5280 §4.2.1.2 method (1) is what SubjectKeyIdentifierExtension uses
  return (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId
}

/**
 * RFC 5280 §4.1.2.2: positive and at most 20 octets; CA/Browser Forum BR §7.1: at least 64 bits from a CSPRNG.
 * Forcing the top bits to 01 keeps the number positive and exactly 16 octets in DER (no 0x00 pad, no shortening).
 */
function randomSerialHex (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] & 0x3f) | 0x40
  return bytes.toString('hex')
}

function validity (opts: Pick<CertOptions, 'notBefore' | 'notAfter'>, lifetimeMs: number): { notBefore: Date, notAfter: Date } {
  const now = Date.now()
  const notAfter = opts.notAfter ?? new Date(now + lifetimeMs)
  // Asking only for notAfter in the past (an expired certificate) still yields a well-formed validity period
  const expired = notAfter.getTime() <= now - CLOCK_SKEW_MS
  const notBefore = opts.notBefore ?? new Date(expired ? notAfter.getTime() - lifetimeMs : now - CLOCK_SKEW_MS)
  if (notBefore >= notAfter) throw new TypeError(`notBefore (${notBefore.toISOString()}) must be before notAfter (${notAfter.toISOString()})`)
  return { notBefore, notAfter }
}

function subjectAltNames (opts: Pick<CertOptions, 'dns' | 'ips' | 'uris' | 'emails'>): x509.JsonGeneralName[] {
  for (const ip of opts.ips ?? []) if (isIP(ip) === 0) throw new TypeError(`not an IP address: ${ip}`)
  return [
    ...(opts.dns ?? []).map(function dns (value): x509.JsonGeneralName { return { type: 'dns', value } }),
    ...(opts.ips ?? []).map(function ip (value): x509.JsonGeneralName { return { type: 'ip', value } }),
    ...(opts.uris ?? []).map(function uri (value): x509.JsonGeneralName { return { type: 'url', value } }),
    ...(opts.emails ?? []).map(function email (value): x509.JsonGeneralName { return { type: 'email', value } }),
  ]
}

function revokedSerial (ca: IssuedCert, entry: IssuedCert | string): string {
  if (typeof entry !== 'string') {
    // A serial is only meaningful to the CA that assigned it
    if (!entry.x509.checkIssued(ca.x509)) throw new TypeError(`createCrl: ${entry.x509.subject.replace(/\n/g, ', ')} was not issued by this CA`)
    return entry.serialHex
  }
  const hex = entry.replace(/[\s:]/g, '')
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new TypeError(`createCrl: not a hex serial number: ${entry}`)
  return hex.toUpperCase()
}

/** DER INTEGER of a non-negative safe integer. */
function derInteger (n: number): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = '00' + hex
  const body = Buffer.from(hex, 'hex')
  return Uint8Array.from([0x02, body.length, ...body])
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

const WEBCRYPTO_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
/** The hash that matches each curve's strength (RFC 5480 §4), for CA keys loaded from disk. */
const ECDSA_HASHES: Readonly<Record<string, string>> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512' }

async function generateKeyPair (alg: KeyAlg): Promise<CryptoKeyPair> {
  // extractable: the private key is exported once, to PKCS#8 PEM
  if (alg === 'P-256') return await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
  if (alg === 'RSA-2048') {
    return await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])
  }
  throw new TypeError(`unsupported keyAlg ${String(alg)}; use 'P-256' or 'RSA-2048'`)
}

async function importSigningKey (keyPem: string): Promise<CryptoKey> {
  const key = createPrivateKey(keyPem)
  return await crypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), importParams(key), false, ['sign'])
}

function importParams (key: KeyObject): EcKeyImportParams | RsaHashedImportParams {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  const curve = key.asymmetricKeyType === 'ec' ? WEBCRYPTO_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined
  if (curve === undefined) throw new TypeError(`unsupported CA key (${String(key.asymmetricKeyType)}); use EC P-256/P-384/P-521 or RSA`)
  return { name: 'ECDSA', namedCurve: curve }
}

function signingAlgorithm (key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name !== 'ECDSA') return key.algorithm // RSA keys carry their hash from generate/import
  return { name: 'ECDSA', hash: ECDSA_HASHES[(key.algorithm as EcKeyAlgorithm).namedCurve] ?? 'SHA-256' }
}

// ---------------------------------------------------------------------------------------------------------------
// Distinguished names

/** One attribute of a DN as written: type (a short name or dotted OID) and unescaped value. */
type DnAttribute = readonly [type: string, value: string]

/** Short names users write, to OIDs (RFC 4514 §3 plus the ones openssl prints). */
const DN_TYPES: Readonly<Record<string, string>> = {
  CN: '2.5.4.3', SN: '2.5.4.4', SERIALNUMBER: '2.5.4.5', C: '2.5.4.6', L: '2.5.4.7', ST: '2.5.4.8',
  STREET: '2.5.4.9', O: '2.5.4.10', OU: '2.5.4.11', T: '2.5.4.12', TITLE: '2.5.4.12', GN: '2.5.4.42',
  G: '2.5.4.42', DC: '0.9.2342.19200300.100.1.25', UID: '0.9.2342.19200300.100.1.1',
  E: '1.2.840.113549.1.9.1', EMAILADDRESS: '1.2.840.113549.1.9.1',
}
const IA5_TYPES = new Set([DN_TYPES.DC, DN_TYPES.E])

/**
 * RFC 4514 writes the most specific RDN first; DER (and openssl's `-subj /O=…/CN=…`) has it last. So
 * 'CN=client1, O=Example Org' becomes the DER sequence O, CN, which Node prints as "O=Example Org\nCN=client1".
 */
function toX509Name (dn: string): x509.Name {
  const rdns = parseDn(dn).reverse()
  return new x509.Name(rdns.map(function rdnJson (rdn) {
    const json: Record<string, x509.JsonAttributeObject[]> = {}
    for (const [type, value] of rdn) (json[type] ??= []).push(encodeDnValue(type, value))
    return json
  }))
}

function encodeDnValue (oid: string, value: string): x509.JsonAttributeObject {
  // RFC 5280 App. A: countryName is PrintableString; emailAddress and domainComponent are IA5String.
  // Everything else UTF8String (RFC 5280 §4.1.2.6), as openssl writes with its default string_mask utf8only.
  if (oid === DN_TYPES.C) return { printableString: value }
  if (IA5_TYPES.has(oid)) return { ia5String: value }
  return { utf8String: value }
}

/** Parse 'CN=a\, b+UID=1, O=Org' into RDNs in written order. Accepts spaces around separators. */
function parseDn (dn: string): DnAttribute[][] {
  const rdns: DnAttribute[][] = []
  let rdn: DnAttribute[] = []
  for (const { text, multiValued } of splitDn(dn)) {
    rdn.push(parseAttribute(text, dn))
    if (!multiValued) {
      rdns.push(rdn)
      rdn = []
    }
  }
  if (rdn.length > 0) rdns.push(rdn)
  return rdns
}

/** Split at unescaped ',' (next RDN) and '+' (same RDN), keeping escapes for `unescapeDnValue`. */
function splitDn (dn: string): Array<{ text: string, multiValued: boolean }> {
  const parts: Array<{ text: string, multiValued: boolean }> = []
  let text = ''
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]
    if (ch === '\\') {
      text += ch + (dn[i + 1] ?? '')
      i++
    } else if (ch === ',' || ch === '+') {
      parts.push({ text, multiValued: ch === '+' })
      text = ''
    } else {
      text += ch
    }
  }
  parts.push({ text, multiValued: false })
  return parts
}

function parseAttribute (text: string, dn: string): DnAttribute {
  const eq = text.indexOf('=')
  const type = text.slice(0, Math.max(eq, 0)).trim()
  const oid = /^\d+(\.\d+)+$/.test(type) ? type : DN_TYPES[type.toUpperCase()]
  if (eq <= 0 || oid === undefined) throw new TypeError(`cannot parse distinguished name "${dn}" at "${text.trim()}"`)
  return [oid, unescapeDnValue(trimDnValue(text.slice(eq + 1)))]
}

/** Drop the spaces users put around separators, but not an escaped trailing space ("a\ "). */
function trimDnValue (raw: string): string {
  const s = raw.trimStart()
  let end = s.length
  while (end > 0 && s[end - 1] === ' ' && s[end - 2] !== '\\') end--
  return s.slice(0, end)
}

/** RFC 4514 §3: `\` + special character, or `\` + two hex digits (a UTF-8 byte). */
function unescapeDnValue (raw: string): string {
  const chars = Array.from(raw)
  const bytes: number[] = []
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] === '\\' && /^[0-9a-fA-F]{2}$/.test((chars[i + 1] ?? '') + (chars[i + 2] ?? ''))) {
      bytes.push(parseInt(chars[i + 1] + chars[i + 2], 16))
      i += 2
      continue
    }
    if (chars[i] === '\\' && i + 1 < chars.length) i++
    bytes.push(...Buffer.from(chars[i], 'utf8'))
  }
  return Buffer.from(bytes).toString('utf8')
}

// ---------------------------------------------------------------------------------------------------------------
// Files

const DEV_CA_SUBJECT = 'CN=certbound dev CA, O=certbound dev'
const DEV_SERVER_SUBJECT = 'CN=localhost, O=certbound dev'
const KEY_MODE = 0o600
const CERT_MODE = 0o644

function loadExistingCa (dir: string): IssuedCert | undefined {
  const certFile = join(dir, 'ca.crt')
  const keyFile = join(dir, 'ca.key')
  const hasCert = existsSync(certFile)
  const hasKey = existsSync(keyFile)
  if (hasCert && hasKey) return loadIssuedCert(readFileSync(certFile, 'utf8'), readFileSync(keyFile, 'utf8'))
  if (hasKey) throw new Error(`${keyFile} exists without ca.crt; refusing to replace a CA key (restore ca.crt or remove ca.key)`)
  if (hasCert) throw new Error(`${certFile} exists without ca.key; cannot issue certificates (restore ca.key or remove ca.crt)`)
  return undefined
}

function pairExists (dir: string, name: string): boolean {
  return existsSync(join(dir, `${name}.crt`)) && existsSync(join(dir, `${name}.key`))
}

function writePair (dir: string, name: string, cert: IssuedCert): string[] {
  writeFileWithMode(join(dir, `${name}.crt`), cert.certPem, CERT_MODE)
  writeFileWithMode(join(dir, `${name}.key`), cert.keyPem, KEY_MODE)
  return [`${name}.crt`, `${name}.key`]
}

function writeFileWithMode (path: string, data: string, mode: number): void {
  // Replace rather than truncate: open(2) keeps an existing file's (maybe looser) mode, and 'wx' refuses to
  // follow a symlink planted at the path
  rmSync(path, { force: true })
  writeFileSync(path, data, { mode, flag: 'wx' })
  chmodSync(path, mode) // the umask may have cleared bits we want (0644 under umask 077)
}

function splitHosts (hosts: readonly string[]): { dns: string[], ips: string[] } {
  const dns: string[] = []
  const ips: string[] = []
  for (const host of hosts) {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
    if (isIP(bare) !== 0) ips.push(bare)
    else dns.push(host)
  }
  return { dns, ips }
}
