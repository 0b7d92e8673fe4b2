import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'

let pki: TestPki
let gw: TestGateway

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
  ca_certificates: ${pki.ca.certFile}
  clients:
    - client_id: svc
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: read
`)
})
afterAll(async () => { await gw?.close(); pki?.cleanup() })

describe('wired into the gateway core', () => {
  it('answers the token endpoint on a gateway TLS listener', async () => {
    const r = await curl(['--cacert', pki.ca.certFile, '--resolve', `localhost:${gw.port()}:127.0.0.1`, '--cert', pki.client1.certFile, '--key', pki.client1.keyFile,
      '-d', 'grant_type=client_credentials', '-d', 'client_id=svc', `https://localhost:${gw.port()}/oauth2/token`])
    expect(r.status, r.body + r.stderr).toBe(200)
  })
})

describe('problems found at create are positioned by the core', () => {
  it('a missing certificate file is reported at authorization_server.clients[0].certificate with its line', async () => {
    const err = await startGateway(`_format_version: "3.0"
authorization_server:
  issuer: https://localhost:8443
  clients:
    - client_id: partner
      token_endpoint_auth_method: self_signed_tls_client_auth
      certificate: missing-partner.crt
`).then(g => g.close(), (e: unknown) => e) as { diagnostics?: Array<{ line: number, code: string, path: string, message: string }> }
    expect(err.diagnostics?.map(d => `${d.line} ${d.code} ${d.path}`)).toEqual(['7 CB_CFG_FILE authorization_server.clients[0].certificate'])
    expect(err.diagnostics?.[0].message).toMatch(/^cannot read missing-partner.crt: ENOENT/)
  })
})
