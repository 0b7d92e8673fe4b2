/**
 * Kong consumers, end to end (issue 16): `consumers:` with acls; mtls-auth maps the verified certificate to a
 * consumer (consumer_by against CN and SAN DNS names), or with skip_consumer_lookup to an authenticated group;
 * openid-connect maps a claim (consumer_claim + consumer_by, consumer_optional); the acl plugin allows or denies;
 * the upstream gets X-Consumer-* and never a client's copy. Real TLS, real curl, a real JWT issuer.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'
import { startIssuer, type TestIssuer } from '../plugins/openid-connect/issuer.js'

let pki: TestPki
let up: Upstream
let idp: TestIssuer
let gw: TestGateway

beforeAll(async () => {
  pki = await createTestPki()
  up = await startUpstream()
  idp = await startIssuer({ cert: pki.server.certPem, key: pki.server.keyPem })
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
  trusted_certificates: ${pki.ca.certFile}
consumers:
  - username: client1
    custom_id: c-1
    id: 7f1a0c3e-0000-4000-8000-000000000001
    acls: [{ group: gold }, { group: staff }]
  - custom_id: client2
    acls: [{ group: silver }]
  - username: svc-a
    custom_id: service-a
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: by-cert
        paths: [/by-cert]
        plugins:
          - name: mtls-auth
            config: { ca_certificates: [${pki.ca.certFile}] }
          - name: acl
            config: { allow: [gold] }
      - name: deny-silver
        paths: [/deny-silver]
        plugins:
          - name: mtls-auth
            config: { ca_certificates: [${pki.ca.certFile}], consumer_by: [custom_id, username] }
          - name: acl
            config: { deny: [silver], hide_groups_header: true }
      - name: by-group
        paths: [/by-group]
        plugins:
          - name: mtls-auth
            config: { ca_certificates: [${pki.ca.certFile}], skip_consumer_lookup: true, authenticated_group_by: CN }
          - name: acl
            config: { allow: [client2] }
      - name: by-claim
        paths: [/by-claim]
        plugins:
          - name: openid-connect
            config: { issuer: "${idp.issuer}", consumer_claim: [client_id], consumer_by: [custom_id] }
          - name: acl
            config: { allow: [gold, staff] }
      - name: by-claim-optional
        paths: [/by-claim-optional]
        plugins:
          - name: openid-connect
            config: { issuer: "${idp.issuer}", consumer_claim: [client_id], consumer_optional: true }
      - name: plain
        paths: [/plain]
`, { logLevel: 'warn' })
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await idp?.stop()
  await up?.close()
  pki?.cleanup()
})

const withCert = (c: { certFile: string, keyFile: string }): string[] => ['--cacert', pki.ca.certFile, '--cert', c.certFile, '--key', c.keyFile]
const lastRequest = () => up.requests[up.requests.length - 1]
const SPOOF = ['-H', 'X-Consumer-Username: admin', '-H', 'X-Consumer-ID: admin', '-H', 'X_Consumer_Custom_ID: admin', '-H', 'X-Consumer-Groups: gold', '-H', 'X-Authenticated-Groups: gold']

describe('mtls-auth consumer_by: the certificate CN names the consumer', () => {
  it('client1 (username client1, in gold) passes; the upstream gets X-Consumer-* and X-Consumer-Groups, not the client\'s copies', async () => {
    const r = await curl([...withCert(pki.client1), ...SPOOF, `${gw.url()}/by-cert`])
    expect(r.status).toBe(200)
    const h = lastRequest().headers
    expect(h['x-consumer-id']).toBe('7f1a0c3e-0000-4000-8000-000000000001')
    expect(h['x-consumer-username']).toBe('client1')
    expect(h['x-consumer-custom-id']).toBe('c-1')
    expect(h['x-consumer-groups']).toBe('gold, staff')
    expect(h['x-authenticated-groups']).toBeUndefined()
    expect(lastRequest().rawHeaders.filter(n => /consumer/i.test(n))).toHaveLength(4)
  })

  it('client2 (custom_id client2, in silver only) is refused 403 with Kong\'s message', async () => {
    const before = up.requests.length
    const r = await curl([...withCert(pki.client2), `${gw.url()}/by-cert`])
    expect(r.status).toBe(403)
    expect(JSON.parse(r.body)).toEqual({ message: 'You cannot consume this service' })
    expect(up.requests.length).toBe(before)
  })

  it('a certificate that maps to no consumer (CN=iot-device-1) is refused 401', async () => {
    const r = await curl([...withCert(pki.callistaClient), `${gw.url()}/by-cert`])
    expect(r.status).toBe(401)
  })

  it('a look-alike certificate from another CA (CN=client1) is refused before any mapping', async () => {
    const r = await curl([...withCert(pki.otherClient), `${gw.url()}/by-cert`])
    expect(r.status).toBe(401)
  })

  it('no certificate: 401', async () => {
    const r = await curl(['--cacert', pki.ca.certFile, `${gw.url()}/by-cert`])
    expect(r.status).toBe(401)
  })

  it('acl deny + hide_groups_header: client1 passes without X-Consumer-Groups, client2 (silver) is refused', async () => {
    const ok = await curl([...withCert(pki.client1), ...SPOOF, `${gw.url()}/deny-silver`])
    expect(ok.status).toBe(200)
    expect(lastRequest().headers['x-consumer-username']).toBe('client1')
    expect(lastRequest().headers['x-consumer-groups']).toBeUndefined()
    const no = await curl([...withCert(pki.client2), `${gw.url()}/deny-silver`])
    expect(no.status).toBe(403)
  })
})

describe('mtls-auth skip_consumer_lookup + authenticated_group_by: CN', () => {
  it('the CN is the authenticated group: client2 passes with X-Authenticated-Groups and no consumer headers', async () => {
    const r = await curl([...withCert(pki.client2), ...SPOOF, `${gw.url()}/by-group`])
    expect(r.status).toBe(200)
    const h = lastRequest().headers
    expect(h['x-authenticated-groups']).toBe('client2')
    expect(h['x-consumer-id']).toBeUndefined()
    expect(h['x-consumer-username']).toBeUndefined()
  })

  it('client1 is not in allow: 403', async () => {
    const r = await curl([...withCert(pki.client1), `${gw.url()}/by-group`])
    expect(r.status).toBe(403)
  })
})

describe('openid-connect consumer_claim + consumer_by', () => {
  it('client_id "c-1" names consumer client1 by custom_id: 200 with X-Consumer-*', async () => {
    const token = await idp.sign({ claims: { client_id: 'c-1' } })
    const r = await curl(['--cacert', pki.ca.certFile, '-H', `Authorization: Bearer ${token}`, ...SPOOF, `${gw.url()}/by-claim`])
    expect(r.status).toBe(200)
    const h = lastRequest().headers
    expect(h['x-consumer-username']).toBe('client1')
    expect(h['x-consumer-custom-id']).toBe('c-1')
    expect(h['x-consumer-groups']).toBe('gold, staff')
    // X-Credential-Token-Type on the JWT path too (a JWT has no token_type claim: it was presented as Bearer)
    expect(h['x-credential-token-type']).toBe('Bearer')
  })

  it('a claim that names no consumer: 403 (consumer_optional false)', async () => {
    const token = await idp.sign({ claims: { client_id: 'nobody' } })
    const r = await curl(['--cacert', pki.ca.certFile, '-H', `Authorization: Bearer ${token}`, `${gw.url()}/by-claim`])
    expect(r.status).toBe(403)
  })

  it('a consumer outside the acl (service-a, no groups): 403', async () => {
    const token = await idp.sign({ claims: { client_id: 'service-a' } })
    const r = await curl(['--cacert', pki.ca.certFile, '-H', `Authorization: Bearer ${token}`, `${gw.url()}/by-claim`])
    expect(r.status).toBe(403)
  })

  it('consumer_optional: an unknown client passes without consumer headers; a known one (by username) gets them', async () => {
    const t1 = await idp.sign({ claims: { client_id: 'nobody' } })
    const r1 = await curl(['--cacert', pki.ca.certFile, '-H', `Authorization: Bearer ${t1}`, ...SPOOF, `${gw.url()}/by-claim-optional`])
    expect(r1.status).toBe(200)
    expect(lastRequest().headers['x-consumer-id']).toBeUndefined()
    expect(lastRequest().headers['x-consumer-username']).toBeUndefined()
    const t2 = await idp.sign({ claims: { client_id: 'svc-a' } })
    const r2 = await curl(['--cacert', pki.ca.certFile, '-H', `Authorization: Bearer ${t2}`, `${gw.url()}/by-claim-optional`])
    expect(r2.status).toBe(200)
    expect(lastRequest().headers['x-consumer-username']).toBe('svc-a')
    expect(lastRequest().headers['x-consumer-id']).toBe('svc-a')
  })
})

describe('strip before set: X-Consumer-* from a client never reaches the upstream', () => {
  it('on a route without plugins', async () => {
    const r = await curl(['--cacert', pki.ca.certFile, ...SPOOF, `${gw.url()}/plain`])
    expect(r.status).toBe(200)
    const names = lastRequest().rawHeaders.filter((_n, i) => i % 2 === 0).map(n => n.toLowerCase())
    for (const n of ['x-consumer-username', 'x-consumer-id', 'x_consumer_custom_id', 'x-consumer-groups', 'x-authenticated-groups']) expect(names).not.toContain(n)
  })
})
