/**
 * RFC 8705 §3 certificate-bound opaque access tokens, validated by RFC 7662 introspection at a real authorization
 * server (node-oidc-provider over HTTPS with mutual TLS, test/helpers/idp.ts), through the real gateway:
 * mtls-auth + token-introspection + require-scopes in front of an echo upstream, driven with the real curl as the
 * Callista seed does (../shared/seeds/003). Issue 3, "Tests — against a real authorization server".
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest'
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordedRequest, type Upstream } from '../helpers/upstream.js'
import { curl, type CurlResult } from '../helpers/curl.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { SkewedClock } from '../helpers/clock.js'

const INVALID_TOKEN = 'Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid"'
const INTROSPECTION_PATH = '/token/introspection'
const SECRET_CLIENT = { clientId: 'secret-client', secret: 's3cret' }
const INTROSPECTION_CLIENT = { clientId: 'introspection-client', secret: 'introspection-secret' }

let pki: TestPki
let idp: Idp
/** A second IdP whose tokens live 10 s: the cache (ttl 30) must never outlive a token's exp (Callista's plugin did). */
let shortIdp: Idp
let upstream: Upstream
let gw: TestGateway
/**
 * gw's clock (deps.now): real time, as the IdPs issue and judge tokens on it, plus a skew the tests move forward to
 * reach a cache expiry or a token's exp instead of sleeping.
 */
const gwClock = new SkewedClock()

/**
 * A route: mtls-auth (the test CA) + token-introspection at `endpoint` + require-scopes. `introspection` holds extra
 * token-introspection keys, one per line; the introspection client's secret credentials unless `auth` replaces them.
 */
function route (name: string, introspection: string, opts: { scopes?: string, endpoint?: string, auth?: string } = {}): string {
  const auth = opts.auth ?? `client_id: ${INTROSPECTION_CLIENT.clientId}\nclient_secret: ${INTROSPECTION_CLIENT.secret}`
  const lines = `${auth}\n${introspection}`.split('\n').filter(l => l.trim() !== '').map(l => `              ${l.trim()}`).join('\n')
  return `
      - name: ${name}
        paths: [/${name}]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
          - name: token-introspection
            config:
              introspection_endpoint: ${opts.endpoint ?? idp.introspectionEndpoint}
${lines}
          - name: require-scopes
            config:
              scopes: ${opts.scopes ?? '[system-access]'}`
}

beforeAll(async () => {
  pki = await createTestPki()
  idp = await startIdp({
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.ca.certPem,
    accessTokenFormat: 'opaque',
    clients: [
      { client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access other-access' },
      // RFC 6749 §2.3.1 client: no certificate at the token endpoint, so its tokens carry no cnf (unbound)
      { client_id: SECRET_CLIENT.clientId, token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET_CLIENT.secret, scope: 'system-access' },
      // the gateway itself, authenticating to the introspection endpoint with mutual TLS (RFC 8705 §2.1)
      { client_id: 'gateway-mtls', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=rsa-client,O=Example Org' },
    ],
  })
  shortIdp = await startIdp({
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.ca.certPem,
    accessTokenFormat: 'opaque',
    accessTokenTtl: 10,
    clients: [{ client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access' }],
  })
  upstream = await startUpstream()
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
services:
  - name: echo
    url: ${upstream.url}
    routes:${route('optional', `
      certificate_binding: optional
      custom_claims_forward: [department]`)}${route('strict', `
      certificate_binding: strict`)}${route('scoped', '', { scopes: '[system-access, "orders:write"]' })}${route('ti-scope', `
      scope: [other-access]`)}${route('uncached', `
      ttl: 0`)}${route('short-cache', `
      ttl: 2`)}${route('hidden', `
      hide_credentials: true`)}${route('cached', `
      ttl: 30`)}${route('short-lived', `
      ttl: 30`, { endpoint: shortIdp.introspectionEndpoint })}${route('bad-secret', '', { auth: `client_id: ${INTROSPECTION_CLIENT.clientId}\nclient_secret: not-the-secret` })}${route('mtls-introspect', '', {
      auth: `introspection_endpoint_auth_method: tls_client_auth\nclient_id: gateway-mtls\nclient_cert: ${pki.rsaClient.certFile}\nclient_key: ${pki.rsaClient.keyFile}`,
    })}
`, { now: gwClock.now })
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await upstream?.close()
  await shortIdp?.close()
  await idp?.close()
  pki?.cleanup()
})

/** An opaque token from the IdP, bound to client1's certificate (RFC 8705 §2.1 tls_client_auth). */
async function client1Token (scope = 'system-access'): Promise<string> {
  const t = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope })
  return t.access_token
}

/** curl --cacert ca.crt [--cert --key] [-H "Authorization: Bearer …"] https://localhost:PORT/<path> */
function api (path: string, opts: { token?: string, client?: TestCert, headers?: string[] } = {}): Promise<CurlResult> {
  const args = ['--cacert', pki.ca.certFile]
  if (opts.client !== undefined) args.push('--cert', opts.client.certFile, '--key', opts.client.keyFile)
  if (opts.token !== undefined) args.push('-H', `Authorization: Bearer ${opts.token}`)
  for (const h of opts.headers ?? []) args.push('-H', h)
  args.push(`https://localhost:${gw.port()}${path}`)
  return curl(args)
}

/** What the echo upstream received for the request that produced `r` (matched by X-Request-Id). */
function upstreamSaw (r: CurlResult): RecordedRequest {
  const id = r.headers['x-request-id']
  const seen = upstream.requests.find(q => q.headers['x-request-id'] === id)
  if (seen === undefined) throw new Error(`the upstream did not receive request ${id}`)
  return seen
}

function reachedUpstream (r: CurlResult): boolean {
  return upstream.requests.some(q => q.headers['x-request-id'] === r.headers['x-request-id'])
}

/** The gateway's access log line for `r` (the stable error code is asserted, never the prose). */
async function accessLog (r: CurlResult): Promise<LogLine> {
  return vi.waitFor(() => {
    const line = gw.logs.find(l => l.msg === 'request' && l.req_id === r.headers['x-request-id'])
    if (line === undefined) throw new Error('no access log line yet')
    return line
  })
}

const introspections = (): number => idp.requests.filter(q => q.path === INTROSPECTION_PATH).length

describe('RFC 8705 §3: a bound opaque token on the certificate it was issued to', () => {
  it('200; the upstream gets X-Credential-* for exactly the claims the introspection response has', async () => {
    const token = await client1Token()
    const r = await api('/optional/orders?id=1', { token, client: pki.client1 })
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(200)
    const h = upstreamSaw(r).headers
    expect(upstreamSaw(r).url).toBe('/orders?id=1')
    expect(h['x-credential-scope']).toBe('system-access')
    expect(h['x-credential-client-id']).toBe('client1')
    expect(h['x-credential-token-type']).toBe('Bearer')
    expect(h['x-credential-iss']).toBe(idp.issuer)
    expect(h['x-credential-aud']).toBe('https://api.example.test')
    // oidc-provider's introspection of a client-credentials token has no sub, jti or nbf: no header for them
    expect(h['x-credential-sub']).toBeUndefined()
    expect(h['x-credential-jti']).toBeUndefined()
    expect(h['x-credential-nbf']).toBeUndefined()
    const now = Math.floor(Date.now() / 1000)
    expect(Number(h['x-credential-iat'])).toBeGreaterThan(now - 30)
    expect(Number(h['x-credential-exp'])).toBeGreaterThan(now)
    // hide_credentials defaults to false (Kong's default): the token is forwarded
    expect(h.authorization).toBe(`Bearer ${token}`)
    expect((await accessLog(r))).toMatchObject({ status: 200, client_id: 'client1', cert_x5t: pki.thumbprint(pki.client1) })
  })

  it('client-sent X-Credential-* (and a custom_claims_forward header the token lacks) never reach the upstream', async () => {
    const token = await client1Token()
    const r = await api('/optional/', {
      token,
      client: pki.client1,
      headers: ['X-Credential-Client-ID: admin', 'X-Credential-Scope: admin', 'X-Credential-Sub: root', 'X-Credential-Department: finance', 'X-Credential-Exp: 9999999999'],
    })
    expect(r.status).toBe(200)
    const h = upstreamSaw(r).headers
    expect(h['x-credential-client-id']).toBe('client1')
    expect(h['x-credential-scope']).toBe('system-access')
    // the token has no sub (see above): the client's copy is removed, not passed through
    expect(h['x-credential-sub']).toBeUndefined()
    expect(h['x-credential-department']).toBeUndefined()
    expect(h['x-credential-exp']).not.toBe('9999999999')
    // one value each: the gateway's, not the client's appended to it
    expect(upstreamSaw(r).rawHeaders.filter(n => n.toLowerCase() === 'x-credential-client-id')).toHaveLength(1)
  })

  it('a spoofed credential header on a refused request does not reach the upstream either', async () => {
    const r = await api('/optional/', { client: pki.client1, headers: ['X-Credential-Client-ID: admin'] })
    expect(r.status).toBe(401)
    expect(reachedUpstream(r)).toBe(false)
  })
})

describe('RFC 8705 §3: the same token on another certificate', () => {
  it('client2 replaying client1\'s token: the handshake succeeds, then 401 invalid_token; the upstream never sees it', async () => {
    const token = await client1Token()
    expect((await api('/optional/', { token, client: pki.client1 })).status).toBe(200)
    const r = await api('/optional/', { token, client: pki.client2 })
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(JSON.parse(r.body)).toEqual({ message: 'The access token is invalid' })
    expect(reachedUpstream(r)).toBe(false)
    expect(await accessLog(r)).toMatchObject({ err: 'CB_ERR_TOKEN_BINDING_MISMATCH', cert_x5t: pki.thumbprint(pki.client2) })
  })

  it('the cached introspection result is not valid for another certificate (binding checked per request)', async () => {
    const token = await client1Token()
    expect((await api('/cached/', { token, client: pki.client1 })).status).toBe(200)
    const before = introspections()
    const r = await api('/cached/', { token, client: pki.client2 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(introspections()).toBe(before)
  })

  it('strict binding too: client2 with client1\'s token is 401', async () => {
    const token = await client1Token()
    expect((await api('/strict/', { token, client: pki.client1 })).status).toBe(200)
    expect((await api('/strict/', { token, client: pki.client2 })).status).toBe(401)
  })
})

describe('mtls-auth: the client certificate (listener in request mode)', () => {
  it('the listener only requests a certificate: mtls-auth decides per route', () => {
    expect(gw.gateway.addresses()[0].mode).toBe('request')
  })

  it('no client certificate: 401 {"message":"No required TLS certificate was sent"}, the IdP is not asked', async () => {
    const token = await client1Token()
    const before = introspections()
    const r = await api('/optional/', { token })
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body)).toEqual({ message: 'No required TLS certificate was sent' })
    expect((await accessLog(r)).err).toBe('CB_ERR_CERT_MISSING')
    expect(introspections()).toBe(before)
  })

  it.each([
    ['a look-alike of client1 from an unrelated CA', () => pki.otherClient, /untrusted/],
    ['an expired certificate from the right CA', () => pki.expiredClient, /expired/],
  ])('%s: 401 {"message":"TLS certificate failed verification"}', async (_what, cert, reason) => {
    const token = await client1Token()
    const r = await api('/optional/', { token, client: cert() })
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body)).toEqual({ message: 'TLS certificate failed verification' })
    const log = await accessLog(r)
    expect(log.err).toBe('CB_ERR_CERT_INVALID')
    expect(String(log.reason)).toMatch(reason)
    expect(reachedUpstream(r)).toBe(false)
  })
})

describe('RFC 6750 §3: token presence and syntax', () => {
  it('no token: 401 with WWW-Authenticate: Bearer realm="certbound" and no error code', async () => {
    const r = await api('/optional/', { client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Bearer realm="certbound"')
    expect(JSON.parse(r.body)).toEqual({ message: 'Unauthorized' })
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_MISSING')
  })

  it('two Authorization headers: 400 invalid_request (RFC 6750 §2), even when both carry the valid token', async () => {
    const token = await client1Token()
    const r = await api('/optional/', { client: pki.client1, headers: [`Authorization: Bearer ${token}`, `Authorization: Bearer ${token}`] })
    expect(r.status).toBe(400)
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="certbound", error="invalid_request"/)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_MULTIPLE')
    expect(reachedUpstream(r)).toBe(false)
  })

  it('a token the IdP never issued: 401 invalid_token (introspection says active: false)', async () => {
    const r = await api('/optional/', { token: 'not-a-token-the-idp-issued', client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_INACTIVE')
  })
})

describe('RFC 7009 revocation at the IdP', () => {
  it('ttl: 0 — a revoked token is refused on the next request', async () => {
    const token = await client1Token()
    expect((await api('/uncached/', { token, client: pki.client1 })).status).toBe(200)
    await idp.revoke(token, INTROSPECTION_CLIENT)
    const r = await api('/uncached/', { token, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_INACTIVE')
  })

  it('ttl: 2 — the cached active result serves until it expires (README: "Revocation takes effect when the cached result expires"), then the revocation is seen', async () => {
    const token = await client1Token()
    expect((await api('/short-cache/', { token, client: pki.client1 })).status).toBe(200)
    // taken once the answer is here: the result was cached before it was sent, so it expires by cachedAt + 2 s
    // (taken before the request, a slow introspection on a loaded machine would end the wait too early)
    const cachedAt = gwClock.now()
    await idp.revoke(token, INTROSPECTION_CLIENT)
    expect((await api('/short-cache/', { token, client: pki.client1 })).status).toBe(200)
    gwClock.advanceTo(cachedAt + 2100)
    const r = await api('/short-cache/', { token, client: pki.client1 })
    expect(r.status).toBe(401)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_INACTIVE')
  })
})

describe('RFC 7662 §4: a cached result never outlives the token (exp)', () => {
  it('ttl: 30 with a token that lives 10 s: 200, then 401 once exp has passed', async () => {
    const token = (await shortIdp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access' })).access_token
    const first = await api('/short-lived/', { token, client: pki.client1 })
    expect(first.status).toBe(200)
    const exp = Number(upstreamSaw(first).headers['x-credential-exp'])
    // RFC 7519 §4.1.4: past "on or after" exp (leeway 0); the IdP, on real time, would still call it active
    gwClock.advanceTo(exp * 1000)
    const r = await api('/short-lived/', { token, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(reachedUpstream(r)).toBe(false)
  })
})

describe('the gateway\'s own authentication at the introspection endpoint', () => {
  it('introspection_endpoint_auth_method: tls_client_auth (mutual TLS to the IdP) works', async () => {
    const r = await api('/mtls-introspect/', { token: await client1Token(), client: pki.client1 })
    expect(r.status).toBe(200)
    expect(upstreamSaw(r).headers['x-credential-client-id']).toBe('client1')
  })

  it('a wrong client_secret: the IdP answers 4xx → 401 invalid_token (fail closed), the IdP\'s answer in the log', async () => {
    const r = await api('/bad-secret/', { token: await client1Token(), client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    const log = await accessLog(r)
    expect(log.err).toBe('CB_ERR_TOKEN_INVALID')
    expect(String(log.reason)).toMatch(/answered 401.*invalid_client/)
    expect(reachedUpstream(r)).toBe(false)
  })

  it('a JWT access token, which oidc-provider does not introspect: 401 invalid_token, never passed', async () => {
    const jwt = (await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access', format: 'jwt' })).access_token
    expect(jwt.split('.')).toHaveLength(3)
    const r = await api('/optional/', { token: jwt, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(reachedUpstream(r)).toBe(false)
  })
})

describe('RFC 6750 §3.1: insufficient_scope', () => {
  it('require-scopes: 403 with scope="…" naming what the resource needs', async () => {
    const token = await client1Token()
    const r = await api('/scoped/', { token, client: pki.client1 })
    expect(r.status).toBe(403)
    expect(r.headers['www-authenticate']).toBe('Bearer realm="certbound", error="insufficient_scope", error_description="The access token lacks a required scope", scope="system-access orders:write"')
    expect(JSON.parse(r.body)).toEqual({ message: 'Insufficient scope' })
    expect((await accessLog(r)).err).toBe('CB_ERR_INSUFFICIENT_SCOPE')
    expect(reachedUpstream(r)).toBe(false)
  })

  it('token-introspection scope: [other-access] — 403 for a token without it, 200 for one with it', async () => {
    const r = await api('/ti-scope/', { token: await client1Token('system-access'), client: pki.client1 })
    expect(r.status).toBe(403)
    expect(r.headers['www-authenticate']).toContain('error="insufficient_scope"')
    expect(r.headers['www-authenticate']).toContain('scope="other-access"')
    const ok = await api('/ti-scope/', { token: await client1Token('system-access other-access'), client: pki.client1 })
    expect(ok.status).toBe(200)
    expect(upstreamSaw(ok).headers['x-credential-scope']).toBe('system-access other-access')
  })
})

describe('certificate_binding: optional vs strict with an unbound token', () => {
  let unbound: string

  beforeAll(async () => {
    unbound = (await idp.token({ ...SECRET_CLIENT, scope: 'system-access' })).access_token
  })

  it('optional accepts a token without cnf (on a certificate mtls-auth verified)', async () => {
    const r = await api('/optional/', { token: unbound, client: pki.client2 })
    expect(r.status).toBe(200)
    expect(upstreamSaw(r).headers['x-credential-client-id']).toBe(SECRET_CLIENT.clientId)
  })

  it('strict refuses it: 401 invalid_token', async () => {
    const r = await api('/strict/', { token: unbound, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
    expect(reachedUpstream(r)).toBe(false)
  })
})

describe('cache: one introspection per token (ttl 30)', () => {
  it('N sequential requests with one token make one call to the IdP', async () => {
    const token = await client1Token()
    const before = introspections()
    for (let i = 0; i < 5; i++) expect((await api('/cached/', { token, client: pki.client1 })).status).toBe(200)
    expect(introspections() - before).toBe(1)
  })

  it('N concurrent requests with a new token make one call (single flight)', async () => {
    const token = await client1Token()
    const before = introspections()
    const rs = await Promise.all(Array.from({ length: 8 }, () => api('/cached/', { token, client: pki.client1 })))
    expect(rs.map(r => r.status)).toEqual(Array(8).fill(200))
    expect(introspections() - before).toBe(1)
  })

  it('ttl: 0 asks the IdP every time', async () => {
    const token = await client1Token()
    const before = introspections()
    for (let i = 0; i < 3; i++) expect((await api('/uncached/', { token, client: pki.client1 })).status).toBe(200)
    expect(introspections() - before).toBe(3)
  })
})

describe('hide_credentials', () => {
  it('true: the upstream gets no Authorization header (but the X-Credential-* headers)', async () => {
    const token = await client1Token()
    const r = await api('/hidden/', { token, client: pki.client1 })
    expect(r.status).toBe(200)
    const h = upstreamSaw(r).headers
    expect(h.authorization).toBeUndefined()
    expect(upstreamSaw(r).rawHeaders.map(n => n.toLowerCase())).not.toContain('authorization')
    expect(h['x-credential-client-id']).toBe('client1')
  })
})

describe('fail closed: the IdP is down', () => {
  let cached: string
  let uncached: string

  beforeAll(async () => {
    cached = await client1Token()
    uncached = await client1Token()
    expect((await api('/cached/', { token: cached, client: pki.client1 })).status).toBe(200)
    await idp.stop()
  })

  afterAll(async () => {
    await idp.start()
  })

  it('a token with a cached result still gets 200', async () => {
    const r = await api('/cached/', { token: cached, client: pki.client1 })
    expect(r.status).toBe(200)
  })

  it('a token never seen: 503 {"message":"The authorization server is unavailable"}, no challenge, never passed', async () => {
    const r = await api('/cached/', { token: uncached, client: pki.client1 })
    expect(r.status).toBe(503)
    expect(JSON.parse(r.body)).toEqual({ message: 'The authorization server is unavailable' })
    // RFC 9110 §11.6.1: a challenge belongs to a 401; the token is not the problem
    expect(r.headers['www-authenticate']).toBeUndefined()
    expect(reachedUpstream(r)).toBe(false)
    const log = await accessLog(r)
    expect(log.err).toBe('CB_ERR_IDP_UNAVAILABLE')
    expect(String(log.reason)).toMatch(/unreachable/)
  })

  it('the failure is not cached: once the IdP is back, the same token works', async () => {
    await idp.start()
    const r = await api('/cached/', { token: uncached, client: pki.client1 })
    expect(r.status).toBe(200)
    expect(upstreamSaw(r).headers['x-credential-client-id']).toBe('client1')
  })
})
