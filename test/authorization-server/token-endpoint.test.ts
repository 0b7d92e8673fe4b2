import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execSync } from 'node:child_process'
import { connect } from 'node:tls'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { call, decodeJwt, startAuthorizationServer, type Harness } from './harness.js'

const SECRET = 'a-long-enough-client-secret-123'
let pki: TestPki
let as: Harness

beforeAll(async () => {
  pki = await createTestPki()
  as = await startAuthorizationServer(pki, origin => ({
    issuer: origin,
    ca_certificates: pki.ca.certFile,
    access_token_ttl: 120,
    resources: ['https://api.example.com/', 'orders-api'],
    clients: [
      { client_id: 'svc', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'orders:read orders:write admin', access_token_ttl: 60 },
      { client_id: 'unbound-cert', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client2,O=Example Org', tls_client_certificate_bound_access_tokens: false },
      { client_id: 'secret', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET, scope: 'read' },
      { client_id: 'secret-bound', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET, tls_client_certificate_bound_access_tokens: true },
      { client_id: 'secret-never', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET, tls_client_certificate_bound_access_tokens: false },
      { client_id: 'narrow-aud', token_endpoint_auth_method: 'client_secret_post', client_secret: SECRET, resources: ['orders-api'] },
    ],
  }))
})

afterAll(async () => {
  await as?.close()
  pki?.cleanup()
})

const cc = (extra: Record<string, string | string[]> = {}) => ({ grant_type: 'client_credentials', client_id: 'svc', ...extra })
const tokenCall = (form: Record<string, string | string[]>, o: Parameters<typeof call>[2] = {}) => call(as.port, '/oauth2/token', { form, cert: pki.client1, ...o })

/** x5t#S256 computed by openssl, independently of node:crypto and of the server. */
function opensslThumbprint (certFile: string): string {
  return execSync(`openssl x509 -in '${certFile}' -outform der | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\\n'`, { encoding: 'utf8' })
}

describe('RFC 6749 §5.1 / RFC 9068: the token response and the JWT', () => {
  it('answers 200 with access_token, token_type Bearer, expires_in, scope; no-store', async () => {
    const r = await tokenCall(cc())
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('application/json;charset=UTF-8')
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.headers.pragma).toBe('no-cache')
    expect(Object.keys(r.json).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type'])
    expect(r.json).toMatchObject({ token_type: 'Bearer', expires_in: 60, scope: 'orders:read orders:write admin' })
  })

  it('signs an at+jwt with every RFC 9068 claim, bound to the certificate (thumbprint checked with openssl)', async () => {
    const before = Math.floor(Date.now() / 1000)
    const r = await tokenCall(cc())
    const { header, payload } = decodeJwt(r.json.access_token as string)
    expect(header).toEqual({ alg: 'ES256', kid: as.instance.keys.signing.kid, typ: 'at+jwt' })
    expect(Object.keys(payload).sort()).toEqual(['aud', 'client_id', 'cnf', 'exp', 'iat', 'iss', 'jti', 'nbf', 'scope', 'sub'])
    expect(payload.iss).toBe(as.origin)
    expect(payload.sub).toBe('svc')
    expect(payload.client_id).toBe('svc')
    expect(payload.aud).toBe(as.origin) // default audience: the issuer
    expect(payload.scope).toBe('orders:read orders:write admin')
    expect(payload.iat).toBeGreaterThanOrEqual(before)
    expect(payload.nbf).toBe(payload.iat)
    expect(payload.exp).toBe((payload.iat as number) + 60)
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{22}$/)
    const x5t = opensslThumbprint(pki.client1.certFile)
    expect(x5t).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(payload.cnf).toEqual({ 'x5t#S256': x5t })
  })

  it('issues a fresh jti every time', async () => {
    const a = decodeJwt((await tokenCall(cc())).json.access_token as string).payload.jti
    const b = decodeJwt((await tokenCall(cc())).json.access_token as string).payload.jti
    expect(a).not.toBe(b)
  })
})

describe('RFC 6749 §3.3: scope', () => {
  it('grants every allowed scope when none is requested', async () => {
    expect((await tokenCall(cc())).json.scope).toBe('orders:read orders:write admin')
  })
  it('narrows to the requested subset (configured order, duplicates dropped)', async () => {
    const r = await tokenCall(cc({ scope: 'orders:write orders:read orders:write' }))
    expect(r.status).toBe(200)
    expect(r.json.scope).toBe('orders:read orders:write')
    expect(decodeJwt(r.json.access_token as string).payload.scope).toBe('orders:read orders:write')
  })
  it('refuses a scope the client may not have with invalid_scope', async () => {
    const r = await tokenCall(cc({ scope: 'orders:read billing' }))
    expect(r.status).toBe(400)
    expect(r.json).toEqual({ error: 'invalid_scope', error_description: 'scope "billing" is not allowed for this client' })
  })
  it('refuses characters outside scope-token with invalid_scope', async () => {
    const r = await tokenCall(cc({ scope: 'orders:read "x"' }))
    expect(r.json.error).toBe('invalid_scope')
  })
  it('omits scope for a client without scopes', async () => {
    const r = await tokenCall({ grant_type: 'client_credentials', client_id: 'unbound-cert' }, { cert: pki.client2 })
    expect(r.status).toBe(200)
    expect(r.json.scope).toBeUndefined()
    expect(decodeJwt(r.json.access_token as string).payload.scope).toBeUndefined()
  })
})

describe('RFC 8707: resource and audience', () => {
  it('sets aud to the requested resource', async () => {
    const r = await tokenCall(cc({ resource: 'https://api.example.com/' }))
    expect(decodeJwt(r.json.access_token as string).payload.aud).toBe('https://api.example.com/')
  })
  it('accepts several resource values and audience (aud becomes an array)', async () => {
    const r = await tokenCall(cc({ resource: 'https://api.example.com/', audience: 'orders-api' }))
    expect(decodeJwt(r.json.access_token as string).payload.aud).toEqual(['https://api.example.com/', 'orders-api'])
  })
  it('refuses a resource that is not allowed, or not an absolute URI, with invalid_target', async () => {
    for (const resource of ['https://evil.example/', 'not a uri', 'https://api.example.com/#frag']) {
      const r = await tokenCall(cc({ resource }))
      expect(r.status).toBe(400)
      expect(r.json.error).toBe('invalid_target')
    }
  })
  it('applies a client\'s own resources list', async () => {
    const ok = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'narrow-aud', client_secret: SECRET, audience: 'orders-api' } })
    expect(ok.status).toBe(200)
    const no = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'narrow-aud', client_secret: SECRET, resource: 'https://api.example.com/' } })
    expect(no.json.error).toBe('invalid_target')
  })
})

describe('RFC 8705 §3: certificate-bound tokens', () => {
  it('a certificate client with tls_client_certificate_bound_access_tokens: false gets an unbound token', async () => {
    const r = await tokenCall({ grant_type: 'client_credentials', client_id: 'unbound-cert' }, { cert: pki.client2 })
    expect(decodeJwt(r.json.access_token as string).payload.cnf).toBeUndefined()
  })
  it('a secret client presenting a certificate on the session gets a token bound to it', async () => {
    const r = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials' }, basic: ['secret', SECRET], cert: pki.client2 })
    expect(r.status).toBe(200)
    expect(decodeJwt(r.json.access_token as string).payload.cnf).toEqual({ 'x5t#S256': opensslThumbprint(pki.client2.certFile) })
  })
  it('a secret client without a certificate gets an unbound token', async () => {
    const r = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials' }, basic: ['secret', SECRET] })
    expect(decodeJwt(r.json.access_token as string).payload.cnf).toBeUndefined()
  })
  it('tls_client_certificate_bound_access_tokens: true on a secret client requires a certificate', async () => {
    const no = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials' }, basic: ['secret-bound', SECRET] })
    expect(no.status).toBe(400)
    expect(no.json.error).toBe('invalid_request')
    expect(no.json.error_description).toMatch(/certificate-bound/)
    // any certificate will do for binding: the TLS handshake proved possession of its key (RFC 8705 §3)
    const yes = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials' }, basic: ['secret-bound', SECRET], cert: pki.selfSigned })
    expect(decodeJwt(yes.json.access_token as string).payload.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.selfSigned) })
  })
  it('tls_client_certificate_bound_access_tokens: false never binds', async () => {
    const r = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials' }, basic: ['secret-never', SECRET], cert: pki.client1 })
    expect(decodeJwt(r.json.access_token as string).payload.cnf).toBeUndefined()
  })
})

describe('RFC 6749 §3.2, §5.2: request shape and errors', () => {
  it('405 with Allow for GET', async () => {
    const r = await call(as.port, '/oauth2/token', { cert: pki.client1 })
    expect(r.status).toBe(405)
    expect(r.headers.allow).toBe('POST')
  })
  it('refuses a JSON body', async () => {
    const r = await call(as.port, '/oauth2/token', { method: 'POST', body: JSON.stringify(cc()), headers: { 'content-type': 'application/json' }, cert: pki.client1 })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('invalid_request')
  })
  it('accepts a charset=UTF-8 content type, refuses another charset', async () => {
    const body = new URLSearchParams(cc()).toString()
    expect((await call(as.port, '/oauth2/token', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, cert: pki.client1 })).status).toBe(200)
    expect((await call(as.port, '/oauth2/token', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1' }, cert: pki.client1 })).status).toBe(400)
  })
  it('refuses a repeated parameter', async () => {
    const r = await tokenCall(cc({ scope: ['orders:read', 'admin'] }))
    expect(r.status).toBe(400)
    expect(r.json).toEqual({ error: 'invalid_request', error_description: 'parameter scope is repeated (RFC 6749 §3.2)' })
  })
  it('refuses bad percent-encoding and invalid UTF-8', async () => {
    for (const body of ['grant_type=client_credentials&client_id=%zz', 'grant_type=client_credentials&client_id=%C3%28']) {
      const r = await call(as.port, '/oauth2/token', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' }, cert: pki.client1 })
      expect(r.status).toBe(400)
      expect(r.json.error).toBe('invalid_request')
    }
  })
  it('treats empty parameters as omitted (RFC 6749 §3.1)', async () => {
    const r = await call(as.port, '/oauth2/token', { method: 'POST', body: 'grant_type=client_credentials&client_id=svc&scope=&resource=', headers: { 'content-type': 'application/x-www-form-urlencoded' }, cert: pki.client1 })
    expect(r.status).toBe(200)
    expect(r.json.scope).toBe('orders:read orders:write admin')
  })
  it('refuses parameters in the query string', async () => {
    const r = await call(as.port, '/oauth2/token?client_secret=x', { form: cc(), cert: pki.client1 })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('invalid_request')
  })
  it('grant_type missing → invalid_request; another grant → unsupported_grant_type', async () => {
    expect((await tokenCall({ client_id: 'svc' })).json.error).toBe('invalid_request')
    const r = await tokenCall(cc({ grant_type: 'password' }))
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('unsupported_grant_type')
  })
  it('refuses an oversized body with 400 (Content-Length known: before reading it)', async () => {
    const r = await tokenCall(cc({ pad: 'x'.repeat(10_000) }))
    expect(r.status).toBe(400)
    expect(r.json.error_description).toBe('the request body exceeds 8192 bytes')
    expect(r.headers.connection).toBe('close')
  })
  it('refuses an oversized chunked body as soon as it crosses the limit', async () => {
    const res = await rawRequest(as.port, [
      'POST /oauth2/token HTTP/1.1', 'Host: localhost', 'Content-Type: application/x-www-form-urlencoded', 'Transfer-Encoding: chunked', '', '',
    ].join('\r\n'), 'x'.repeat(4096), 5)
    expect(res).toMatch(/^HTTP\/1\.1 400 /)
    expect(res).toContain('exceeds 8192 bytes')
  })
  it('does not answer other paths (the router finds no route: exact paths only)', async () => {
    const r = await call(as.port, '/oauth2/tokens')
    expect(r.status).toBe(404)
    expect(r.json.message).toBe('no Route matched with those values')
  })
})

/** Send a chunked body in `count` chunks of `chunk`, return what the server answered. */
function rawRequest (port: number, head: string, chunk: string, count: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      s.write(head)
      for (let i = 0; i < count; i++) s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)
      s.write('0\r\n\r\n')
    })
    let out = ''
    s.on('data', (d: Buffer) => { out += d.toString('utf8') })
    s.on('end', () => resolve(out))
    s.on('close', () => resolve(out))
    s.on('error', (e) => out === '' ? reject(e) : resolve(out))
  })
}
