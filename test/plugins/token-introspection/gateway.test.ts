/**
 * The Callista seed setup (mtls-auth upstream_cert_header + token-introspection certificate_header + scope) through
 * the real gateway: config loader, listener (client_certificate: none, upgraded to request by the plugins),
 * strip-before-set, proxy and an echo upstream, driven with curl as the seed does. The IdP is a real HTTPS RFC 7662
 * endpoint answering from a table (the oidc-provider flow is covered elsewhere).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startGateway, type TestGateway } from '../../helpers/gateway.js'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { curl } from '../../helpers/curl.js'
import { createTestPki, type TestCert, type TestPki } from '../../helpers/pki.js'
import { encodeCertificateHeader } from '../../../src/auth/cert-source.js'
import { startIntrospectionServer, type IntrospectionServer } from '../../unit/helpers/introspection-server.js'

let pki: TestPki
let idp: IntrospectionServer
let upstream: Upstream
let gw: TestGateway

const now = (): number => Math.floor(Date.now() / 1000)
let seq = 0
function token (claims: Record<string, unknown>): string {
  const t = `seed-${++seq}`
  idp.tokens.set(t, { json: { active: true, scope: 'system-access', clientId: 'system-client-mtls', typ: 'Bearer', sub: 'service-account-system-client-mtls', iss: 'https://idp.test/realms/test', exp: now() + 300, iat: now(), jti: t, ...claims } })
  return t
}

function call (t: string | undefined, client: TestCert | undefined, extra: string[] = []): ReturnType<typeof curl> {
  const args = ['--cacert', pki.ca.certFile, ...extra]
  if (client !== undefined) args.push('--cert', client.certFile, '--key', client.keyFile)
  if (t !== undefined) args.push('-H', `Authorization: Bearer ${t}`)
  args.push(`${gw.url()}/token-mtls/api/`)
  return curl(args)
}

const lastUpstream = (): Upstream['requests'][number] => upstream.requests[upstream.requests.length - 1]

beforeAll(async () => {
  pki = await createTestPki()
  idp = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem })
  upstream = await startUpstream()
  gw = await startGateway(`
_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: none
  trusted_certificates: ${pki.ca.certFile}
  log_level: debug
services:
  - name: access-token-mtls
    url: ${upstream.url}
    routes:
      - name: access-token-mtls-route
        paths: [/token-mtls/]
        strip_path: true
        plugins:
          - name: mtls-auth
            config:
              upstream_cert_header: "X-Client-Cert"
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.url}
              client_id: introspection-client
              client_secret: secret
              certificate_header: "X-Client-Cert"
              scope:
                - system-access
`)
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await upstream?.close()
  await idp?.close()
  pki?.cleanup()
})

describe('Callista seed: mtls-auth + token-introspection through the gateway', () => {
  it('client1 with its bound token: 200, X-Credential-* and X-Client-Cert upstream', async () => {
    const t = token({ cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } })
    const r = await call(t, pki.client1)
    expect(r.status).toBe(200)
    const h = lastUpstream().headers
    expect(h['x-credential-scope']).toBe('system-access')
    expect(h['x-credential-client-id']).toBe('system-client-mtls')
    expect(h['x-credential-token-type']).toBe('Bearer')
    expect(h['x-credential-sub']).toBe('service-account-system-client-mtls')
    expect(h['x-credential-iss']).toBe('https://idp.test/realms/test')
    expect(h['x-credential-jti']).toBe(t)
    expect(h['x-client-cert']).toBe(encodeCertificateHeader('url_encoded', pki.client1.x509.raw))
    expect(idp.requests[idp.requests.length - 1].body).toBe(`token=${t}&token_type_hint=access_token`)
  })

  it('the same token on client2: 401 invalid_token (the handshake itself succeeds)', async () => {
    const t = token({ cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } })
    const before = upstream.requests.length
    const r = await call(t, pki.client2)
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"')
    expect(upstream.requests.length).toBe(before)
  })

  it('spoofing X-Client-Cert (client2 sends client1\'s certificate in the header) does not help', async () => {
    const t = token({ cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } })
    const spoof = encodeCertificateHeader('url_encoded', pki.client1.x509.raw)
    const r = await call(t, pki.client2, ['-H', `X-Client-Cert: ${spoof}`])
    expect(r.status).toBe(401)
  })

  it('a client-sent X-Client-Cert or X-Credential-* never reaches the upstream: the gateway sets its own', async () => {
    const t = token({ cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } })
    const r = await call(t, pki.client1, ['-H', 'X-Client-Cert: forged', '-H', 'X-Credential-Sub: admin'])
    expect(r.status).toBe(200)
    const h = lastUpstream().headers
    expect(h['x-client-cert']).toBe(encodeCertificateHeader('url_encoded', pki.client1.x509.raw))
    expect(h['x-credential-sub']).toBe('service-account-system-client-mtls')
  })

  it('no client certificate: 401 from mtls-auth', async () => {
    const r = await call(token({}), undefined)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body)).toEqual({ message: 'No required TLS certificate was sent' })
  })

  it('a certificate from another CA: 401 TLS certificate failed verification', async () => {
    const r = await call(token({}), pki.otherClient)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body)).toEqual({ message: 'TLS certificate failed verification' })
  })

  it('missing scope: 403 insufficient_scope', async () => {
    const r = await call(token({ scope: 'other', cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } }), pki.client1)
    expect(r.status).toBe(403)
    expect(r.headers['www-authenticate']).toContain('scope="system-access"')
  })

  it('no token: 401 Bearer realm without error', async () => {
    const r = await call(undefined, pki.client1)
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Bearer realm="certbound"')
  })

  it('no token, secret or certificate in the logs', () => {
    const text = JSON.stringify(gw.logs)
    expect(text).not.toContain('seed-1"')
    expect(text).not.toContain('"secret"')
    expect(text).not.toContain('PRIVATE KEY')
  })
})
