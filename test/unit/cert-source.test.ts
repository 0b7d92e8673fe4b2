import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import fc from 'fast-check'
import {
  CERTIFICATE_HEADER_FORMATS, compileTrustedIps, createCertSource, decodeBase64Certificate, decodeCertificateHeader,
  decodeRfc9440, decodeUrlEncodedPem, decodeXfcc, derToPem, encodeCertificateHeader, nginxEscapeUriComponent,
  parseCertificateHeader, parseXfccElements, type CertificateHeaderFormat,
} from '../../src/auth/cert-source.js'
import { GatewayError } from '../../src/errors/index.js'
import { x5tS256 } from '../../src/server/peer.js'
import { PluginConfigError, type PluginInstance } from '../../src/pipeline/types.js'
import { createMtlsPki, type MtlsPki } from './helpers/mtls-pki.js'
import { startHarness, type Harness } from './helpers/plugin-harness.js'

let pki: MtlsPki
beforeAll(async () => { pki = await createMtlsPki() })
afterAll(() => pki.cleanup())

describe('certificate header parsers', () => {
  it('url_encoded: nginx $ssl_client_escaped_cert', () => {
    const v = nginxEscapeUriComponent(pki.client1.certPem)
    expect(v.startsWith('-----BEGIN%20CERTIFICATE-----%0A')).toBe(true)
    expect(v.endsWith('-----END%20CERTIFICATE-----%0A')).toBe(true)
    expect(decodeUrlEncodedPem(v)?.equals(pki.client1.der)).toBe(true)
    // other terminators: lower-case hex, or only the newlines escaped
    const lower = nginxEscapeUriComponent(pki.client1.certPem).replace(/%([0-9A-F]{2})/g, (_m, h: string) => '%' + h.toLowerCase())
    expect(decodeUrlEncodedPem(lower)?.equals(pki.client1.der)).toBe(true)
    expect(decodeUrlEncodedPem(pki.client1.certPem.replace(/\n/g, '%0A'))?.equals(pki.client1.der)).toBe(true)
    expect(decodeUrlEncodedPem('%E0%A4%A')).toBeNull()
    expect(decodeUrlEncodedPem('hello')).toBeNull()
  })

  it('base64_encoded: base64 of the DER, of the PEM, or a bare PEM body with line breaks', () => {
    expect(decodeBase64Certificate(pki.client1.der.toString('base64'))?.equals(pki.client1.der)).toBe(true)
    expect(decodeBase64Certificate(Buffer.from(pki.client1.certPem).toString('base64'))?.equals(pki.client1.der)).toBe(true)
    const body = pki.client1.certPem.split('\n').filter(l => !l.startsWith('-----')).join('\n')
    expect(decodeBase64Certificate(body)?.equals(pki.client1.der)).toBe(true)
    expect(decodeBase64Certificate('!!!')).toBeNull()
    expect(decodeBase64Certificate(Buffer.from('hello world').toString('base64'))).toBeNull()
  })

  it('rfc9440: an RFC 8941 byte sequence', () => {
    expect(decodeRfc9440(`:${pki.client1.der.toString('base64')}:`)?.equals(pki.client1.der)).toBe(true)
    expect(decodeRfc9440(pki.client1.der.toString('base64'))).toBeNull()
    expect(decodeRfc9440(':a b:')).toBeNull()
    expect(decodeRfc9440('::')).toBeNull()
  })

  it('xfcc: takes the Cert of the last element (the proxy nearest to us)', () => {
    const first = `By=spiffe://a;Hash=00;Cert="${nginxEscapeUriComponent(pki.client2.certPem)}"`
    const last = `By=spiffe://b;Hash=11;Subject="/C=SE/O=Callista, Enterprise/CN=x";URI=;Cert="${nginxEscapeUriComponent(pki.client1.certPem)}"`
    expect(decodeXfcc(`${first},${last}`)?.equals(pki.client1.der)).toBe(true)
    expect(decodeXfcc(first)?.equals(pki.client2.der)).toBe(true)
    expect(decodeXfcc('By=x;Hash=y')).toBeNull()
    expect(decodeXfcc('Cert="unterminated')).toBeNull()
    expect(parseXfccElements('a=1;b="x,y;z=\\"q\\"",c=3')).toEqual([new Map([['a', '1'], ['b', 'x,y;z="q"']]), new Map([['c', '3']])])
  })

  it('parseCertificateHeader returns an X509Certificate or null', () => {
    for (const f of CERTIFICATE_HEADER_FORMATS) {
      expect(parseCertificateHeader(f, encodeCertificateHeader(f, pki.client1.der))?.raw.equals(pki.client1.der)).toBe(true)
      expect(parseCertificateHeader(f, encodeCertificateHeader(f, Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])))).toBeNull()
    }
    expect(parseCertificateHeader('rfc9440', ':' + 'A'.repeat(40_000) + ':')).toBeNull()
  })
})

describe('certificate header parsers (properties)', () => {
  const format = fc.constantFrom<CertificateHeaderFormat>(...CERTIFICATE_HEADER_FORMATS)

  it('never throw on arbitrary input', () => {
    fc.assert(fc.property(format, fc.string({ maxLength: 2000 }), (f, s) => {
      decodeCertificateHeader(f, s)
      parseCertificateHeader(f, s)
    }), { numRuns: 2000 })
    fc.assert(fc.property(format, fc.string({ unit: 'binary', maxLength: 500 }), (f, s) => {
      parseCertificateHeader(f, s)
    }), { numRuns: 1000 })
  })

  it('never throw on mutations of a valid header', () => {
    fc.assert(fc.property(format, fc.nat(), fc.string({ minLength: 1, maxLength: 5 }), (f, pos, ins) => {
      const v = encodeCertificateHeader(f, pki.client1.der)
      const i = pos % v.length
      const mutated = v.slice(0, i) + ins + v.slice(i + 1)
      const r = parseCertificateHeader(f, mutated)
      // a mutation either still decodes to some certificate or is refused; it never throws
      expect(r === null || r.raw.length > 0).toBe(true)
    }), { numRuns: 1000 })
  })

  it('round-trip: encode(der) → decode = der, for any DER-looking bytes', () => {
    fc.assert(fc.property(format, fc.uint8Array({ minLength: 1, maxLength: 3000 }), (f, bytes) => {
      const der = Buffer.concat([Buffer.from([0x30]), Buffer.from(bytes)])
      expect(decodeCertificateHeader(f, encodeCertificateHeader(f, der))?.equals(der)).toBe(true)
    }), { numRuns: 500 })
  })

  it('nginx escaping: only unreserved characters stay, and it decodes back', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (s) => {
      const e = nginxEscapeUriComponent(s)
      expect(e).toMatch(/^[A-Za-z0-9\-._~%]*$/)
      expect(decodeURIComponent(e)).toBe(s)
      // encodeURIComponent plus the five characters it leaves alone
      expect(e).toBe(encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase()))
    }))
  })

  it('derToPem writes 64-character lines like OpenSSL', () => {
    expect(derToPem(pki.client1.der)).toBe(pki.client1.x509.toString())
  })
})

describe('trusted_ips', () => {
  it('accepts IPv4/IPv6 addresses and CIDRs, and matches IPv4-mapped peers', () => {
    const s = compileTrustedIps(['10.0.0.0/8', '192.168.1.7', '::1/128', 'fd00::/8'])
    expect(s.has('10.1.2.3')).toBe(true)
    expect(s.has('::ffff:10.1.2.3')).toBe(true)
    expect(s.has('192.168.1.7')).toBe(true)
    expect(s.has('192.168.1.8')).toBe(false)
    expect(s.has('::1')).toBe(true)
    expect(s.has('fd12::1')).toBe(true)
    expect(s.has('fe80::1')).toBe(false)
    expect(s.has('')).toBe(false)
  })

  it('refuses a malformed entry with its index', () => {
    for (const bad of ['10.0.0.0/33', 'nope', '1.2.3.4/8/9', '::1/129', '10.0.0.0/-1']) {
      let err: unknown
      try { compileTrustedIps(['127.0.0.1', bad]) } catch (e) { err = e }
      expect(err).toBeInstanceOf(PluginConfigError)
      expect((err as PluginConfigError).path).toEqual(['trusted_ips', 1])
    }
  })
})

describe('createCertSource over real TLS: certificate_header honoured only from trusted_ips', () => {
  function probe (src: ReturnType<typeof createCertSource>): PluginInstance {
    return {
      access (ctx) {
        const r = src.resolve(ctx)
        ctx.setUpstreamHeader('x-source', r.source)
        if (r.certificate === null) throw new GatewayError('CB_ERR_CERT_MISSING', { detail: r.reason })
        ctx.setUpstreamHeader('x-thumbprint', r.certificate.x5tS256)
      },
    }
  }
  const harnesses: Harness[] = []
  afterAll(async () => { for (const h of harnesses.reverse()) await h.close() })
  const start = async (trustedIps: string[], format: CertificateHeaderFormat): Promise<Harness> => {
    const h = await startHarness(probe(createCertSource({ header: 'X-Client-Cert', format, trustedIps })), { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
    harnesses.push(h)
    return h
  }

  for (const format of CERTIFICATE_HEADER_FORMATS) {
    it(`${format}: from a trusted peer, the header's certificate (not the proxy's TLS one)`, async () => {
      const h = await start(['127.0.0.1/32'], format)
      const a = await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem, headers: { 'x-client-cert': encodeCertificateHeader(format, pki.client1.der) } })
      expect(a.status).toBe(200)
      expect(a.upstream.get('x-source')).toBe('header')
      expect(a.upstream.get('x-thumbprint')).toBe(x5tS256(pki.client1.der))
    })

    it(`${format}: from an untrusted peer, the header is ignored and the TLS certificate used`, async () => {
      const h = await start(['10.0.0.0/8', 'fd00::/8'], format)
      const a = await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem, headers: { 'x-client-cert': encodeCertificateHeader(format, pki.client1.der) } })
      expect(a.status).toBe(200)
      expect(a.upstream.get('x-source')).toBe('tls')
      expect(a.upstream.get('x-thumbprint')).toBe(x5tS256(pki.client2.der))
    })
  }

  it('from a trusted peer, a malformed, missing or repeated header yields no certificate (fail closed)', async () => {
    const h = await start(['127.0.0.1'], 'url_encoded')
    const bad = await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem, headers: { 'x-client-cert': 'garbage' } })
    expect(bad.status).toBe(401)
    expect(bad.body.detail).toContain('not a url_encoded certificate')
    const missing = await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem })
    expect(missing.status).toBe(401)
    const v = encodeCertificateHeader('url_encoded', pki.client1.der)
    const twice = await h.send({ certPem: pki.client2.certPem, keyPem: pki.client2.keyPem, headers: { 'x-client-cert': [v, v] } })
    expect(twice.status).toBe(401)
    expect(twice.body.detail).toContain('more than one')
  })

  it('without trusted_ips, the header is never read', async () => {
    const h = await start([], 'url_encoded')
    const a = await h.send({ headers: { 'x-client-cert': encodeCertificateHeader('url_encoded', pki.client1.der) } })
    expect(a.status).toBe(401)
    expect(a.upstream.size).toBe(0)
  })
})
