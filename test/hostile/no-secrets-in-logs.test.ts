/**
 * Nothing secret reaches a log. A representative flow runs in process with log level trace — tokens from a real
 * IdP (JWT and opaque), good and bad requests, introspection authenticated with a client_secret, the built-in
 * authorization server's token endpoint with client secrets (right and wrong) — and then every captured line is
 * searched for the tokens, the secrets, Basic credentials and PEM private keys. The same search runs over this
 * process's file in SUITE_LOG_DIR; scripts/check-logs.mjs searches the files of the whole suite after vitest.
 */
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SUITE_LOG_DIR, startGateway, type TestGateway } from '../helpers/gateway.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { exchange, rawRequest, type WireResult } from './wire.js'

const AUDIENCE = 'https://api.example.test'
/** Secrets of the flow: long and distinctive enough that a match is never a coincidence. */
const BASIC_SECRET = 'basic-S3cret-7f3a9c'
const POST_SECRET = 'post-S3cret-b81d42'
const WRONG_SECRET = 'wrong-S3cret-0c55e1'
const INTROSPECTION_SECRET = 'introspection-secret' // test/helpers/idp.ts registers it
const COOKIE_SECRET = 'session-9d2f7e1c'

let pki: TestPki
let idp: Idp
let upstream: Upstream
let gw: TestGateway
/** Every secret value the flow used; none may appear in a log. */
const secrets = new Set<string>([BASIC_SECRET, POST_SECRET, WRONG_SECRET, INTROSPECTION_SECRET, COOKIE_SECRET])

beforeAll(async () => {
  pki = await createTestPki()
  ;[idp, upstream] = await Promise.all([
    startIdp({
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      clientCaPem: pki.ca.certPem,
      audience: AUDIENCE,
      clients: [{ client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access' }],
    }),
    startUpstream(),
  ])
  gw = await startGateway(`
_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
  trusted_certificates: ${pki.ca.certFile}
authorization_server:
  issuer: https://localhost:8443
  ca_certificates: ${pki.ca.certFile}
  state_dir: state
  clients:
    - client_id: basic-client
      token_endpoint_auth_method: client_secret_basic
      client_secret: \${{ env "CB_TEST_BASIC_SECRET" }}
      scope: system-access
    - client_id: post-client
      token_endpoint_auth_method: client_secret_post
      client_secret: ${POST_SECRET}
      scope: system-access
services:
  - name: echo
    url: ${upstream.url}
    routes:
      - name: jwt
        paths: [/jwt]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
          - name: openid-connect
            config:
              issuer: ${idp.issuer}
              auth_methods: [bearer]
              audience_required: [${AUDIENCE}]
              proof_of_possession_mtls: strict
              upstream_headers_claims: [sub, cnf]
              upstream_headers_names: [X-Sub, X-Cnf]
      - name: introspected
        paths: [/introspected]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.introspectionEndpoint}
              client_id: introspection-client
              client_secret: ${INTROSPECTION_SECRET}
              certificate_binding: strict
              hide_credentials: true
              certificate_header: X-Client-Cert
      - name: builtin
        paths: [/builtin]
        plugins:
          - name: openid-connect
            config:
              issuer: https://localhost:8443
              auth_methods: [bearer, introspection]
              proof_of_possession_mtls: optional
`, { logLevel: 'trace', env: { ...process.env, CB_TEST_BASIC_SECRET: BASIC_SECRET } })
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await Promise.all([upstream?.close(), idp?.close()])
  pki?.cleanup()
})

function send (request: Buffer, cert?: TestCert): Promise<WireResult> {
  const tls = { ca: pki.ca.certPem, ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }) }
  return exchange({ port: gw.port(), tls }, [request])
}

const bearer = (t: string): [string, string] => ['Authorization', `Bearer ${t}`]
const basic = (id: string, secret: string): string => Buffer.from(`${id}:${secret}`).toString('base64')

function tokenRequest (form: string, headers: Array<[string, string]> = []): Buffer {
  return rawRequest('POST', '/oauth2/token', [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Length', String(Buffer.byteLength(form))], ...headers], form)
}

/** Where a secret was found, for the failure message. */
function findings (text: string): string[] {
  const out: string[] = []
  for (const s of secrets) {
    const at = text.indexOf(s)
    if (at >= 0) out.push(`${s.slice(0, 12)}… at ${at}: ${text.slice(Math.max(0, at - 80), at)}`)
  }
  if (text.includes('PRIVATE KEY')) out.push('a PEM private key')
  return out
}

describe('no secrets in logs (log level trace)', () => {
  it('runs the representative flow', async () => {
    // tokens from the real IdP: a JWT bound to client1, an opaque one
    const jwt = (await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access' })).access_token
    const opaque = (await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access', format: 'opaque' })).access_token
    secrets.add(jwt).add(opaque)

    const good = await send(rawRequest('GET', '/jwt/a', [bearer(jwt)]), pki.client1)
    expect(good.response?.status).toBe(200)
    const [h, p, s] = jwt.split('.')
    const bad = await Promise.all([
      send(rawRequest('GET', '/jwt/a', [bearer(jwt)]), pki.client2), // someone else's certificate
      send(rawRequest('GET', '/jwt/a', [bearer(`${h}.${p}.${s.slice(0, -4)}AAAA`)]), pki.client1), // bad signature
      send(rawRequest('GET', '/jwt/a', [bearer(jwt), bearer(jwt)]), pki.client1), // two Authorization headers
      send(rawRequest('GET', `/jwt/a?access_token=${jwt}`), pki.client1), // the token in the query string
      send(rawRequest('GET', `/nowhere?access_token=${jwt}`, [bearer(jwt)]), pki.client1), // no route
      send(rawRequest('GET', '/jwt/a', [['Authorization', `Basic ${basic('client1', BASIC_SECRET)}`], ['Cookie', `sid=${COOKIE_SECRET}`]]), pki.client1),
      send(rawRequest('GET', '/jwt/a', [bearer(`${jwt}$`)]), pki.client1), // not a b64token
    ])
    expect(bad.map(r => r.response?.status)).toEqual([401, 401, 400, 401, 404, 401, 401])
    secrets.add(`${h}.${p}.${s.slice(0, -4)}AAAA`)
    secrets.add(basic('client1', BASIC_SECRET))

    // introspection with a client_secret (client_secret_basic to the IdP)
    // (the certificate header from an untrusted peer is ignored, at debug level)
    expect((await send(rawRequest('GET', '/introspected/a', [bearer(opaque), ['X-Client-Cert', 'ignored']]), pki.client1)).response?.status).toBe(200)
    expect((await send(rawRequest('GET', '/introspected/a', [bearer(opaque)]), pki.client2)).response?.status).toBe(401)
    const unknown = `opaque-${'x'.repeat(40)}`
    secrets.add(unknown)
    expect((await send(rawRequest('GET', '/introspected/a', [bearer(unknown)]), pki.client1)).response?.status).toBe(401)
    secrets.add(basic('introspection-client', INTROSPECTION_SECRET))

    // the built-in authorization server's token endpoint, with secrets right and wrong
    const viaBasic = await send(tokenRequest('grant_type=client_credentials', [['Authorization', `Basic ${basic('basic-client', BASIC_SECRET)}`]]))
    expect(viaBasic.response?.status, viaBasic.raw).toBe(200)
    const viaPost = await send(tokenRequest(`grant_type=client_credentials&client_id=post-client&client_secret=${POST_SECRET}`))
    expect(viaPost.response?.status, viaPost.raw).toBe(200)
    const wrong = await Promise.all([
      send(tokenRequest('grant_type=client_credentials', [['Authorization', `Basic ${basic('basic-client', WRONG_SECRET)}`]])),
      send(tokenRequest(`grant_type=client_credentials&client_id=post-client&client_secret=${WRONG_SECRET}`)),
      send(tokenRequest(`grant_type=client_credentials&client_id=nobody&client_secret=${WRONG_SECRET}`)),
    ])
    expect(wrong.map(r => r.response?.status)).toEqual([401, 401, 401])
    secrets.add(basic('basic-client', BASIC_SECRET)).add(basic('basic-client', WRONG_SECRET))
    const issued = [viaBasic, viaPost].map(r => (JSON.parse(r.response!.body) as { access_token: string }).access_token)
    for (const t of issued) secrets.add(t)

    // the built-in issuer's tokens, validated in process
    expect((await send(rawRequest('GET', '/builtin/a', [bearer(issued[0])]))).response?.status).toBe(200)
    const introspectForm = `token=${issued[1]}&client_id=post-client&client_secret=${POST_SECRET}`
    const introspected = await send(rawRequest('POST', '/oauth2/introspect', [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Length', String(introspectForm.length)]], introspectForm))
    expect(introspected.response?.status).toBe(200)
  })

  it('the captured log lines hold none of the tokens, secrets or private keys', async () => {
    await new Promise<void>(r => { gw.gateway.logger.flush(() => r()) }) // every buffered line reaches the capture
    expect(gw.logs.length, 'the flow was logged at all').toBeGreaterThan(15)
    expect(gw.gateway.logger.level).toBe('trace')
    expect(gw.logs.some(l => l.level === 'debug'), 'debug lines were captured').toBe(true)
    expect(secrets.size).toBeGreaterThan(12)
    expect(findings(JSON.stringify(gw.logs))).toEqual([])
  })

  it('so does this process\'s file in SUITE_LOG_DIR (every gateway this process started)', () => {
    const text = readFileSync(join(SUITE_LOG_DIR, `${process.pid}.log`), 'utf8')
    expect(text.length).toBeGreaterThan(0)
    expect(findings(text)).toEqual([])
  })

  it('the authorization server\'s signing-key store is written 0600', () => {
    const mode = statSync(join(gw.dir, 'state', 'signing-keys.json')).mode & 0o777
    expect(mode.toString(8)).toBe('600')
  })
})
