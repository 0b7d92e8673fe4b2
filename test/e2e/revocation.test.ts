/**
 * Issue 18 through the whole gateway: mtls-auth and the built-in authorization server's tls_client_auth refuse a
 * revoked client certificate (real openssl ocsp responder, certificates with AIA/CDP on loopback), curl as the
 * client, metrics on the admin listener, answers kept across a reload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRevocationPki, type RevocationPki } from '../helpers/revocation-pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { curl } from '../helpers/curl.js'
import type { Issued } from '../unit/helpers/mtls-pki.js'

let pki: RevocationPki
let upstream: Upstream
let gw: TestGateway
let clock = Date.now()

const config = (mode: string): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: server.crt
        key: server.key
        client_ca: root.crt
        client_certificate: request
authorization_server:
  issuer: https://localhost:8443
  ca_certificates: root.crt
  revocation_check_mode: ${mode}
  revocation_http_timeout: 2000
  clients:
    - client_id: good-client
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: ".*,CN=good"
    - client_id: revoked-client
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: ".*,CN=revoked"
    - client_id: down-client
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: ".*,CN=down"
services:
  - name: api
    url: ${upstream.url}
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [root.crt]
              revocation_check_mode: ${mode}
              http_timeout: 2000
`

beforeAll(async () => {
  pki = await createRevocationPki()
  upstream = await startUpstream()
  gw = await startGateway(config('STRICT'), {
    files: { 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem, 'root.crt': pki.root.certPem },
    now: () => clock,
  })
  for (const c of ['good', 'revoked', 'down'] as const) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${gw.dir}/${c}.crt`, (pki[c] as Issued).certPem)
    writeFileSync(`${gw.dir}/${c}.key`, (pki[c] as Issued).keyPem, { mode: 0o600 })
  }
}, 60_000)
afterAll(async () => {
  await gw?.close()
  await upstream?.close()
  await pki?.close()
})

const tls = (who: string): string[] => ['--cacert', `${gw.dir}/root.crt`, '--resolve', `localhost:${gw.port()}:127.0.0.1`, '--cert', `${gw.dir}/${who}.crt`, '--key', `${gw.dir}/${who}.key`]
const api = (who: string) => curl([...tls(who), `https://localhost:${gw.port()}/api`])
const token = (who: string) => curl([...tls(who), '-d', 'grant_type=client_credentials', '-d', `client_id=${who}-client`, `https://localhost:${gw.port()}/oauth2/token`])

describe('mtls-auth STRICT through the gateway', () => {
  it('a good certificate reaches the upstream; a revoked one gets 401 {"message":"TLS certificate failed verification"}', async () => {
    expect((await api('good')).status).toBe(200)
    const r = await api('revoked')
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body)).toEqual({ message: 'TLS certificate failed verification' })
    expect(gw.logs.some(l => typeof l.reason === 'string' && /^revoked: OCSP/.test(l.reason))).toBe(true)
  })

  it('an unreachable responder is refused under STRICT', async () => {
    expect((await api('down')).status).toBe(401)
  })
})

describe('authorization_server.revocation_check_mode: tls_client_auth', () => {
  it('issues a token to a good client and refuses a revoked one (invalid_client)', async () => {
    const ok = await token('good')
    console.log(JSON.stringify(gw.logs.slice(-4)))
    expect(ok.status, ok.body).toBe(200)
    const bad = await token('revoked')
    expect(bad.status).toBe(401)
    expect(JSON.parse(bad.body)).toMatchObject({ error: 'invalid_client' })
    // refused for the revocation, not for anything else
    expect(gw.logs.some(l => l.endpoint === 'token' && /^revoked: OCSP/.test(String(l.reason)))).toBe(true)
    expect((await token('down')).status).toBe(401)
  })
})

describe('metrics and reloads', () => {
  it('/metrics counts checks by result and cache hits', async () => {
    const m = await (await fetch(`${gw.adminUrl!}/metrics`)).text()
    expect(m).toMatch(/certbound_revocation_checks_total\{source="ocsp",result="revoked"\} [1-9]/)
    expect(m).toMatch(/certbound_revocation_checks_total\{source="ocsp",result="good"\} [1-9]/)
    expect(m).toMatch(/certbound_revocation_checks_total\{source="ocsp",result="error"\} [1-9]/)
    // the AS asked after mtls-auth: the same answers, from the shared cache
    expect(m).toMatch(/certbound_revocation_cache_hits_total\{kind="answer"\} [1-9]/)
    expect(m).toMatch(/certbound_revocation_responder_seconds_count\{source="ocsp",outcome="ok"\} [1-9]/)
  })

  it('IGNORE_CA_ERROR after a reload: the unreachable responder lets the client through; answers survive the reload', async () => {
    const before = await pki.responder.count()
    const r = await gw.gateway.reload(config('IGNORE_CA_ERROR'))
    expect(r.ok).toBe(true)
    expect((await api('down')).status).toBe(200)
    expect((await api('revoked')).status).toBe(401)
    expect((await api('good')).status).toBe(200)
    expect(await pki.responder.count()).toBe(before)
    expect(gw.logs.some(l => l.msg?.includes('allowed by revocation_check_mode IGNORE_CA_ERROR') === true)).toBe(true)
  })

  it('past cert_cache_ttl the responder is asked again', async () => {
    const before = await pki.responder.count()
    clock += 61_000
    expect((await api('good')).status).toBe(200)
    expect(await pki.responder.count()).toBe(before + 1)
  })
})

describe('a certificate forwarded by a trusted proxy (certificate_header_revocation_check_mode)', () => {
  let gw2: TestGateway
  const header = (c: Issued): string => encodeURIComponent(c.certPem).replace(/[!'()*]/g, ch => '%' + ch.charCodeAt(0).toString(16).toUpperCase())
  beforeAll(async () => {
    const forwarded = `
              certificate_header: X-Client-Cert
              trusted_ips: [127.0.0.1]
              certificate_header_revocation_check_mode: STRICT
              certificate_header_ca_certificates: [root.crt]`
    gw2 = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: server.crt
        key: server.key
        client_ca: root.crt
        client_certificate: request
authorization_server:
  issuer: https://localhost:8443
  ca_certificates: root.crt
  revocation_check_mode: SKIP
  clients:
    - client_id: good-client
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: ".*,CN=good"
    - client_id: revoked-client
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: ".*,CN=revoked"
services:
  - name: api
    url: ${upstream.url}
    routes:
      - name: ti
        paths: [/ti]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: https://localhost:8443/oauth2/introspect
              certificate_binding: strict${forwarded}
      - name: oidc
        paths: [/oidc]
        plugins:
          - name: openid-connect
            config:
              issuer: https://localhost:8443
              auth_methods: [bearer]
              audience_required: [https://localhost:8443]
              proof_of_possession_mtls: strict${forwarded}
`, { dir: gw.dir, files: {} })
  })
  afterAll(async () => { await gw2?.close() })

  const bound = async (who: 'good' | 'revoked'): Promise<string> => {
    const r = await curl(['--cacert', `${gw.dir}/root.crt`, '--resolve', `localhost:${gw2.port()}:127.0.0.1`, '--cert', `${gw.dir}/${who}.crt`, '--key', `${gw.dir}/${who}.key`,
      '-d', 'grant_type=client_credentials', '-d', `client_id=${who}-client`, `https://localhost:${gw2.port()}/oauth2/token`])
    expect(r.status, r.body).toBe(200)
    return (JSON.parse(r.body) as { access_token: string }).access_token
  }
  // the trusted proxy: no client certificate of its own, the client's in X-Client-Cert
  const viaProxy = (path: string, token: string, cert: Issued) => curl(['--cacert', `${gw.dir}/root.crt`, '--resolve', `localhost:${gw2.port()}:127.0.0.1`,
    '-H', `Authorization: Bearer ${token}`, '-H', `X-Client-Cert: ${header(cert)}`, `https://localhost:${gw2.port()}${path}`])

  for (const path of ['/ti', '/oidc']) {
    it(`${path}: a good forwarded certificate passes; a revoked one gets 401 "TLS certificate failed verification"`, async () => {
      const good = await viaProxy(path, await bound('good'), pki.good)
      expect(good.status, good.body).toBe(200)
      const revoked = await viaProxy(path, await bound('revoked'), pki.revoked)
      expect(revoked.status).toBe(401)
      expect(JSON.parse(revoked.body)).toEqual({ message: 'TLS certificate failed verification' })
      expect(gw2.logs.some(l => typeof l.reason === 'string' && /^certificate from X-Client-Cert: revoked: OCSP/.test(l.reason))).toBe(true)
    })
  }
})
