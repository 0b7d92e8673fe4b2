import { describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashSecret, verifySecret, openKeyStore } from '../../src/authorization-server/index.js'
import { parseSecretHash } from '../../src/authorization-server/secret-hash.js'
import { parseDn } from '../../src/authorization-server/distinguished-name.js'
import { canonicalIp } from '../../src/authorization-server/schema.js'
import { parseForm } from '../../src/authorization-server/form-body.js'

describe('hashSecret / verifySecret (client_secret_hash, `certbound hash-secret`)', () => {
  it('produces a PHC scrypt string that verifies only the same secret', async () => {
    const h = await hashSecret('s3cret, with unicode é')
    expect(h).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
    expect(await verifySecret('s3cret, with unicode é', h)).toBe(true)
    expect(await verifySecret('s3cret, with unicode e', h)).toBe(false)
    expect(await verifySecret('', h)).toBe(false)
  })
  it('salts: the same secret hashes differently', async () => {
    expect(await hashSecret('x')).not.toBe(await hashSecret('x'))
  })
  it('NFC-normalises, so a composed and a decomposed é are the same secret', async () => {
    expect(await verifySecret('e\u0301', await hashSecret('\u00e9'))).toBe(true)
  })
  it('refuses malformed hashes and out-of-bounds parameters', async () => {
    expect(await verifySecret('x', 'plain')).toBe(false)
    expect(parseSecretHash('$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA')).toBeUndefined()
    expect(parseSecretHash('$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA')).toBeDefined()
    await expect(hashSecret('')).rejects.toThrow(TypeError)
  })
})

describe('RFC 4514 DN parsing', () => {
  it('normalises types and spacing, unescapes values', () => {
    expect(parseDn('cn = client1 , o=Example Org')).toEqual([['CN', 'client1'], ['O', 'Example Org']])
    expect(parseDn('CN=Doe\\, John+UID=jd,O=Acme\\2C Inc.')).toEqual([['CN', 'Doe, John'], ['UID', 'jd'], ['O', 'Acme, Inc.']])
    expect(parseDn('E=ops@example.com,2.5.4.3=x,OID.2.5.4.10=y')).toEqual([['EMAILADDRESS', 'ops@example.com'], ['CN', 'x'], ['O', 'y']])
    expect(parseDn('CN=caf\\C3\\A9')).toEqual([['CN', 'café']])
  })
  it('refuses malformed DNs', () => {
    for (const bad of ['', 'not a dn', 'CN=', 'CN=a,', 'CN=#0403', 'CN=a\\', 'CN="q"']) expect(parseDn(bad), bad).toBeUndefined()
  })
})

describe('IP canonicalisation (tls_client_auth_san_ip)', () => {
  it('expands IPv6 and validates IPv4', () => {
    expect(canonicalIp('2001:db8::1')).toBe(canonicalIp('2001:0DB8:0:0:0:0:0:0001'))
    expect(canonicalIp('::ffff:10.0.0.1')).toBe('0:0:0:0:0:ffff:a00:1')
    expect(canonicalIp('10.0.0.1')).toBe('10.0.0.1')
    for (const bad of ['10.0.0.256', '1::2::3', 'x', '1:2:3:4:5:6:7:8:9']) expect(canonicalIp(bad), bad).toBeUndefined()
  })
})

describe('form decoding (RFC 6749 Appendix B)', () => {
  it('decodes + as space and percent-escapes; drops empty values; allows repeated resource', () => {
    const p = parseForm(Buffer.from('scope=a+b%20c&empty=&resource=x&resource=y&flag'))
    expect(p.get('scope')).toEqual(['a b c'])
    expect(p.has('empty')).toBe(false)
    expect(p.get('resource')).toEqual(['x', 'y'])
    expect(p.has('flag')).toBe(false)
  })
})

describe('key store: concurrent first start (workers)', () => {
  it('two processes creating the store at once agree on one key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-ks-race-'))
    try {
      const file = join(dir, 'keys.json')
      const sets = await Promise.all([openKeyStore(file, 'ES256'), openKeyStore(file, 'ES256'), openKeyStore(file, 'ES256')])
      expect(new Set(sets.map(s => s.signing.kid)).size).toBe(1)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
