import { X509Certificate, hash } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { Socket } from 'node:net'
import { LRUCache } from 'lru-cache'
import { peerDerFromSession } from './session-peer.js'

/** Subject alternative names, split by type (RFC 5280 §4.2.1.6). */
export interface SubjectAltNames {
  readonly dns: readonly string[]
  readonly uri: readonly string[]
  readonly ip: readonly string[]
  readonly email: readonly string[]
}

/** A client certificate as presented on the TLS session, with what plugins need precomputed. */
export interface PeerCertificate {
  readonly x509: X509Certificate
  readonly der: Buffer
  readonly pem: string
  /** RFC 8705 §3.1: base64url (no padding) SHA-256 of the DER. */
  readonly x5tS256: string
  /** RFC 4514 string, most specific RDN first: `CN=client1,O=Example Org`. */
  readonly subject: string
  readonly issuer: string
  /** Upper-case hex, no separators. */
  readonly serialNumber: string
  readonly commonName: string | undefined
  readonly organization: string | undefined
  readonly subjectAltNames: SubjectAltNames
  readonly validFrom: Date
  readonly validTo: Date
  /** Intermediates the client sent after the leaf (leaf excluded), as OpenSSL reports them. */
  readonly chain: readonly X509Certificate[]
}

/** What the TLS session proves about the client. Computed once per connection (not per request). */
export interface TlsIdentity {
  readonly protocol: string | null
  readonly cipher: string | null
  readonly resumed: boolean
  /** The leaf certificate the client presented, or null if none was presented. */
  readonly certificate: PeerCertificate | null
  /** True only if a certificate was presented and it verified against the listener's client_ca. */
  readonly verified: boolean
  /** OpenSSL's verification error code when a certificate was presented but did not verify. */
  readonly verifyError: string | null
}

const IDENTITY = Symbol('certbound.tlsIdentity')
type WithIdentity = TLSSocket & { [IDENTITY]?: TlsIdentity | null }

/**
 * The TLS identity of a connection, computed on first use and cached on the socket.
 * Never trusts `socket.authorized` alone: Node can report `authorized: true` with no peer certificate on a
 * resumed TLS 1.3 session (nodejs/node#35317), so "verified" requires an actual certificate as well.
 */
export function tlsIdentity (socket: Socket): TlsIdentity | null {
  const s = socket as WithIdentity
  const cached = s[IDENTITY]
  if (cached !== undefined) return cached
  if (typeof s.getPeerX509Certificate !== 'function' || !s.encrypted) {
    s[IDENTITY] = null
    return null
  }
  const id = computeIdentity(s)
  s[IDENTITY] = id
  return id
}

function computeIdentity (s: TLSSocket): TlsIdentity {
  const authorized = s.authorized === true
  const certificate = peerCertificate(s, authorized)
  const verified = authorized && certificate !== null
  const err = s.authorizationError
  return Object.freeze({
    protocol: s.getProtocol() ?? null,
    cipher: s.getCipher()?.standardName ?? null,
    resumed: s.isSessionReused(),
    certificate,
    verified,
    verifyError: certificate === null ? null : (verified ? null : (err === undefined || err === null ? 'UNABLE_TO_VERIFY' : String(err))),
  })
}

interface DetailedCert { raw?: Buffer, fingerprint256: string, issuerCertificate?: DetailedCert }

/**
 * Parsed client certificates by their x5t#S256. Every way Node offers to read the peer certificate makes
 * OpenSSL 3 decode its key again (60–140 µs on a new connection: most of a new connection's cost in the
 * gateway's own code), so a client that reconnects with a known certificate is recognised from the serialised
 * session instead (session-peer.ts) and reuses the frozen PeerCertificate — and any verdict a plugin cached on
 * it (which still re-checks time-dependent validity). Only certificates whose chain the handshake verified are
 * cached: an unverified one may come with a different chain next time, and is described afresh.
 */
const CERTS = new LRUCache<string, PeerCertificate>({ max: 4096 })

function peerCertificate (s: TLSSocket, authorized: boolean): PeerCertificate | null {
  if (authorized) {
    const known = knownPeer(s)
    if (known !== undefined) return known
  }
  const leaf = s.getPeerCertificate(false) as DetailedCert | undefined
  if (leaf?.raw === undefined) return null
  const key = x5tS256(leaf.raw)
  const hit = authorized ? CERTS.get(key) : undefined
  if (hit !== undefined) return hit
  // getPeerCertificate(true) for the chain; never getPeerX509Certificate() before it: on Node 20 that makes
  // later getPeerCertificate(true) calls lose issuerCertificate
  const detailed = s.getPeerCertificate(true) as DetailedCert | undefined
  const chain = detailed?.raw === undefined ? [] : peerChain(detailed)
  const pc = describeCertificate(new X509Certificate(leaf.raw), chain)
  if (authorized) CERTS.set(key, pc)
  return pc
}

/** The cached description of the session's peer certificate, without asking OpenSSL to decode it. */
function knownPeer (s: TLSSocket): PeerCertificate | undefined {
  const session = s.getSession()
  if (session === undefined) return undefined
  try {
    const der = peerDerFromSession(session)
    return der === null ? undefined : CERTS.get(x5tS256(der))
  } finally {
    session.fill(0) // it holds the session's master secret
  }
}

function peerChain (leaf: DetailedCert): X509Certificate[] {
  // issuerCertificate links the chain; it ends where an entry is its own issuer
  const out: X509Certificate[] = []
  const seen = new Set<string>([leaf.fingerprint256])
  let c = leaf.issuerCertificate
  while (c !== undefined && c !== null && c.raw !== undefined && out.length < 10 && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256)
    out.push(new X509Certificate(c.raw))
    c = c.issuerCertificate
  }
  return out
}

/** Describe a certificate: DER, PEM, thumbprint, RFC 4514 names, SANs. Used for peers and for configured certs. */
export function describeCertificate (x509: X509Certificate, chain: readonly X509Certificate[] = []): PeerCertificate {
  const der = x509.raw
  const subjectRdns = parseNodeDn(x509.subject)
  return Object.freeze({
    x509,
    der,
    pem: x509.toString(),
    x5tS256: x5tS256(der),
    subject: rfc4514(subjectRdns),
    issuer: rfc4514(parseNodeDn(x509.issuer)),
    serialNumber: x509.serialNumber.toUpperCase(),
    commonName: lastValue(subjectRdns, 'CN'),
    organization: lastValue(subjectRdns, 'O'),
    subjectAltNames: parseSan(x509.subjectAltName),
    validFrom: new Date(x509.validFrom),
    validTo: new Date(x509.validTo),
    chain: Object.freeze([...chain]),
  })
}

/** RFC 8705 §3.1 thumbprint of a DER certificate. */
export function x5tS256 (der: Uint8Array): string {
  // one-shot: half the cost of createHash() for a certificate-sized input (no Hash object)
  return hash('sha256', der, 'base64url')
}

type Rdn = readonly [type: string, value: string]

/**
 * Node prints a DN one attribute per line, least specific first ("O=Example Org\nCN=client1"); values with
 * special characters are JSON-quoted (CVE-2021-44532 hardening). Parse that back into (type, value) pairs.
 */
export function parseNodeDn (dn: string | undefined): Rdn[] {
  if (dn === undefined || dn === '') return []
  const out: Rdn[] = []
  for (const line of dn.split('\n')) {
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    const type = line.slice(0, eq)
    let value = line.slice(eq + 1)
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      try { value = JSON.parse(value) as string } catch { /* keep the raw text */ }
    }
    out.push([type, value])
  }
  return out
}

/** RFC 4514 §2: most specific RDN first, comma-separated, special characters escaped. */
export function rfc4514 (rdns: readonly Rdn[]): string {
  const parts: string[] = []
  for (let i = rdns.length - 1; i >= 0; i--) parts.push(rdns[i][0] + '=' + escapeDnValue(rdns[i][1]))
  return parts.join(',')
}

function escapeDnValue (v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, '\\$&')
  if (out.startsWith(' ') || out.startsWith('#')) out = '\\' + out
  if (out.endsWith(' ') && !out.endsWith('\\ ')) out = out.slice(0, -1) + '\\ '
  return out
}

function lastValue (rdns: readonly Rdn[], type: string): string | undefined {
  for (let i = rdns.length - 1; i >= 0; i--) if (rdns[i][0] === type) return rdns[i][1]
  return undefined
}

/** Node's subjectAltName: `DNS:localhost, IP Address:127.0.0.1, URI:spiffe://x`, JSON-quoted when needed. */
export function parseSan (san: string | undefined): SubjectAltNames {
  const dns: string[] = []; const uri: string[] = []; const ip: string[] = []; const email: string[] = []
  if (san !== undefined && san !== '') {
    for (const entry of splitSan(san)) {
      const c = entry.indexOf(':')
      if (c <= 0) continue
      const type = entry.slice(0, c)
      let value = entry.slice(c + 1)
      if (value.startsWith('"')) { try { value = JSON.parse(value) as string } catch { /* raw */ } }
      if (type === 'DNS') dns.push(value)
      else if (type === 'URI') uri.push(value)
      else if (type === 'IP Address') ip.push(value)
      else if (type === 'email') email.push(value)
    }
  }
  return Object.freeze({ dns, uri, ip, email })
}

function splitSan (s: string): string[] {
  const out: string[] = []
  let cur = ''; let inQuote = false
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]
    if (inQuote) {
      cur += ch
      if (ch === '\\') { cur += s[++i] ?? ''; continue }
      if (ch === '"') inQuote = false
      continue
    }
    if (ch === '"') { inQuote = true; cur += ch; continue }
    if (ch === ',' && s[i + 1] === ' ') { out.push(cur); cur = ''; i++; continue }
    cur += ch
  }
  if (cur !== '') out.push(cur)
  return out
}
