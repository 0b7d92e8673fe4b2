/**
 * tls_client_auth without `authorization_server.ca_certificates` (issue 16): the client certificate must have
 * verified against the client_ca of the listener the request came in on, as Keycloak and WSO2 trust their HTTPS
 * truststore; logged at load. No listener with a client_ca: a load error at the client that needs one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'

let pki: TestPki
let gw: TestGateway

const client = `  clients:
    - client_id: svc
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: read
`

beforeAll(async () => {
  pki = await createTestPki()
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
authorization_server:
  issuer: https://localhost:8443
${client}`)
})
afterAll(async () => { await gw?.close(); pki?.cleanup() })

const token = (cert: { certFile: string, keyFile: string }) => curl(['--cacert', pki.ca.certFile, '--resolve', `localhost:${gw.port()}:127.0.0.1`, '--cert', cert.certFile, '--key', cert.keyFile,
  '-d', 'grant_type=client_credentials', '-d', 'client_id=svc', `https://localhost:${gw.port()}/oauth2/token`])

describe('RFC 8705 §2.1 trust anchors from the listener\'s client_ca', () => {
  it('says so at load', () => {
    const line = gw.logs.find(l => typeof l.msg === 'string' && l.msg.startsWith('tls_client_auth: no ca_certificates'))
    expect(line?.listeners).toEqual(['127.0.0.1:0'])
  })

  it('a certificate that verified against client_ca and carries the registered subject gets a token', async () => {
    const r = await token(pki.client1)
    expect(r.status, r.body + r.stderr).toBe(200)
    expect(JSON.parse(r.body).token_type).toBe('Bearer')
  })

  it('the same subject from another CA (not in client_ca) is refused: invalid_client', async () => {
    const r = await token(pki.otherClient)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body).error).toBe('invalid_client')
  })

  it('no listener with a client_ca: a load error at the client', async () => {
    const err = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
authorization_server:
  issuer: https://localhost:8443
${client}`).then(async (g) => { await g.close(); return undefined }, (e: unknown) => e) as { diagnostics?: Array<{ line: number, code: string, path: string, message: string }> } | undefined
    expect(err?.diagnostics?.map(d => `${d.line} ${d.code} ${d.path}`)).toEqual(['12 CB_CFG_INVALID authorization_server.clients[0].token_endpoint_auth_method'])
    expect(err?.diagnostics?.[0].message).toMatch(/^tls_client_auth needs ca_certificates, or a TLS listener with client_ca/)
  })
})
