import { createHash, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'
import { MULTIPLE, type RequestContext } from '../pipeline/context.js'
import { PluginConfigError } from '../pipeline/types.js'
import { describeCertificate, type PeerCertificate } from '../server/peer.js'
import { CidrSet } from '../net/cidr.js'

/**
 * The client certificate a request is bound to: the TLS session's, or — only when the direct peer is a trusted
 * TLS terminator (`trusted_ips`) — one forwarded in a header, in a declared format. The parsers are pure,
 * total functions (they return null, never throw), so they can be property-tested against hostile input.
 */

/** The header formats TLS terminators use to forward a client certificate. */
export const CERTIFICATE_HEADER_FORMATS = ['url_encoded', 'base64_encoded', 'rfc9440', 'xfcc'] as const
export type CertificateHeaderFormat = typeof CERTIFICATE_HEADER_FORMATS[number]

/** Longest header value parsed; a certificate chain larger than this is hostile input. */
export const MAX_CERTIFICATE_HEADER_LENGTH = 32 * 1024

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/

/** Strict base64 (standard alphabet, optional padding, whitespace ignored) → bytes; null if not base64. */
export function decodeBase64Strict (s: string): Buffer | null {
  const compact = s.replace(/[\s]+/g, '')
  if (compact.length === 0 || !BASE64.test(compact)) return null
  const unpadded = compact.replace(/=+$/, '')
  if (unpadded.length % 4 === 1) return null
  if (compact.length !== unpadded.length && compact.length % 4 !== 0) return null
  return Buffer.from(unpadded, 'base64')
}

/** The DER of the first certificate in a PEM text; null if there is none. */
export function pemToDer (pem: string): Buffer | null {
  const m = PEM_CERT.exec(pem)
  if (m === null) return null
  return decodeBase64Strict(m[1])
}

/** DER → PEM as OpenSSL writes it (64-character lines, trailing newline). */
export function derToPem (der: Buffer): string {
  const b64 = der.toString('base64')
  let body = ''
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n'
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----\n`
}

/**
 * nginx's `$ssl_client_escaped_cert`: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) over the PEM — every byte except
 * ALPHA, DIGIT, "-", ".", "_", "~" becomes %XX with upper-case hex (newlines are %0A, "+" %2B, "/" %2F, "=" %3D).
 * Unlike encodeURIComponent it also escapes ! ' ( ) *, and it works on bytes, not UTF-16.
 */
export function nginxEscapeUriComponent (s: string): string {
  const bytes = Buffer.from(s, 'utf8')
  let out = ''
  for (const b of bytes) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e) out += String.fromCharCode(b)
    else out += '%' + (b < 16 ? '0' : '') + b.toString(16).toUpperCase()
  }
  return out
}

function percentDecode (s: string): string | null {
  try {
    return decodeURIComponent(s)
  } catch {
    return null
  }
}

/** `url_encoded`: a URL-encoded PEM (nginx `$ssl_client_escaped_cert`, Callista's X-Client-Cert). */
export function decodeUrlEncodedPem (value: string): Buffer | null {
  const pem = percentDecode(value.trim())
  return pem === null ? null : pemToDer(pem)
}

/** `base64_encoded`: base64 of a PEM text, or base64 of the DER (which is also a bare PEM body). */
export function decodeBase64Certificate (value: string): Buffer | null {
  const v = value.trim()
  if (v.startsWith('-----BEGIN')) return pemToDer(v)
  const bytes = decodeBase64Strict(v)
  if (bytes === null) return null
  // A DER certificate starts with a SEQUENCE tag; base64 of a PEM decodes to "-----BEGIN".
  if (bytes.length > 0 && bytes[0] === 0x30) return bytes
  const text = bytes.toString('latin1')
  return text.includes('-----BEGIN CERTIFICATE-----') ? pemToDer(text) : null
}

/** `rfc9440`: `Client-Cert: :<base64 DER>:` — an RFC 8941 §3.3.5 byte sequence. */
export function decodeRfc9440 (value: string): Buffer | null {
  const v = value.trim()
  if (v.length < 3 || v[0] !== ':' || v[v.length - 1] !== ':') return null
  const inner = v.slice(1, -1)
  // RFC 8941 byte sequences hold no whitespace
  if (/\s/.test(inner)) return null
  return decodeBase64Strict(inner)
}

/**
 * Split an Envoy `x-forwarded-client-cert` value into elements (`,`) of `key=value` pairs (`;`), honouring
 * double-quoted values (which may contain `,;=` and backslash escapes). Null on an unterminated quote.
 */
export function parseXfccElements (value: string): Array<Map<string, string>> | null {
  const elements: Array<Map<string, string>> = []
  let pairs = new Map<string, string>()
  let key = ''
  let val = ''
  let inKey = true
  let quoted = false
  const endPair = (): void => {
    const k = key.trim().toLowerCase()
    if (k !== '') pairs.set(k, inKey ? '' : val)
    key = ''; val = ''; inKey = true
  }
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]
    if (quoted) {
      if (ch === '\\' && i + 1 < value.length) { val += value[++i]; continue }
      if (ch === '"') { quoted = false; continue }
      val += ch
      continue
    }
    if (inKey) {
      if (ch === '=') { inKey = false; continue }
      if (ch === ';') { endPair(); continue }
      if (ch === ',') { endPair(); elements.push(pairs); pairs = new Map(); continue }
      key += ch
      continue
    }
    if (ch === '"' && val.trim() === '') { val = ''; quoted = true; continue }
    if (ch === ';') { endPair(); continue }
    if (ch === ',') { endPair(); elements.push(pairs); pairs = new Map(); continue }
    val += ch
  }
  if (quoted) return null
  endPair()
  elements.push(pairs)
  return elements
}

/**
 * `xfcc`: Envoy's `x-forwarded-client-cert`. Each proxy appends an element; the last one was added by the proxy
 * that talks to us, so its `Cert` (a URL-encoded PEM) is the client certificate.
 */
export function decodeXfcc (value: string): Buffer | null {
  const elements = parseXfccElements(value)
  if (elements === null || elements.length === 0) return null
  const cert = elements[elements.length - 1].get('cert')
  if (cert === undefined || cert === '') return null
  return decodeUrlEncodedPem(cert)
}

const DECODERS: Record<CertificateHeaderFormat, (v: string) => Buffer | null> = {
  url_encoded: decodeUrlEncodedPem,
  base64_encoded: decodeBase64Certificate,
  rfc9440: decodeRfc9440,
  xfcc: decodeXfcc,
}

/** The DER bytes a certificate header carries, without parsing them as X.509; null if malformed. Never throws. */
export function decodeCertificateHeader (format: CertificateHeaderFormat, value: string): Buffer | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CERTIFICATE_HEADER_LENGTH) return null
  try {
    const der = DECODERS[format](value)
    return der === null || der.length === 0 ? null : der
  } catch {
    return null
  }
}

/** The certificate a header carries, parsed; null if the value is malformed or not a certificate. Never throws. */
export function parseCertificateHeader (format: CertificateHeaderFormat, value: string): X509Certificate | null {
  const der = decodeCertificateHeader(format, value)
  if (der === null) return null
  try {
    const x509 = new X509Certificate(der)
    // OpenSSL accepts some non-DER encodings (found by the property test: one flipped bit) and re-encodes them: the
    // certificate it returns is then not the bytes that were sent, and a cnf."x5t#S256" binding (RFC 8705 §3.1: the
    // hash of the DER) must not be judged on bytes nobody presented. Refused, as unparseable.
    return x509.raw.equals(der) ? x509 : null
  } catch {
    return null
  }
}

/** Encode a DER certificate the way a TLS terminator would for `format` (for tests and for forwarding). */
export function encodeCertificateHeader (format: CertificateHeaderFormat, der: Buffer): string {
  switch (format) {
    case 'url_encoded': return nginxEscapeUriComponent(derToPem(der))
    case 'base64_encoded': return der.toString('base64')
    case 'rfc9440': return `:${der.toString('base64')}:`
    // Envoy's Hash is the hex SHA-256 of the DER; informative only (never trusted)
    case 'xfcc': return `Hash=${createHash('sha256').update(der).digest('hex')};Cert="${nginxEscapeUriComponent(derToPem(der))}"`
  }
}

/**
 * Validate a trusted_ips list: IPv4/IPv6 addresses or CIDRs. Throws PluginConfigError at `[...path, i]`.
 */
export function compileTrustedIps (list: readonly string[], path: ReadonlyArray<string | number> = ['trusted_ips']): CidrSet {
  list.forEach((entry, i) => {
    const [ip, bits, extra] = entry.split('/')
    const v = isIP(ip)
    const max = v === 4 ? 32 : 128
    if (v === 0 || extra !== undefined || (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max))) {
      throw new PluginConfigError([...path, i], `"${entry}" is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1/128)`)
    }
  })
  return new CidrSet(list)
}

export interface CertSourceOptions {
  /** Header carrying the client certificate from a trusted TLS terminator; undefined = the TLS session only. */
  readonly header?: string
  readonly format?: CertificateHeaderFormat
  /** Direct peers allowed to send `header` (CIDRs). Empty = the header is never honoured. */
  readonly trustedIps?: readonly string[]
  /** Parsed header certificates kept (LRU); default 256. */
  readonly cacheSize?: number
}

export type CertSourceResult =
  | { readonly certificate: PeerCertificate, readonly source: 'tls' | 'header' }
  | { readonly certificate: null, readonly source: 'tls' | 'header', readonly reason: string }

/** Where a plugin gets the client certificate for binding. Create at load; `resolve` is the per-request part. */
export interface CertSource {
  readonly header: string | undefined
  resolve (ctx: RequestContext): CertSourceResult
}

const INVALID = Symbol('invalid-certificate-header')

/**
 * A certificate source. Without `header` (or without `trustedIps`), always the TLS session's certificate.
 * With both: from a trusted direct peer the header is the only source (the TLS session there belongs to the
 * proxy, not the client) and a missing or malformed header yields null — the caller fails closed; from any
 * other peer the header is ignored and the TLS session's certificate is used.
 */
export function createCertSource (opts: CertSourceOptions, path: ReadonlyArray<string | number> = []): CertSource {
  const header = opts.header?.toLowerCase()
  const format = opts.format ?? 'url_encoded'
  const trusted = compileTrustedIps(opts.trustedIps ?? [], [...path, 'trusted_ips'])
  const cache = new LRUCache<string, PeerCertificate | typeof INVALID>({ max: opts.cacheSize ?? 256 })

  const fromTls = (ctx: RequestContext): CertSourceResult => {
    const c = ctx.tls?.certificate ?? null
    return c === null
      ? { certificate: null, source: 'tls', reason: ctx.tls === null ? 'the request did not come over TLS' : 'no client certificate in the TLS session' }
      : { certificate: c, source: 'tls' }
  }

  if (header === undefined || trusted.size === 0) {
    return {
      header,
      resolve (ctx) {
        if (header !== undefined && ctx.log.isLevelEnabled('debug') && ctx.headers[header] !== undefined) {
          ctx.log.debug({ header, peer: ctx.remoteAddress }, 'certificate header ignored: no trusted_ips configured')
        }
        return fromTls(ctx)
      },
    }
  }

  return {
    header,
    resolve (ctx) {
      if (!trusted.has(ctx.remoteAddress)) {
        if (ctx.log.isLevelEnabled('debug') && ctx.headers[header] !== undefined) {
          ctx.log.debug({ header, peer: ctx.remoteAddress }, 'certificate header from an untrusted address ignored')
        }
        return fromTls(ctx)
      }
      // Read the raw headers: the gateway strips certificate headers from what goes upstream, not from the request.
      const v = ctx.singleHeader(header)
      if (v === undefined) return { certificate: null, source: 'header', reason: `no ${header} header from trusted proxy ${ctx.remoteAddress}` }
      if (v === MULTIPLE) return { certificate: null, source: 'header', reason: `more than one ${header} header` }
      let c = cache.get(v)
      if (c === undefined) {
        const x509 = parseCertificateHeader(format, v)
        c = x509 === null ? INVALID : describeCertificate(x509)
        cache.set(v, c)
      }
      if (c === INVALID) return { certificate: null, source: 'header', reason: `${header} is not a ${format} certificate` }
      return { certificate: c, source: 'header' }
    },
  }
}
