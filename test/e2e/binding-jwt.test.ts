/**
 * RFC 8705 §3 certificate-bound JWT access tokens (RFC 9068, ES256) from a real authorization server
 * (node-oidc-provider over HTTPS with mutual TLS, test/helpers/idp.ts), validated locally by openid-connect through
 * the real gateway: discovery, JWKS and its rotation, proof_of_possession_mtls strict/optional, audience_required,
 * require-scopes, request-transformer header injection; forged tokens; the IdP down; TLS session resumption; and
 * certificate_header from trusted proxies in each format. Issue 3, "Tests — against a real authorization server";
 * the Kong guide seed is ../shared/seeds/004.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest'
import { createPublicKey, createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect, type TLSSocket } from 'node:tls'
import { decodeProtectedHeader, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordedRequest, type Upstream } from '../helpers/upstream.js'
import { curl, type CurlResult } from '../helpers/curl.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { SkewedClock } from '../helpers/clock.js'

const INVALID_TOKEN = 'Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid"'
const AUDIENCE = 'https://api.example.test'
const SECRET_CLIENT = { clientId: 'secret-client', secret: 's3cret' }

/** The header each certificate_header_format is conventionally carried in. */
const FORMATS = [
  { format: 'url_encoded', header: 'x-client-cert' },
  { format: 'base64_encoded', header: 'x-client-cert' },
  { format: 'rfc9440', header: 'client-cert' },
  { format: 'xfcc', header: 'x-forwarded-client-cert' },
] as const
type Format = typeof FORMATS[number]['format']

let pki: TestPki
let idp: Idp
/** Tokens that live 10 s (RFC 9068 exp), for the expiry tests: gw's clock is moved past their exp. */
let shortIdp: Idp
let upstream: Upstream
let gw: TestGateway
/** The same certificate_header routes, but trusted_ips does not include the loopback address the tests use. */
let untrusted: TestGateway
/** When gw loaded its JWKS, on gw's clock (the cooldown route's rediscovery_lifetime counts from there). */
let gwStartedAt = 0
/**
 * gw's clock (deps.now): real time, as the IdP issues tokens on it, plus a skew the tests move forward to reach an
 * exp or the end of a window instead of sleeping.
 */
const gwClock = new SkewedClock()

const TLS = 0
const PLAIN = 1

function openidConnect (issuer: string, extra: string): string {
  return `          - name: openid-connect
            config:
              issuer: ${issuer}
              auth_methods: [bearer]
              proof_of_possession_auth_methods_validation: true
              audience_required: [${AUDIENCE}]
${extra.split('\n').filter(l => l.trim() !== '').map(l => `              ${l.trim()}`).join('\n')}`
}

const requireScopes = `          - name: require-scopes
            config:
              scopes: [system-access]`

/** The certificate_header routes (openid-connect and token-introspection), trusting `trustedIps`. */
function headerRoutes (trustedIps: string): string {
  return FORMATS.map(({ format, header }) => `
      - name: hdr-${format}
        paths: [/hdr-${format}]
        plugins:
${openidConnect(idp.issuer, `proof_of_possession_mtls: strict
certificate_header: ${header}
certificate_header_format: ${format}
trusted_ips: ${trustedIps}`)}
${requireScopes}
      - name: ti-hdr-${format}
        paths: [/ti-hdr-${format}]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.introspectionEndpoint}
              client_id: introspection-client
              client_secret: introspection-secret
              certificate_binding: strict
              certificate_header: ${header}
              certificate_header_format: ${format}
              trusted_ips: ${trustedIps}
${requireScopes}`).join('')
}

beforeAll(async () => {
  pki = await createTestPki()
  const idpOptions = {
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.ca.certPem,
    audience: AUDIENCE,
    clients: [
      { client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth' as const, tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access' },
      // RFC 6749 §2.3.1: no certificate at the token endpoint, so no cnf in its tokens (unbound)
      { client_id: SECRET_CLIENT.clientId, token_endpoint_auth_method: 'client_secret_basic' as const, client_secret: SECRET_CLIENT.secret, scope: 'system-access' },
    ],
  }
  ;[idp, shortIdp, upstream] = await Promise.all([startIdp(idpOptions), startIdp({ ...idpOptions, accessTokenTtl: 10 }), startUpstream()])
  const listeners = `
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: none       # proof_of_possession_mtls makes it request one
    - address: 127.0.0.1:0           # plain HTTP behind a (simulated) TLS terminator
  trusted_certificates: ${pki.ca.certFile}`
  gw = await startGateway(`_format_version: "3.0"
gateway:${listeners}
services:
  - name: echo
    url: ${upstream.url}
    routes:
      - name: strict
        paths: [/strict]
        plugins:
${openidConnect(idp.issuer, 'proof_of_possession_mtls: strict')}
${requireScopes}
          - name: request-transformer
            config:
              add:
                headers:
                  - "x-consumer-id:$(credential.client_id)"
                  - "x-client-subject:$(client_cert.subject)"
                  - "x-client-x5t:$(client_cert.x5t_s256)"
      - name: optional
        paths: [/optional]
        plugins:
${openidConnect(idp.issuer, 'proof_of_possession_mtls: optional')}
${requireScopes}
      - name: other-audience
        paths: [/other-audience]
        plugins:
${openidConnect(idp.issuer, 'proof_of_possession_mtls: strict').replace(`audience_required: [${AUDIENCE}]`, 'audience_required: [https://other.example.test]')}
      - name: short
        paths: [/short]
        plugins:
${openidConnect(shortIdp.issuer, 'proof_of_possession_mtls: strict')}
      - name: rotating
        paths: [/rotating]
        plugins:
${openidConnect(idp.issuer, `proof_of_possession_mtls: strict
rediscovery_lifetime: 0`)}
      - name: cooldown
        paths: [/cooldown]
        plugins:
${openidConnect(idp.issuer, `proof_of_possession_mtls: strict
rediscovery_lifetime: 3`)}${headerRoutes('[127.0.0.1/32]')}
`, { now: gwClock.now })
  gwStartedAt = gwClock.now()
  untrusted = await startGateway(`_format_version: "3.0"
gateway:${listeners}
services:
  - name: echo
    url: ${upstream.url}
    routes:${headerRoutes('[10.0.0.0/8]')}
`)
}, 60_000)

afterAll(async () => {
  await untrusted?.close()
  await gw?.close()
  await upstream?.close()
  await shortIdp?.close()
  await idp?.close()
  pki?.cleanup()
})

async function boundToken (from: Idp = idp, format: 'jwt' | 'opaque' = 'jwt'): Promise<string> {
  return (await from.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access', format })).access_token
}

/** curl --cacert ca.crt [--cert --key] [-H "Authorization: Bearer …"] https://localhost:PORT/<path> */
function api (path: string, opts: { token?: string, client?: TestCert, headers?: string[], gateway?: TestGateway, args?: string[] } = {}): Promise<CurlResult> {
  const g = opts.gateway ?? gw
  const args = ['--cacert', pki.ca.certFile, ...(opts.args ?? [])]
  if (opts.client !== undefined) args.push('--cert', opts.client.certFile, '--key', opts.client.keyFile)
  if (opts.token !== undefined) args.push('-H', `Authorization: Bearer ${opts.token}`)
  for (const h of opts.headers ?? []) args.push('-H', h)
  args.push(`https://localhost:${g.port(TLS)}${path}`)
  return curl(args)
}

/** curl over the plain-HTTP listener, as a TLS terminator would call the gateway; `source` binds the client address. */
function viaProxy (g: TestGateway, path: string, opts: { token: string, headers?: string[], source?: string }): Promise<CurlResult> {
  const args = opts.source === undefined ? [] : ['--interface', opts.source]
  args.push('-H', `Authorization: Bearer ${opts.token}`)
  for (const h of opts.headers ?? []) args.push('-H', h)
  args.push(`http://127.0.0.1:${g.port(PLAIN)}${path}`)
  return curl(args)
}

function upstreamSaw (r: CurlResult): RecordedRequest {
  const id = r.headers['x-request-id']
  const seen = upstream.requests.find(q => q.headers['x-request-id'] === id)
  if (seen === undefined) throw new Error(`the upstream did not receive request ${id} (status ${r.status})`)
  return seen
}

function reachedUpstream (r: CurlResult): boolean {
  return upstream.requests.some(q => q.headers['x-request-id'] === r.headers['x-request-id'])
}

async function accessLog (r: CurlResult | { requestId: string }, g: TestGateway = gw): Promise<LogLine> {
  const id = 'requestId' in r ? r.requestId : r.headers['x-request-id']
  return vi.waitFor(() => {
    const line = g.logs.find(l => l.msg === 'request' && l.req_id === id)
    if (line === undefined) throw new Error('no access log line yet')
    return line
  })
}

function payloadOf (jwt: string): JWTPayload {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')) as JWTPayload
}

const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url')

describe('RFC 8705 §3 + RFC 9068: a bound JWT on the certificate it was issued to', () => {
  it('200; X-Credential-* from the claims and request-transformer\'s $(credential.client_id) / $(client_cert.…) upstream', async () => {
    const token = await boundToken()
    const claims = payloadOf(token)
    expect(claims.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.client1) })
    const r = await api('/strict/anything?x=1', { token, client: pki.client1 })
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(200)
    expect(upstreamSaw(r).url).toBe('/anything?x=1')
    const h = upstreamSaw(r).headers
    expect(h).toMatchObject({
      'x-credential-client-id': 'client1',
      'x-credential-sub': 'client1',
      'x-credential-scope': 'system-access',
      'x-credential-iss': idp.issuer,
      'x-credential-aud': AUDIENCE,
      'x-credential-jti': claims.jti,
      'x-credential-exp': String(claims.exp),
      'x-credential-iat': String(claims.iat),
      'x-consumer-id': 'client1',
      'x-client-subject': 'CN=client1,O=Example Org',
      'x-client-x5t': pki.thumbprint(pki.client1),
    })
    expect(await accessLog(r)).toMatchObject({ status: 200, client_id: 'client1', sub: 'client1' })
  })

  it('the listener (client_certificate: none) requests a certificate because of proof_of_possession_mtls', () => {
    expect(gw.gateway.addresses()[TLS].mode).toBe('request')
  })

  it('strip before set: client-sent identity headers are replaced by the verified values', async () => {
    const r = await api('/strict/', {
      token: await boundToken(),
      client: pki.client1,
      headers: ['X-Consumer-ID: admin', 'X-Client-Subject: CN=admin', 'X-Credential-Scope: admin', 'X-Credential-Client-ID: admin', 'X-Client-X5t: AAAA'],
    })
    expect(r.status).toBe(200)
    const q = upstreamSaw(r)
    expect(q.headers).toMatchObject({ 'x-consumer-id': 'client1', 'x-client-subject': 'CN=client1,O=Example Org', 'x-credential-scope': 'system-access', 'x-credential-client-id': 'client1', 'x-client-x5t': pki.thumbprint(pki.client1) })
    for (const name of ['x-consumer-id', 'x-client-subject', 'x-credential-scope']) {
      expect(q.rawHeaders.filter(n => n.toLowerCase() === name), name).toHaveLength(1)
    }
  })
})

describe('strip before set: underscore spellings of identity headers', () => {
  // CGI-style upstreams (WSGI, Rack, PHP, Go net/http/cgi) map X_Credential_Client_ID and X-Credential-Client-ID to
  // the same HTTP_X_CREDENTIAL_CLIENT_ID: a client's underscore spelling must not shadow the verified value.
  it('X_Credential_Client_ID / X_Consumer_ID sent by the client do not reach the upstream', async () => {
    const r = await api('/strict/', { token: await boundToken(), client: pki.client1, headers: ['X_Credential_Client_ID: admin', 'X_Consumer_ID: admin'] })
    expect(r.status).toBe(200)
    const names = upstreamSaw(r).rawHeaders.filter((_, i) => i % 2 === 0).map(n => n.toLowerCase().replaceAll('_', '-'))
    expect(names.filter(n => n === 'x-credential-client-id')).toHaveLength(1)
    expect(names.filter(n => n === 'x-consumer-id')).toHaveLength(1)
  })
})

describe('RFC 8705 §3: the same token on another certificate, or none', () => {
  it('client2 replaying client1\'s token: 401 invalid_token (strict and optional)', async () => {
    const token = await boundToken()
    expect((await api('/strict/', { token, client: pki.client1 })).status).toBe(200)
    for (const path of ['/strict/', '/optional/']) {
      const r = await api(path, { token, client: pki.client2 })
      expect(r.status, path).toBe(401)
      expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
      expect(JSON.parse(r.body)).toEqual({ message: 'The access token is invalid' })
      expect(reachedUpstream(r)).toBe(false)
      expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
    }
  })

  it('no client certificate: 401 invalid_token', async () => {
    const r = await api('/strict/', { token: await boundToken() })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
  })

  it('the look-alike of client1 from another CA (same subject, other key): 401', async () => {
    const r = await api('/strict/', { token: await boundToken(), client: pki.otherClient })
    expect(r.status).toBe(401)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
  })
})

describe('proof_of_possession_mtls: optional vs strict with an unbound token', () => {
  let unbound: string

  beforeAll(async () => {
    unbound = (await idp.token({ ...SECRET_CLIENT, scope: 'system-access' })).access_token
    expect(payloadOf(unbound).cnf).toBeUndefined()
  })

  it('optional accepts it, with or without a client certificate', async () => {
    for (const client of [pki.client2, undefined]) {
      const r = await api('/optional/', { token: unbound, client })
      expect(r.status).toBe(200)
      expect(upstreamSaw(r).headers['x-credential-client-id']).toBe(SECRET_CLIENT.clientId)
    }
  })

  it('strict refuses it: 401 invalid_token', async () => {
    const r = await api('/strict/', { token: unbound, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect((await accessLog(r)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
  })
})

describe('RFC 6750 §3 answers', () => {
  it('no token: 401 Bearer realm="certbound" without an error code', async () => {
    const r = await api('/strict/', { client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe('Bearer realm="certbound"')
  })

  it('the auth scheme is case-insensitive (RFC 9110 §11.1): "authorization: bearer <token>" is accepted', async () => {
    const r = await api('/strict/', { client: pki.client1, headers: [`authorization: bearer ${await boundToken()}`] })
    expect(r.status).toBe(200)
  })

  it('two Authorization headers: 400 invalid_request, also for a token already verified (the cached fast path)', async () => {
    const token = await boundToken()
    expect((await api('/strict/', { token, client: pki.client1 })).status).toBe(200)
    const r = await api('/strict/', { client: pki.client1, headers: [`Authorization: Bearer ${token}`, `Authorization: Bearer ${token}`] })
    expect(r.status).toBe(400)
    expect(r.headers['www-authenticate']).toContain('error="invalid_request"')
  })

  it('RFC 9068 §4: a token for another audience is 401 invalid_token', async () => {
    const r = await api('/other-audience/', { token: await boundToken(), client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(String((await accessLog(r)).reason)).toMatch(/aud/)
  })
})

describe('RFC 7515 / RFC 8725: forged and altered tokens are 401 invalid_token', () => {
  let genuine: string
  let claims: JWTPayload
  let kid: string

  beforeAll(async () => {
    genuine = await boundToken()
    claims = payloadOf(genuine)
    kid = decodeProtectedHeader(genuine).kid!
  })

  async function refused (token: string, reason: RegExp): Promise<void> {
    const r = await api('/strict/', { token, client: pki.client1 })
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
    expect(reachedUpstream(r)).toBe(false)
    const log = await accessLog(r)
    expect(log.err).toBe('CB_ERR_TOKEN_INVALID')
    expect(String(log.reason)).toMatch(reason)
  }

  it('a tampered payload (scope widened), header and signature kept', async () => {
    const [h, , s] = genuine.split('.')
    await refused(`${h}.${b64url({ ...claims, scope: 'system-access admin' })}.${s}`, /signature verification failed/)
  })

  it('a tampered payload after the genuine token was accepted (the cache is keyed by the whole token)', async () => {
    expect((await api('/strict/', { token: genuine, client: pki.client1 })).status).toBe(200)
    const [h, , s] = genuine.split('.')
    await refused(`${h}.${b64url({ ...claims, sub: 'admin' })}.${s}`, /signature verification failed/)
  })

  it('signed by another ES256 key under the IdP\'s kid', async () => {
    const { privateKey } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign(privateKey)
    await refused(forged, /signature verification failed/)
  })

  it('signed by another key under a kid the IdP does not have', async () => {
    const { privateKey } = await generateKeyPair('ES256')
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'attacker-key' }).sign(privateKey)
    await refused(forged, /no key|JWKS/)
  })

  it('alg: none (unsigned)', async () => {
    await refused(`${b64url({ alg: 'none', typ: 'at+jwt', kid })}.${b64url(claims)}.`, /alg|none|JWS/i)
  })

  it('HS256 "signed" with the IdP\'s public key (algorithm confusion), as SPKI PEM and as JWK JSON', async () => {
    const jwks = await curl(['--cacert', pki.ca.certFile, idp.jwksUri])
    const jwk = (JSON.parse(jwks.body) as { keys: JWK[] }).keys.find(k => k.kid === kid)!
    const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
    for (const secret of [pem, JSON.stringify(jwk)]) {
      const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(new TextEncoder().encode(secret))
      await refused(forged, /algorithm not allowed/)
    }
  })
})

describe('RFC 9068 §2.2 exp: expired tokens', () => {
  it('a token past its exp is 401, whether it was accepted before (cached) or never seen', async () => {
    const seen = await boundToken(shortIdp)
    expect((await api('/short/', { token: seen, client: pki.client1 })).status).toBe(200)
    const unseen = await boundToken(shortIdp)
    const exp = Math.max(payloadOf(seen).exp!, payloadOf(unseen).exp!)
    // RFC 7519 §4.1.4: refused "on or after" exp (leeway 0), so move gw's clock to exp itself
    gwClock.advanceTo(exp * 1000)
    for (const token of [seen, unseen]) {
      const r = await api('/short/', { token, client: pki.client1 })
      expect(r.status).toBe(401)
      expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
      expect(String((await accessLog(r)).reason)).toMatch(/expired/)
    }
  })
})

/** One HTTP/1.1 request over a new node:tls connection (Connection: close), optionally resuming `session`. */
function tlsRequest (path: string, opts: { token: string, client?: TestCert, session?: Buffer, version: 'TLSv1.2' | 'TLSv1.3' }): Promise<{ status: number | undefined, reused: boolean, session: Buffer | undefined, requestId: string }> {
  return new Promise((resolve, reject) => {
    let data = ''
    let session: Buffer | undefined
    let reused = false
    const s: TLSSocket = connect({
      host: '127.0.0.1',
      port: gw.port(TLS),
      servername: 'localhost',
      ca: readFileSync(pki.ca.certFile),
      cert: opts.client === undefined ? undefined : readFileSync(opts.client.certFile),
      key: opts.client === undefined ? undefined : readFileSync(opts.client.keyFile),
      session: opts.session,
      minVersion: opts.version,
      maxVersion: opts.version,
    }, () => {
      // read while the TLS handle is alive
      reused = s.isSessionReused()
      s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${opts.token}\r\nConnection: close\r\n\r\n`)
    })
    s.setEncoding('utf8')
    s.on('session', (b: Buffer) => { session = b })
    s.on('data', (d: string) => { data += d })
    s.on('error', reject)
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data)
      const id = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(data)
      resolve({ status: m === null ? undefined : Number(m[1]), reused, session, requestId: id?.[1] ?? '' })
    })
    s.setTimeout(5000, () => s.destroy(new Error('timeout')))
  })
}

describe('TLS session resumption cannot bypass the binding (nodejs/node#35317)', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    describe(version, () => {
      let token: string

      beforeAll(async () => {
        token = await boundToken()
      })

      it('client1: 200 on the full handshake and on the resumed session', async () => {
        const first = await tlsRequest('/strict/', { token, client: pki.client1, version })
        expect(first).toMatchObject({ status: 200, reused: false })
        const second = await tlsRequest('/strict/', { token, client: pki.client1, session: first.session, version })
        expect(second).toMatchObject({ status: 200, reused: true })
        expect(await accessLog(second)).toMatchObject({ cert_x5t: pki.thumbprint(pki.client1), client_id: 'client1' })
      })

      it('client2: 401 on the full handshake and still 401 on its resumed session', async () => {
        const first = await tlsRequest('/strict/', { token, client: pki.client2, version })
        expect(first).toMatchObject({ status: 401, reused: false })
        const second = await tlsRequest('/strict/', { token, client: pki.client2, session: first.session, version })
        expect(second).toMatchObject({ status: 401, reused: true })
        expect(await accessLog(second)).toMatchObject({ err: 'CB_ERR_TOKEN_BINDING_MISMATCH', cert_x5t: pki.thumbprint(pki.client2) })
      })

      it('client2\'s session resumed by a client configured with client1\'s certificate: still client2, 401', async () => {
        const first = await tlsRequest('/strict/', { token, client: pki.client2, version })
        const second = await tlsRequest('/strict/', { token, client: pki.client1, session: first.session, version })
        expect(second).toMatchObject({ status: 401, reused: true })
        expect((await accessLog(second)).cert_x5t).toBe(pki.thumbprint(pki.client2))
      })

      it('a session established without a certificate, resumed with client1\'s configured: no certificate, 401', async () => {
        const first = await tlsRequest('/strict/', { token, version })
        expect(first.status).toBe(401)
        const second = await tlsRequest('/strict/', { token, client: pki.client1, session: first.session, version })
        expect(second).toMatchObject({ status: 401, reused: true })
        const log = await accessLog(second)
        expect(log.err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
        expect(log.cert_x5t).toBeUndefined()
      })
    })
  }
})

/** The client certificate as a TLS terminator forwards it, encoded here independently of certbound. */
function forwarded (format: Format, cert: TestCert): string {
  const pem = cert.certPem
  const der = cert.x509.raw
  switch (format) {
    case 'url_encoded': return encodeURIComponent(pem) // nginx $ssl_client_escaped_cert
    case 'base64_encoded': return der.toString('base64')
    case 'rfc9440': return `:${der.toString('base64')}:`
    case 'xfcc': return `By=spiffe://proxy.example/edge;Hash=${createHash('sha256').update(der).digest('hex')};Cert="${encodeURIComponent(pem)}";Subject="${cert.x509.subject.split('\n').reverse().join(',')}"`
  }
}

describe('certificate_header from trusted_ips (a TLS terminator in front, plain HTTP to the gateway)', () => {
  /** client1's tokens, one per format: reused, since the binding is checked on every request, cached or not. */
  const tokens = { jwt: '', opaque: '' }

  beforeAll(async () => {
    ;[tokens.jwt, tokens.opaque] = await Promise.all([boundToken(idp, 'jwt'), boundToken(idp, 'opaque')])
  })

  for (const { format, header } of FORMATS) {
    for (const plugin of ['openid-connect', 'token-introspection'] as const) {
      describe(`${plugin}: certificate_header: ${header}, certificate_header_format: ${format}`, () => {
        const path = `/${plugin === 'openid-connect' ? '' : 'ti-'}hdr-${format}/`
        const token = (): Promise<string> => Promise.resolve(plugin === 'openid-connect' ? tokens.jwt : tokens.opaque)

        it('from a trusted address, client1\'s certificate in the header lets client1\'s token through; the header is not forwarded', async () => {
          const r = await viaProxy(gw, path, { token: await token(), headers: [`${header}: ${forwarded(format, pki.client1)}`] })
          expect(r.status).toBe(200)
          const q = upstreamSaw(r)
          expect(q.headers['x-credential-client-id']).toBe('client1')
          expect(q.headers[header]).toBeUndefined()
        })

        it('from a trusted address, client2\'s certificate in the header: 401', async () => {
          const r = await viaProxy(gw, path, { token: await token(), headers: [`${header}: ${forwarded(format, pki.client2)}`] })
          expect(r.status).toBe(401)
          expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
        })

        it('from a trusted address without the header: 401', async () => {
          const r = await viaProxy(gw, path, { token: await token() })
          expect(r.status).toBe(401)
        })

        it('from an untrusted address (127.0.0.2) the header is ignored: 401', async () => {
          const r = await viaProxy(gw, path, { token: await token(), headers: [`${header}: ${forwarded(format, pki.client1)}`], source: '127.0.0.2' })
          expect(r.status).toBe(401)
          expect(r.headers['www-authenticate']).toBe(INVALID_TOKEN)
          const log = await accessLog(r)
          expect(log).toMatchObject({ client: '127.0.0.2', err: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
          expect(reachedUpstream(r)).toBe(false)
        })

        it('a gateway whose trusted_ips does not include 127.0.0.1 ignores the header: 401', async () => {
          const r = await viaProxy(untrusted, path, { token: await token(), headers: [`${header}: ${forwarded(format, pki.client1)}`] })
          expect(r.status).toBe(401)
          expect((await accessLog(r, untrusted)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
        })
      })
    }
  }

  it('xfcc: only the element the nearest proxy added counts (an element the client injected before it does not)', async () => {
    const token = tokens.jwt
    const injected = `${forwarded('xfcc', pki.client1)},${forwarded('xfcc', pki.client2)}`
    expect((await viaProxy(gw, '/hdr-xfcc/', { token, headers: [`x-forwarded-client-cert: ${injected}`] })).status).toBe(401)
    const genuine = `${forwarded('xfcc', pki.client2)},${forwarded('xfcc', pki.client1)}`
    expect((await viaProxy(gw, '/hdr-xfcc/', { token, headers: [`x-forwarded-client-cert: ${genuine}`] })).status).toBe(200)
  })

  it('two certificate headers from a trusted address: 401', async () => {
    const token = tokens.jwt
    const one = `x-client-cert: ${forwarded('url_encoded', pki.client1)}`
    expect((await viaProxy(gw, '/hdr-url_encoded/', { token, headers: [one, one] })).status).toBe(401)
  })

  it('a malformed certificate header from a trusted address: 401', async () => {
    const r = await viaProxy(gw, '/hdr-rfc9440/', { token: tokens.jwt, headers: ['client-cert: :not base64!:'] })
    expect(r.status).toBe(401)
  })
})

describe('JWKS rotation without restart (rediscovery_lifetime: 0)', () => {
  it('after idp.rotateKeys(), a token with the new kid is accepted; one signed by the old key too', async () => {
    const old = await boundToken()
    expect((await api('/rotating/', { token: old, client: pki.client1 })).status).toBe(200)
    const oldUnseen = await boundToken()
    const oldKid = idp.currentKid
    await idp.rotateKeys()
    expect(idp.currentKid).not.toBe(oldKid)
    const fresh = await boundToken()
    expect(decodeProtectedHeader(fresh).kid).toBe(idp.currentKid)
    idp.requests.length = 0
    const r = await api('/rotating/', { token: fresh, client: pki.client1 })
    expect(r.status).toBe(200)
    expect(idp.requests.filter(q => q.path === '/jwks')).toHaveLength(1)
    expect((await api('/rotating/', { token: oldUnseen, client: pki.client1 })).status).toBe(200)
  })
})

describe('fail closed: the IdP is down', () => {
  let cached: string
  let knownKid: string
  let unknownKid: string

  beforeAll(async () => {
    cached = await boundToken()
    expect((await api('/rotating/', { token: cached, client: pki.client1 })).status).toBe(200)
    knownKid = await boundToken()
    await idp.rotateKeys()
    unknownKid = await boundToken()
    await idp.stop()
  })

  afterAll(async () => {
    await idp.start()
  })

  it('a token already verified (cached): 200', async () => {
    expect((await api('/rotating/', { token: cached, client: pki.client1 })).status).toBe(200)
  })

  it('a new token signed with a key already fetched: 200 (the keys are public; the last good JWKS is kept)', async () => {
    expect((await api('/rotating/', { token: knownKid, client: pki.client1 })).status).toBe(200)
  })

  it('a new token whose kid is unknown: 503 with Retry-After, no challenge, never passed', async () => {
    const r = await api('/rotating/', { token: unknownKid, client: pki.client1 })
    expect(r.status).toBe(503)
    expect(JSON.parse(r.body)).toEqual({ message: 'The authorization server is unavailable' })
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(r.headers['www-authenticate']).toBeUndefined()
    expect(reachedUpstream(r)).toBe(false)
    expect((await accessLog(r)).err).toBe('CB_ERR_IDP_UNAVAILABLE')
  })

  it('rediscovery_lifetime: 3 — an unknown kid while the IdP is down, last fetch older than 3 s: 503', async () => {
    gwClock.advanceTo(gwStartedAt + 3100)
    const first = await api('/cooldown/', { token: unknownKid, client: pki.client1 })
    expect(first.status).toBe(503)
  })

  // BUG (plugins/openid-connect/idp.ts, IdpState.resolveKey): right after a failed JWKS fetch, an unknown kid inside
  // the rediscovery_lifetime window rethrows jose's JWKSNoMatchingKey, so the request gets 401 invalid_token
  // (CB_ERR_TOKEN_INVALID) although the IdP is known to be down. README: "After a failed fetch, requests needing the
  // IdP fail fast (503) for min(rediscovery_lifetime, 5 s)" and "a token with an unknown kid … gets 503"; a client
  // told invalid_token throws away a good token. Expected: 503 CB_ERR_IDP_UNAVAILABLE with Retry-After.
  it('the same token again right after that failed fetch: 503 as well, not 401 invalid_token', async () => {
    const second = await api('/cooldown/', { token: unknownKid, client: pki.client1 })
    expect(second.status).toBe(503)
    expect((await accessLog(second)).err).toBe('CB_ERR_IDP_UNAVAILABLE')
  })

  it('a gateway started while the IdP is down: 503 (not ready), then 200 once the IdP is back, without a restart', async () => {
    const late = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} }
  trusted_certificates: ${pki.ca.certFile}
services:
  - name: echo
    url: ${upstream.url}
    routes:
      - name: late
        paths: [/late]
        plugins:
${openidConnect(idp.issuer, `proof_of_possession_mtls: strict
rediscovery_lifetime: 1`)}
`)
    try {
      expect(late.gateway.status().ready).toBe(false)
      const r = await api('/late/', { token: knownKid, client: pki.client1, gateway: late })
      expect(r.status).toBe(503)
      expect((await accessLog(r, late)).err).toBe('CB_ERR_IDP_UNAVAILABLE')
      await idp.start()
      await vi.waitFor(async () => {
        const ok = await api('/late/', { token: knownKid, client: pki.client1, gateway: late })
        if (ok.status !== 200) throw new Error(`still ${ok.status}`)
      }, { timeout: 10_000, interval: 250 })
      expect(late.gateway.status().ready).toBe(true)
    } finally {
      await late.close()
    }
  })

  it('the IdP back (idp.start()): the same token is accepted', async () => {
    await idp.start()
    const r = await api('/rotating/', { token: unknownKid, client: pki.client1 })
    expect(r.status).toBe(200)
  })
})
