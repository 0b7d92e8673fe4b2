import '../pki/reflect-metadata.js' // must precede @peculiar/x509 (tsyringe needs Reflect.getMetadata at import)
import type { X509Certificate } from 'node:crypto'
import { X509Crl, X509Certificate as PeculiarCertificate } from '@peculiar/x509'

/**
 * CRL files parsed and matched to their issuing CA, for CrlStore (crl.ts), which imports this module only when it
 * loads its first file: @peculiar/x509 is ~10 MB of a gateway's RSS, too much for every gateway to carry for a feature
 * few routes use.
 */

export type ParsedCrl = X509Crl
export type CrlParser = (data: Buffer) => Promise<ParsedCrl[]>

/** A configured CA certificate, in both libraries' forms. */
export interface CrlIssuer {
  readonly node: X509Certificate
  readonly peculiar: PeculiarCertificate
}

// RFC 7468 §5 says "X509 CRL"; some tools (including @peculiar/x509) write "CRL"
const PEM_CRL = /-----BEGIN (?:X509 )?CRL-----[\s\S]*?-----END (?:X509 )?CRL-----/g

export async function parseCrlFile (data: Buffer): Promise<ParsedCrl[]> {
  const text = data.toString('latin1')
  if (text.includes('-----BEGIN')) {
    const blocks = [...text.matchAll(PEM_CRL)].map(m => m[0])
    if (blocks.length === 0) throw new Error('no "-----BEGIN X509 CRL-----" block')
    return blocks.map(b => new X509Crl(b))
  }
  return [new X509Crl(new Uint8Array(data))]
}

export function crlIssuers (certs: readonly X509Certificate[]): CrlIssuer[] {
  return certs.map(node => ({ node, peculiar: new PeculiarCertificate(new Uint8Array(node.raw)) }))
}

/** Find the CA among `issuers` whose key verifies `crl`; undefined if none does. */
export async function verifyCrl (crl: ParsedCrl, issuers: readonly CrlIssuer[]): Promise<X509Certificate | undefined> {
  for (const i of issuers) {
    // Name first (cheap), then the signature (RFC 5280 §6.3.3 (f)).
    if (normalizeName(i.peculiar.subject) !== normalizeName(crl.issuer)) continue
    try {
      if (await crl.verify({ publicKey: i.peculiar })) return i.node
    } catch { /* unsupported algorithm or malformed key: not this issuer */ }
  }
  return undefined
}

function normalizeName (n: string): string {
  return n.replace(/\s*,\s*/g, ',').toLowerCase()
}
