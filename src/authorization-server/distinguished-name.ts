import { parseNodeDn } from '../server/peer.js'
import type { X509Certificate } from 'node:crypto'

/** One attribute of a DN: canonical (upper-case, alias-resolved) type and the unescaped value. */
export type DnAttribute = readonly [type: string, value: string]

/** Attribute type synonyms and OIDs → the short name OpenSSL (and so Node) prints, upper-cased. */
const ALIASES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'SERIALNUMBER',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  S: 'ST',
  '2.5.4.9': 'STREET',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.12': 'TITLE',
  '2.5.4.42': 'GN',
  GIVENNAME: 'GN',
  SURNAME: 'SN',
  '0.9.2342.19200300.100.1.1': 'UID',
  USERID: 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  DOMAINCOMPONENT: 'DC',
  '1.2.840.113549.1.9.1': 'EMAILADDRESS',
  E: 'EMAILADDRESS',
  EMAIL: 'EMAILADDRESS',
}

export function canonicalType (t: string): string {
  const u = t.trim().replace(/^oid\./i, '').toUpperCase()
  return ALIASES[u] ?? u
}

/**
 * Parse an RFC 4514 string (`CN=client1,O=Example Org`) into its attributes, most specific first, values
 * unescaped (RFC 4514 §2.4: `\,` and `\2C` forms). Multi-valued RDNs (`+`) are flattened in written order.
 * Spaces around `,`, `+` and `=` are ignored. Undefined if malformed or if a value uses the `#hex` (BER) form.
 */
export function parseDn (dn: string): DnAttribute[] | undefined {
  const out: DnAttribute[] = []
  let i = 0
  const n = dn.length
  const skipSpaces = () => { while (i < n && dn[i] === ' ') i++ }
  skipSpaces()
  if (i === n) return undefined
  for (;;) {
    skipSpaces()
    const eq = dn.indexOf('=', i)
    if (eq < 0) return undefined
    const type = dn.slice(i, eq).trim()
    if (!/^(?:[A-Za-z][A-Za-z0-9-]*|(?:oid\.|OID\.)?\d+(?:\.\d+)*)$/.test(type)) return undefined
    i = eq + 1
    skipSpaces()
    if (dn[i] === '#') return undefined
    const bytes: number[] = []
    let trailingSpaces = 0 // unescaped trailing spaces are not part of the value
    while (i < n && dn[i] !== ',' && dn[i] !== '+' && dn[i] !== ';') {
      const ch = dn[i]
      if (ch === '\\') {
        const a = dn[i + 1]; const b = dn[i + 2]
        if (a !== undefined && b !== undefined && /^[0-9A-Fa-f]{2}$/.test(a + b)) { bytes.push(parseInt(a + b, 16)); i += 3 } else if (a !== undefined && ' "#+,;<=>\\'.includes(a)) { bytes.push(a.charCodeAt(0)); i += 2 } else return undefined
        trailingSpaces = 0
        continue
      }
      if (ch === '"') return undefined
      const cp = dn.codePointAt(i)!
      const enc = Buffer.from(String.fromCodePoint(cp), 'utf8')
      bytes.push(...enc)
      trailingSpaces = ch === ' ' ? trailingSpaces + 1 : 0
      i += cp > 0xffff ? 2 : 1
    }
    const raw = Buffer.from(bytes.slice(0, bytes.length - trailingSpaces))
    let value: string
    try { value = new TextDecoder('utf-8', { fatal: true }).decode(raw) } catch { return undefined }
    if (value === '') return undefined
    out.push([canonicalType(type), value])
    if (i >= n) break
    i++ // separator
    if (i >= n) return undefined
  }
  return out
}

/** A certificate's subject as attributes, most specific first (the order of RFC 4514 strings). */
export function certificateSubject (x509: X509Certificate): DnAttribute[] {
  return parseNodeDn(x509.subject).reverse().map(([t, v]) => [canonicalType(t), v] as const)
}

/** Exact DN equality: same attributes in the same order; types compared canonically, values as written. */
export function dnEquals (a: readonly DnAttribute[], b: readonly DnAttribute[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false
  return true
}
