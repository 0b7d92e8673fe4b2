/**
 * Property-based tests (fast-check) for the parsers that read untrusted or operator-written text: the config
 * loader, request-transformer templates, and the certificate-header parsers. (Router properties live in
 * test/unit/router.test.ts; simpler cert-source properties in test/unit/cert-source.test.ts.)
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/diagnostic.js'
import { loadConfigText, type LoadOptions } from '../../src/config/validate.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { loadExtensions } from '../../src/extensions/registry.js'
import {
  CERTIFICATE_HEADER_FORMATS, createCertSource, decodeCertificateHeader, encodeCertificateHeader, nginxEscapeUriComponent,
  parseCertificateHeader, parseXfccElements, type CertificateHeaderFormat,
} from '../../src/auth/cert-source.js'
import { credentialFromClaims } from '../../src/auth/credential.js'
import plugin from '../../plugins/request-transformer/index.js'
import { compileTemplate, parseTemplate, renderTemplate, TemplateError, TEMPLATE_ROOTS, CLIENT_CERT_FIELDS, type TemplateEnv } from '../../plugins/request-transformer/template.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { build, makeCtx } from '../plugins/openid-connect/harness.js'

let pki: TestPki
let opts: LoadOptions

beforeAll(async () => {
  pki = await createTestPki()
  opts = {
    plugins: await loadPlugins(),
    env: { CB_TEST_VAR: 'from-env' },
    sections: new Map((await loadExtensions()).map(e => [e.section, e.schema])),
  }
})

afterAll(() => pki.cleanup())

// -------------------------------------------------------------------------------------------------------------
// Config loader

/** Text a user (or a bad template engine) might put after "key: ": scalars, flow collections, YAML oddities. */
const yamlish: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '', '~', 'null', 'true', 'no', 'yes', 'on', '0', '-1', '1e309', '-.inf', '.nan', '0x1F', '0o17', '1_000', '12:30:00',
    '[]', '{}', '[a, b]', '{a: 1}', '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]', '{a: {b: {c: {d: {}}}}}',
    '*alias', '&anchor x', '&a [1, *a]', '!!binary AAAA', '!!str 1', '!!int x', '!!map []', '!custom tag', '!!js/function "f(){}"',
    '"unterminated', "'single", '|', '>-', '|\n  block\n  text', '- a', ': b', '? c', '@at', '`tick`', '%YAML 1.2',
    '${{ env "CB_TEST_VAR" }}', '${{ env "CB_MISSING_VAR" }}', '${{ env }}', '"\\u0000"', '"\\x07\\r\\n"', '<<: *x', '{{', '}}',
    '- - -', '---', '...', '#comment', 'a #comment', '"a": "b"', 'key: value: more', '\t', ' ', '"' + 'x'.repeat(5000) + '"',
    'https://[::1', 'http://', '/nonexistent/file.pem', '.', '..', 'certs/../../../etc/passwd', '0.0.0.0:99999', '[::1]:0',
    '127.0.0.1:0', 'TLSv1', 'require', 'STRICT', 'strict', 'bearer', '["bearer", "introspection"]', '~^/(?<x>', '(a+)+$',
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.json({ maxDepth: 3 }),
  fc.integer().map(String),
  fc.double().map(String),
  fc.tuple(fc.string({ maxLength: 10 }), fc.nat({ max: 6 }), fc.string({ maxLength: 10 })).map(([a, indent, b]) => `${a}\n${' '.repeat(indent)}${b}`),
)

/** Known keys of a working config, each a slot a generated value can take over. */
const SLOTS = [
  'format', 'address', 'client_certificate', 'min_version', 'ciphers', 'admin_listen', 'trusted_ip', 'workers', 'log_level',
  'max_header_size', 'max_body_size', 'header_timeout', 'service_name', 'url', 'retries', 'connect_timeout', 'route_name',
  'path', 'method', 'host', 'strip_path', 'plugin_name', 'subject_dn', 'revocation_check_mode', 'issuer', 'pop', 'leeway',
  'scopes_required', 'scope', 'template', 'introspection_endpoint', 'ttl', 'as_issuer', 'as_client_id', 'extra_key',
] as const
type Slot = typeof SLOTS[number]

function configText (v: Partial<Record<Slot, string>>): string {
  const d = (slot: Slot, fallback: string): string => v[slot] ?? fallback
  return `_format_version: ${d('format', '"3.0"')}
gateway:
  listen:
    - address: ${d('address', '127.0.0.1:0')}
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: ${d('client_certificate', 'request')}
        min_version: ${d('min_version', 'TLSv1.2')}
        ciphers: ${d('ciphers', 'ECDHE-ECDSA-AES128-GCM-SHA256')}
  admin_listen: ${d('admin_listen', '127.0.0.1:0')}
  trusted_ips: [${d('trusted_ip', '10.0.0.0/8')}]
  workers: ${d('workers', '0')}
  log_level: ${d('log_level', 'info')}
  limits:
    max_header_size: ${d('max_header_size', '8192')}
    max_body_size: ${d('max_body_size', '0')}
    header_timeout: ${d('header_timeout', '5000')}
authorization_server:
  issuer: ${d('as_issuer', 'https://localhost:8443')}
  ca_certificates: ${pki.ca.certFile}
  clients:
    - client_id: ${d('as_client_id', 'client1')}
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: system-access
services:
  - name: ${d('service_name', 'svc')}
    url: ${d('url', 'http://127.0.0.1:9/x')}
    retries: ${d('retries', '1')}
    connect_timeout: ${d('connect_timeout', '1000')}
    ${d('extra_key', 'tags')}: [a]
    routes:
      - name: ${d('route_name', 'r1')}
        paths: [${d('path', '/api')}]
        methods: [${d('method', 'GET')}]
        hosts: [${d('host', 'example.test')}]
        strip_path: ${d('strip_path', 'true')}
        plugins:
          - name: ${d('plugin_name', 'mtls-auth')}
            config:
              ca_certificates: [${pki.ca.certFile}]
              subject_dn: ${d('subject_dn', '"CN=client1,.*"')}
              revocation_check_mode: ${d('revocation_check_mode', 'SKIP')}
          - name: openid-connect
            config:
              issuer: ${d('issuer', 'https://idp.example.test')}
              proof_of_possession_mtls: ${d('pop', 'strict')}
              leeway: ${d('leeway', '5')}
              scopes_required: [${d('scopes_required', 'system-access')}]
          - name: require-scopes
            config:
              scopes: [${d('scope', 'system-access')}]
          - name: request-transformer
            config:
              add:
                headers: [${d('template', '"x-consumer:$(credential.client_id)"')}]
      - name: r2
        paths: [/introspected]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${d('introspection_endpoint', 'https://idp.example.test/introspect')}
              client_id: gw
              client_secret: s3cret
              ttl: ${d('ttl', '30')}
`
}

/** Every diagnostic must point inside the text it was computed from. */
function expectPositionsInside (text: string, e: ConfigError): void {
  const lines = text.split('\n')
  expect(e.diagnostics.length).toBeGreaterThan(0)
  for (const d of e.diagnostics) {
    expect(d.file).toBe('/etc/certbound/gateway.yml')
    expect(d.line, `${d.code} ${d.path}: ${d.message}`).toBeGreaterThanOrEqual(1)
    expect(d.line).toBeLessThanOrEqual(lines.length)
    expect(d.col).toBeGreaterThanOrEqual(1)
    expect(d.col).toBeLessThanOrEqual(lines[d.line - 1].length + 1)
    expect(d.code).toMatch(/^CB_CFG_[A-Z_]+$/)
    expect(typeof d.message === 'string' && d.message.length > 0).toBe(true)
  }
}

function load (text: string): 'ok' | ConfigError {
  try {
    loadConfigText('/etc/certbound/gateway.yml', text, opts)
    return 'ok'
  } catch (e) {
    if (e instanceof ConfigError) { expectPositionsInside(text, e); return e }
    throw e // anything else is a crash of the loader
  }
}

describe('config loader (loadConfigText): hostile values at known keys', () => {
  it('the unmodified template loads', () => {
    expect(load(configText({}))).toBe('ok')
  })

  it('returns, or throws ConfigError with every position inside the file — never anything else', () => {
    const values = fc.dictionary(fc.constantFrom(...SLOTS), yamlish, { minKeys: 1, maxKeys: 4 })
    fc.assert(fc.property(values, (v) => { load(configText(v as Partial<Record<Slot, string>>)) }), { numRuns: 400 })
  })

  it('random text as a whole file: returns or throws ConfigError', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json(), yamlish), (text) => { load(text) }), { numRuns: 300 })
  })

  it('an alias bomb (billion laughs) is refused quickly, not expanded', () => {
    let bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    for (let i = 0; i < 8; i++) {
      const p = String.fromCharCode(97 + i); const n = String.fromCharCode(98 + i)
      bomb += `${n}: &${n} [${Array(10).fill(`*${p}`).join(',')}]\n`
    }
    const t0 = performance.now()
    const r = load(`_format_version: "3.0"\n${bomb}services: []\n`)
    expect(r).toBeInstanceOf(ConfigError)
    expect(performance.now() - t0).toBeLessThan(1000)
  })
})

// -------------------------------------------------------------------------------------------------------------
// Templates

/** Source text biased towards the template grammar, with its edge cases. */
const templateSource: fc.Arbitrary<string> = fc.array(fc.oneof(
  fc.constantFrom('$(', ')', '$', '(', '.', '[', ']', '"', "'", ' ', '\\', '$()', '$(.)', '$(credential)', '$(credential.)',
    ...TEMPLATE_ROOTS.map(r => `$(${r}.x)`), ...TEMPLATE_ROOTS.map(r => `$(${r}["a b"])`), '$(headers.x-foo)', '$(headers["x\r\n"])',
    ...CLIENT_CERT_FIELDS.map(f => `$(client_cert.${f})`), '$(client_cert.email)', '$(uri_captures.id)', '$(route.name)', '$(route.id)',
    '$( credential.sub )', '$(credential["a.b"])', '$(credential.realm_access.roles)', '$(query_params[\'q\'])'),
  fc.string({ maxLength: 8 }),
), { maxLength: 8 }).map(parts => parts.join(''))

/** Lookup values an attacker controls: query parameters, claims, header values, with control characters. */
const hostileValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('a\r\nX-Injected: 1', '\r\n\r\nGET / HTTP/1.1', 'a\u0000b', '\n', '\r', '\u007f', '%0d%0a', 'é\u2028x'),
)

describe('request-transformer templates', () => {
  it('parseTemplate throws nothing but TemplateError, and is lossless', () => {
    fc.assert(fc.property(fc.oneof(templateSource, fc.string({ maxLength: 60 })), (src) => {
      let pieces
      try {
        pieces = parseTemplate(src)
      } catch (e) {
        expect(e).toBeInstanceOf(TemplateError)
        return
      }
      expect(pieces.map(p => typeof p === 'string' ? p : p.source).join('')).toBe(src)
    }), { numRuns: 3000 })
  })

  it('a rendered value never contains CR, LF or other control characters, whatever the lookups yield', () => {
    const validTemplate = templateSource.filter((s) => {
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(s)) return false // the schema refuses control characters in literals
      try { parseTemplate(s); return true } catch { return false }
    })
    const env: TemplateEnv = {
      header: (ctx, n) => { const h = ctx.headers[n]; return typeof h === 'string' ? h : undefined },
      query: (ctx, n) => new URLSearchParams(ctx.query).get(n) ?? undefined,
    }
    fc.assert(fc.property(validTemplate, hostileValue, hostileValue, hostileValue, (src, q, claim, header) => {
      const ctx = makeCtx({
        query: `x=${encodeURIComponent(q)}&q=${encodeURIComponent(q)}`,
        headers: [['x-foo', header.replace(/[\r\n\0]/g, '')], ['a b', 'v']],
        certPem: pki.client1.certPem,
      })
      ctx.credential = credentialFromClaims('t', { sub: claim, client_id: claim, x: claim, 'a b': claim, 'a.b': claim, realm_access: { roles: [claim] } }, 'test')
      const out = renderTemplate(compileTemplate(src, env), ctx)
      // eslint-disable-next-line no-control-regex
      if (out !== undefined) expect(out).not.toMatch(/[\x00-\x1f\x7f]/)
    }), { numRuns: 2000 })
  })

  it('through the plugin: no upstream header or query value it sets carries a control character', async () => {
    const t = ['x-q:$(query_params.q)', 'x-sub:$(credential.sub) / $(credential.client_id)', 'x-h:[$(headers.x-foo)]', 'x-cert:$(client_cert.subject)']
    const p = await build(plugin, { add: { headers: t, querystring: ['copy:$(query_params.q)'] }, append: { headers: ['x-sub:$(credential.x)'] } })
    await fc.assert(fc.asyncProperty(hostileValue, hostileValue, async (q, claim) => {
      const ctx = makeCtx({ query: `q=${encodeURIComponent(q)}`, headers: [['x-foo', 'ok']], certPem: pki.client1.certPem })
      ctx.credential = credentialFromClaims('t', { sub: claim, client_id: claim, x: claim }, 'test')
      await p.access!(ctx)
      // eslint-disable-next-line no-control-regex
      for (const [, v] of [...ctx.upstreamHeaders, ...ctx.upstreamQuery]) if (v !== null) expect(v).not.toMatch(/[\x00-\x1f\x7f]/)
    }), { numRuns: 500 })
  })
})

// -------------------------------------------------------------------------------------------------------------
// Certificate-header parsers

const FORMATS = fc.constantFrom<CertificateHeaderFormat>(...CERTIFICATE_HEADER_FORMATS)

/** Every certificate of the test PKI: EC and RSA leaves, a self-signed one, CAs, an expired one, a chained one. */
function allCerts (): Buffer[] {
  return [pki.client1, pki.client2, pki.rsaClient, pki.selfSigned, pki.ca, pki.intermediateCa, pki.expiredClient, pki.chainClient, pki.callistaClient].map(c => c.x509.raw)
}

/** The ways TLS terminators actually write a certificate, beyond encodeCertificateHeader's canonical form. */
function variants (format: CertificateHeaderFormat, der: Buffer, pick: number, noise: string): string {
  const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`
  switch (format) {
    case 'url_encoded': return [nginxEscapeUriComponent(pem), encodeURIComponent(pem), encodeURIComponent(pem).replace(/%[0-9A-F]{2}/g, m => m.toLowerCase())][pick % 3]
    case 'base64_encoded': return [der.toString('base64'), Buffer.from(pem).toString('base64'), pem.split('\n').filter(l => !l.startsWith('-----')).join('\n'), pem][pick % 4]
    case 'rfc9440': return [`:${der.toString('base64')}:`, ` :${der.toString('base64')}: `][pick % 2]
    case 'xfcc': {
      // elements added by proxies further out come first; ours is the last one
      const prior = `By=spiffe://a;Hash=${'0'.repeat(64)};Cert="${nginxEscapeUriComponent(`garbage ${noise}`)}";Subject="CN=x,O=\\"y;z\\""`
      return [`${prior},${encodeCertificateHeader('xfcc', der)}`, `Hash=abc;Cert="${nginxEscapeUriComponent(pem)}";URI=spiffe://b`][pick % 2]
    }
  }
}

describe('certificate-header parsers (src/auth/cert-source.ts)', () => {
  it('round-trip: every test certificate, every format, every terminator spelling decodes to the same DER', () => {
    const certs = allCerts()
    fc.assert(fc.property(FORMATS, fc.nat({ max: certs.length - 1 }), fc.nat(), fc.string({ maxLength: 20 }), (f, i, pick, noise) => {
      const der = certs[i]
      const parsed = parseCertificateHeader(f, variants(f, der, pick, noise))
      expect(parsed?.raw.equals(der), `${f} variant ${pick}`).toBe(true)
    }), { numRuns: 500 })
  })

  it('garbage → null (never a throw), for text shaped like each format', () => {
    const shaped = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ maxLength: 200 }).map(s => `:${s}:`),
      fc.string({ maxLength: 200 }).map(s => `Cert="${s}"`),
      fc.string({ maxLength: 200 }).map(s => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----`),
      fc.uint8Array({ maxLength: 300 }).map(b => Buffer.concat([Buffer.from([0x30, 0x82]), Buffer.from(b)]).toString('base64')),
      fc.uint8Array({ maxLength: 300 }).map(b => `:${Buffer.from(b).toString('base64')}:`),
    )
    fc.assert(fc.property(FORMATS, shaped, (f, v) => {
      expect(parseCertificateHeader(f, v)).toBeNull()
    }), { numRuns: 2000 })
  })

  it('every single-bit flip of a certificate is refused or parses as exactly those bytes (OpenSSL re-encodes some non-DER)', () => {
    const der = pki.client1.x509.raw
    let parsed = 0
    for (let at = 0; at < der.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(der)
        bad[at] ^= 1 << bit
        const r = parseCertificateHeader('base64_encoded', bad.toString('base64'))
        if (r !== null) { parsed++; expect(r.raw.equals(bad), `byte ${at} bit ${bit}`).toBe(true) }
      }
    }
    expect(parsed).toBeGreaterThan(0) // flips inside the signature and names still parse: the check above ran
  })

  it('a truncated or bit-flipped certificate is refused (null), never half-parsed', () => {
    const der = pki.client1.x509.raw
    fc.assert(fc.property(FORMATS, fc.nat({ max: der.length - 2 }), fc.boolean(), fc.integer({ min: 1, max: 255 }), (f, at, truncate, xor) => {
      const bad = Buffer.from(der)
      const input = truncate ? bad.subarray(0, at + 1) : (bad[at] ^= xor, bad)
      const r = parseCertificateHeader(f, encodeCertificateHeader(f, input))
      // a flipped bit inside the signature or a string can still parse: then it must be that exact (other) certificate
      if (r !== null) expect(r.raw.equals(input)).toBe(true)
      if (truncate) expect(r).toBeNull()
    }), { numRuns: 1000 })
  })

  it('xfcc: the element of the proxy next to us decides, whatever the elements before it carry', () => {
    const [mine, other] = [pki.client1.x509.raw, pki.client2.x509.raw]
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 }), (junk) => {
      const prior = [...junk.map(j => `By=${j.replace(/[",;=\\]/g, '')}`), encodeCertificateHeader('xfcc', other)]
      const v = `${prior.join(',')},${encodeCertificateHeader('xfcc', mine)}`
      expect(decodeCertificateHeader('xfcc', v)?.equals(mine)).toBe(true)
    }), { numRuns: 200 })
  })

  it('parseXfccElements never throws; null only for an unterminated quote', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
      const r = parseXfccElements(s)
      if (r === null) expect(s).toContain('"')
    }), { numRuns: 2000 })
  })

  it('createCertSource from a trusted peer: a hostile header yields no certificate, never a throw', () => {
    const src = createCertSource({ header: 'x-client-cert', format: 'url_encoded', trustedIps: ['127.0.0.1'] })
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 100 }).map(s => s.replace(/[\r\n\0]/g, '')), { minLength: 0, maxLength: 3 }), (values) => {
      const ctx = makeCtx({ headers: values.map(v => ['X-Client-Cert', v] as [string, string]), certPem: pki.client2.certPem })
      const r = src.resolve(ctx)
      expect(r.certificate).toBeNull()
      expect(r.source).toBe('header')
    }), { numRuns: 500 })
  })
})
