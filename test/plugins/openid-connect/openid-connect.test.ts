import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { SignJWT, exportSPKI } from 'jose'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import plugin from '../../../plugins/openid-connect/index.js'
import { RequestContext } from '../../../src/pipeline/context.js'
import type { PluginInstance } from '../../../src/pipeline/types.js'
import { createHttpClient, type HttpClient } from '../../../src/http-client/index.js'
import { localIssuerKey, type LocalIssuer } from '../../../src/pipeline/local-issuer.js'
import { ServiceMap } from '../../../src/pipeline/services.js'
import { tlsIdentity } from '../../../src/server/peer.js'
import { encodeCertificateHeader } from '../../../src/auth/cert-source.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'
import { build, configIssues, makeCtx, run, testDeps, upstreamHeaderMap } from './harness.js'
import { AUDIENCE, startIssuer, type SigningKey, type TestIssuer } from './issuer.js'

let pki: TestPki
let idp: TestIssuer
let http: HttpClient
let firstKey: SigningKey
let thumb1: string
const instances: PluginInstance[] = []

beforeAll(async () => {
  pki = await createTestPki()
  idp = await startIssuer({ cert: pki.server.certPem, key: pki.server.keyPem })
  http = createHttpClient({ trustedCa: [pki.ca.certPem] })
  firstKey = idp.published[0]
  thumb1 = pki.thumbprint(pki.client1)
})

afterAll(async () => {
  await idp.stop()
  await http.close()
  pki.cleanup()
})

beforeEach(async () => {
  await idp.start()
  idp.hits.clear()
  idp.introspections.length = 0
  idp.published = [firstKey]
  idp.discovery = 'openid'
  idp.introspect = undefined
})

afterEach(async () => {
  vi.useRealTimers()
  await Promise.all(instances.splice(0).map(p => p.close?.()))
})

async function oidc (config: Record<string, unknown> = {}, deps = testDeps({ http })): Promise<PluginInstance> {
  const p = await build(plugin, { issuer: idp.issuer, ...config }, deps)
  instances.push(p)
  return p
}

function bearer (token: string, certPem?: string): RequestContext {
  return makeCtx({ headers: [['Authorization', `Bearer ${token}`]], certPem })
}

const bound = (thumb: string) => ({ cnf: { 'x5t#S256': thumb } })

describe('RFC 9068 JWT access token, validated locally', () => {
  it('accepts a valid token, sets the credential and the X-Credential-* headers', async () => {
    const p = await oidc({ upstream_headers_claims: ['sub', 'cnf'], upstream_headers_names: ['X-User', 'x-cnf'] })
    const token = await idp.sign({ claims: bound(thumb1) })
    const ctx = bearer(token, pki.client1.certPem)
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.credential).toMatchObject({ clientId: 'client1', sub: 'client1-service-account', scopes: ['system-access'], cnfX5tS256: thumb1, verifiedBy: 'openid-connect' })
    const h = upstreamHeaderMap(ctx)
    expect(h).toMatchObject({
      'x-credential-scope': 'system-access',
      'x-credential-client-id': 'client1',
      'x-credential-sub': 'client1-service-account',
      'x-credential-iss': idp.issuer,
      'x-credential-aud': AUDIENCE,
      'x-user': 'client1-service-account',
      'x-cnf': JSON.stringify({ 'x5t#S256': thumb1 }),
    })
    expect(p.identityHeaders).toEqual(expect.arrayContaining(['x-credential-sub', 'x-credential-jti', 'x-user', 'x-cnf']))
    expect(p.providesCredential).toBe(true)
    expect(idp.hits.get('/.well-known/openid-configuration')).toBe(1)
    expect(idp.hits.get('/jwks')).toBe(1)
  })

  it('no Authorization header: 401 without an error code (RFC 6750 §3.1)', async () => {
    const p = await oidc()
    const err = await run(p, makeCtx())
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_MISSING', status: 401, headers: { 'www-authenticate': 'Bearer realm="certbound"' } })
  })

  it('two Authorization headers: 400 invalid_request', async () => {
    const p = await oidc()
    const token = await idp.sign()
    const err = await run(p, makeCtx({ headers: [['authorization', `Bearer ${token}`], ['authorization', `Bearer ${token}`]] }))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_MULTIPLE', status: 400 })
  })

  it('a token over 16 KiB is refused before parsing', async () => {
    const p = await oidc()
    const token = await idp.sign({ claims: { pad: 'x'.repeat(17 * 1024) } })
    expect(await run(p, bearer(token))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(idp.hits.size).toBe(0)
  })

  it('a tampered payload fails the signature', async () => {
    const p = await oidc()
    const [h, , s] = (await idp.sign()).split('.')
    const forged = Buffer.from(JSON.stringify({ iss: idp.issuer, sub: 'admin', scope: 'admin', exp: 9999999999 })).toString('base64url')
    const err = await run(p, bearer(`${h}.${forged}.${s}`))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(err?.detail).toMatch(/signature verification failed/)
    expect(err?.headers?.['www-authenticate']).toBe('Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid"')
  })
})

describe('RFC 8725 §3.1: algorithm allow-list', () => {
  it('alg none is refused', async () => {
    const p = await oidc()
    const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    const token = `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc({ iss: idp.issuer, aud: AUDIENCE, exp: now + 60, sub: 'x' })}.`
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(err?.detail).toMatch(/algorithm not allowed/)
  })

  it('HS256 "signed" with the issuer\'s public key (algorithm confusion) is refused', async () => {
    const p = await oidc()
    const pem = await exportSPKI(firstKey.publicKey)
    const now = Math.floor(Date.now() / 1000)
    const token = await new SignJWT({ iss: idp.issuer, aud: AUDIENCE, sub: 'attacker', scope: 'admin', exp: now + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: firstKey.kid, typ: 'at+jwt' })
      .sign(new TextEncoder().encode(pem))
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(err?.detail).toMatch(/algorithm not allowed.*HS256/)
  })

  it('an algorithm outside a narrowed allow-list is refused', async () => {
    const rsa = await idp.newKey('RS256')
    idp.published = [firstKey, rsa]
    const p = await oidc({ algorithms: ['ES256'] })
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ key: rsa })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })

  it('accepts RS256, PS256 and EdDSA keys from the JWKS', async () => {
    const keys = await Promise.all([idp.newKey('RS256'), idp.newKey('PS256'), idp.newKey('EdDSA')])
    idp.published = keys
    const p = await oidc()
    for (const key of keys) expect(await run(p, bearer(await idp.sign({ key })))).toBeUndefined()
  })

  it('an unknown crit header parameter is refused (RFC 7515 §4.1.11)', async () => {
    const p = await oidc()
    const now = Math.floor(Date.now() / 1000)
    const claims = { iss: idp.issuer, aud: AUDIENCE, sub: 's', exp: now + 60 }
    const ok = await idp.signRaw({ alg: 'ES256', kid: firstKey.kid, typ: 'at+jwt' }, claims)
    expect(await run(p, bearer(ok))).toBeUndefined() // the raw signer itself is sound
    const token = await idp.signRaw({ alg: 'ES256', kid: firstKey.kid, typ: 'at+jwt', crit: ['urn:example:policy'], 'urn:example:policy': 'x' }, claims)
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/not recognized/)
  })
})

describe('RFC 7519 §4.1: exp, nbf, iss, aud', () => {
  it('an expired token is refused; leeway tolerates clock skew', async () => {
    const now = Math.floor(Date.now() / 1000)
    const token = await idp.sign({ claims: { iat: now - 600, exp: now - 30 } })
    const strict = await oidc()
    const err = await run(strict, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/expired/)
    const lenient = await oidc({ leeway: 60 })
    expect(await run(lenient, bearer(token))).toBeUndefined()
  })

  it('a token without exp is refused (RFC 9068 §2.2)', async () => {
    const p = await oidc()
    expect(await run(p, bearer(await idp.sign({ claims: { exp: undefined } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })

  it('a token not yet valid (nbf) is refused', async () => {
    const p = await oidc()
    const now = Math.floor(Date.now() / 1000)
    expect(await run(p, bearer(await idp.sign({ claims: { nbf: now + 120 } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })

  it('a wrong iss is refused; issuers_allowed widens the check', async () => {
    const p = await oidc()
    const token = await idp.sign({ claims: { iss: 'https://evil.example' } })
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/"iss"/)
    const widened = await oidc({ issuers_allowed: [idp.issuer, 'https://evil.example'] })
    expect(await run(widened, bearer(token))).toBeUndefined()
  })

  it('audience_required: aud must contain one of the values', async () => {
    const p = await oidc({ audience_required: ['https://other.example', AUDIENCE] })
    expect(await run(p, bearer(await idp.sign({ claims: { aud: ['x', AUDIENCE] } })))).toBeUndefined()
    const err = await run(p, bearer(await idp.sign({ claims: { aud: 'https://wrong.example' } })))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/"aud"/)
    expect(await run(p, bearer(await idp.sign({ claims: { aud: undefined } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })
})

describe('RFC 9068 §2.1 / RFC 8725 §3.11: typ', () => {
  it('enforce_access_token_typ: only at+jwt (with or without application/)', async () => {
    const p = await oidc({ enforce_access_token_typ: true })
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'at+jwt' } })))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'application/AT+JWT' } })))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'JWT' } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(await run(p, bearer(await idp.sign({ header: { typ: undefined } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })

  it('default (Keycloak-compatible): typ JWT passes, other explicitly typed JWTs and ID tokens do not', async () => {
    const p = await oidc()
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'JWT' }, claims: { typ: 'Bearer' } })))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ header: { typ: undefined } })))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'dpop+jwt' } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(await run(p, bearer(await idp.sign({ header: { typ: 'JWT' }, claims: { typ: 'ID' } })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
  })
})

describe('RFC 8705 §3: certificate-bound access tokens', () => {
  it('strict: a token bound to client1 is accepted on client1\'s session, refused on client2\'s', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict' })
    expect(p.requestClientCertificate).toBe(true)
    const token = await idp.sign({ claims: bound(thumb1) })
    expect(await run(p, bearer(token, pki.client1.certPem))).toBeUndefined()
    const err = await run(p, bearer(token, pki.client2.certPem))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH', status: 401, headers: { 'www-authenticate': expect.stringContaining('error="invalid_token"') } })
  })

  it('strict: no client certificate, or an unbound token, is refused', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict' })
    expect(await run(p, bearer(await idp.sign({ claims: bound(thumb1) })))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
    expect(await run(p, makeCtx({ plain: true, headers: [['authorization', `Bearer ${await idp.sign({ claims: bound(thumb1) })}`]] }))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
    const err = await run(p, bearer(await idp.sign(), pki.client1.certPem))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH', status: 401 })
    expect(err?.detail).toMatch(/not certificate-bound/)
  })

  it('optional: unbound tokens pass, bound tokens are checked', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'optional' })
    expect(await run(p, bearer(await idp.sign(), pki.client2.certPem))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    const token = await idp.sign({ claims: bound(thumb1) })
    expect(await run(p, bearer(token, pki.client1.certPem))).toBeUndefined()
    expect(await run(p, bearer(token, pki.client2.certPem))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
    expect(await run(p, bearer(token))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
  })

  it('optional: a malformed cnf or a DPoP-bound token (cnf.jkt) is refused', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'optional' })
    expect(await run(p, bearer(await idp.sign({ claims: { cnf: { 'x5t#S256': 'short' } } }), pki.client1.certPem))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
    expect(await run(p, bearer(await idp.sign({ claims: { cnf: { jkt: thumb1 } } }), pki.client1.certPem))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
  })

  it('off (Kong\'s default): cnf is not checked', async () => {
    const p = await oidc()
    expect(p.requestClientCertificate).toBe(false)
    expect(await run(p, bearer(await idp.sign({ claims: bound(thumb1) }), pki.client2.certPem))).toBeUndefined()
  })

  it('a self-signed (unverified) certificate still binds: the handshake proved its key (RFC 8705 §2.2)', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict' })
    const token = await idp.sign({ claims: bound(pki.thumbprint(pki.selfSigned)) })
    expect(await run(p, makeCtx({ headers: [['authorization', `Bearer ${token}`]], certPem: pki.selfSigned.certPem, verified: false }))).toBeUndefined()
  })

  it('certificate_header is honoured only from trusted_ips (a TLS terminator in front)', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict', certificate_header: 'X-Client-Cert', trusted_ips: ['10.0.0.0/8'] })
    expect(p.identityHeaders).toContain('x-client-cert')
    const token = await idp.sign({ claims: bound(thumb1) })
    const forwarded = encodeCertificateHeader('url_encoded', pki.client1.x509.raw)
    const via = (remoteAddress: string, certPem?: string) => makeCtx({ remoteAddress, certPem, headers: [['authorization', `Bearer ${token}`], ['x-client-cert', forwarded]] })
    expect(await run(p, via('10.1.2.3'))).toBeUndefined()
    expect(await run(p, via('10.1.2.3', pki.client2.certPem))).toBeUndefined() // the proxy's own session does not count
    expect(await run(p, via('192.0.2.1'))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' }) // untrusted: header ignored
    expect(await run(p, via('192.0.2.1', pki.client1.certPem))).toBeUndefined()
  })

  it('over a real TLS session: client1 passes, client2 gets 401 with the same token', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict' })
    const token = await idp.sign({ claims: bound(thumb1) })
    const server = createHttpsServer({ cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const ctx = new RequestContext({
        id: 'tls', startNs: process.hrtime.bigint(), req, method: req.method ?? 'GET', path: '/', query: '', remoteAddress: '127.0.0.1',
        route: { name: 'r' } as never, tls: tlsIdentity(req.socket as TLSSocket), listenerTls: true, log: pino({ level: 'silent' }),
      })
      run(p, ctx).then(err => {
        res.writeHead(err?.status ?? 200, { 'content-type': 'text/plain' })
        res.end(err?.code ?? ctx.credential?.clientId)
      }, (e: Error) => { res.writeHead(500); res.end(e.message) })
    })
    await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
    const port = (server.address() as AddressInfo).port
    const call = (c: { certPem: string, keyPem: string }) => new Promise<[number, string]>((resolve, reject) => {
      const rq = httpsRequest({ host: '127.0.0.1', port, path: '/', ca: pki.ca.certPem, cert: c.certPem, key: c.keyPem, agent: false, headers: { authorization: `Bearer ${token}` } }, res => {
        let b = ''
        res.setEncoding('utf8').on('data', (d: string) => { b += d }).on('end', () => resolve([res.statusCode ?? 0, b]))
      })
      rq.on('error', reject).end()
    })
    try {
      expect(await call(pki.client1)).toEqual([200, 'client1'])
      expect(await call(pki.client2)).toEqual([401, 'CB_ERR_TOKEN_BINDING_MISMATCH'])
      expect(await call(pki.client1)).toEqual([200, 'client1'])
    } finally {
      server.closeAllConnections()
      await new Promise(r => server.close(r))
    }
  })
})

describe('verified-token cache', () => {
  it('a repeated token is answered synchronously (no re-verification) and the binding is still checked per connection', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict', scopes_required: ['system-access'] })
    const token = await idp.sign({ claims: bound(thumb1) })
    const first = p.access!(bearer(token, pki.client1.certPem))
    expect(first).toBeInstanceOf(Promise)
    await first
    const ctx = bearer(token, pki.client1.certPem)
    expect(p.access!(ctx)).toBeUndefined()
    expect(ctx.credential?.clientId).toBe('client1')
    expect(upstreamHeaderMap(ctx)['x-credential-sub']).toBe('client1-service-account')
    expect(() => p.access!(bearer(token, pki.client2.certPem))).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' }))
    expect(() => p.access!(bearer(token))).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' }))
  })

  it('a cached token stops being accepted at exp (+ leeway)', async () => {
    const p = await oidc({ leeway: 5 })
    const now = Date.now()
    const token = await idp.sign({ claims: { exp: Math.floor(now / 1000) + 60 } })
    expect(await run(p, bearer(token))).toBeUndefined()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(now + 62_000)
    expect(await run(p, bearer(token))).toBeUndefined() // within leeway
    vi.setSystemTime(now + 66_000)
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/expired/)
  })

  it('cache_ttl_max bounds how long a verification is remembered', async () => {
    const p = await oidc({ cache_ttl_max: 10 })
    const token = await idp.sign()
    await run(p, bearer(token))
    expect(p.access!(bearer(token))).toBeUndefined()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 11_000)
    const again = p.access!(bearer(token))
    expect(again).toBeInstanceOf(Promise) // verified again
    await again
  })
})

describe('JWKS rotation (unknown kid → one refetch, with a cooldown)', () => {
  it('a token signed with a new key is accepted after one refetch; a forged kid does not refetch again', async () => {
    const p = await oidc()
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    expect(idp.hits.get('/jwks')).toBe(1)
    const t0 = Date.now()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(t0 + 31_000) // past rediscovery_lifetime (30 s) since the first fetch

    const rotated = await idp.newKey()
    idp.published = [rotated]
    expect(await run(p, bearer(await idp.sign({ key: rotated })))).toBeUndefined()
    expect(idp.hits.get('/jwks')).toBe(2)

    const unknown = await idp.newKey()
    const err = await run(p, bearer(await idp.sign({ key: unknown })))
    expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(err?.detail).toMatch(/no key/)
    expect(idp.hits.get('/jwks')).toBe(2) // within rediscovery_lifetime of the last fetch: no refetch
    vi.setSystemTime(t0 + 62_000)
    expect(await run(p, bearer(await idp.sign({ key: unknown })))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
    expect(idp.hits.get('/jwks')).toBe(3) // one refetch per window, however many forged kids arrive
    expect(idp.hits.get('/.well-known/openid-configuration')).toBe(1)
  })

  it('rediscovery_lifetime: 0 refetches on the first unknown kid at once', async () => {
    const p = await oidc({ rediscovery_lifetime: 0 })
    await run(p, bearer(await idp.sign()))
    const rotated = await idp.newKey()
    idp.published = [rotated]
    expect(await run(p, bearer(await idp.sign({ key: rotated })))).toBeUndefined()
    expect(idp.hits.get('/jwks')).toBe(2)
  })

  it('concurrent tokens with the new kid share one refetch', async () => {
    const p = await oidc({ rediscovery_lifetime: 0 })
    await run(p, bearer(await idp.sign()))
    const rotated = await idp.newKey()
    idp.published = [firstKey, rotated]
    const tokens = await Promise.all([1, 2, 3, 4].map(() => idp.sign({ key: rotated })))
    const errs = await Promise.all(tokens.map(t => run(p, bearer(t))))
    expect(errs).toEqual([undefined, undefined, undefined, undefined])
    expect(idp.hits.get('/jwks')).toBe(2)
  })

  it('no kid and several keys: each candidate is tried', async () => {
    const second = await idp.newKey()
    idp.published = [firstKey, second]
    const p = await oidc()
    expect(await run(p, bearer(await idp.sign({ key: second, header: { kid: undefined } })))).toBeUndefined()
  })

  it('jku, x5u and jwk headers are ignored: nothing is fetched from them', async () => {
    let attackerHits = 0
    const attacker: Server = createHttpServer((_req, res) => { attackerHits++; res.end('{}') })
    await new Promise<void>(r => attacker.listen(0, '127.0.0.1', () => r()))
    const url = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/jwks`
    try {
      const p = await oidc()
      const evil = await idp.newKey()
      const header = { jku: url, x5u: url, jwk: evil.jwk }
      const err = await run(p, bearer(await idp.sign({ key: evil, header })))
      expect(err).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID' })
      // a genuine token carrying a jku is verified against the issuer's keys, jku unused
      expect(await run(p, bearer(await idp.sign({ header: { jku: url } })))).toBeUndefined()
      expect(attackerHits).toBe(0)
    } finally {
      await new Promise(r => attacker.close(r))
    }
  })
})

describe('fail closed: the IdP is unreachable', () => {
  it('nothing cached: 503 CB_ERR_IDP_UNAVAILABLE (with Retry-After), then recovers when the IdP is back', async () => {
    const p = await oidc({ rediscovery_lifetime: 0 })
    const token = await idp.sign()
    await idp.stop()
    const err = await run(p, bearer(token))
    expect(err).toMatchObject({ code: 'CB_ERR_IDP_UNAVAILABLE', status: 503, headers: { 'retry-after': '1' } })
    expect(err?.headers?.['www-authenticate']).toBeUndefined()
    expect(p.ready!()).toBe(false)
    await idp.start()
    expect(await run(p, bearer(token))).toBeUndefined()
    expect(p.ready!()).toBe(true)
  })

  it('a cached token keeps being served until its exp; keys already loaded verify new tokens', async () => {
    const p = await oidc({ rediscovery_lifetime: 0 })
    const now = Date.now()
    const token = await idp.sign({ claims: { exp: Math.floor(now / 1000) + 120 } })
    const other = await idp.sign()
    expect(await run(p, bearer(token))).toBeUndefined()
    await idp.stop()
    expect(await run(p, bearer(token))).toBeUndefined()
    expect(await run(p, bearer(other))).toBeUndefined()
    // a kid we do not know needs the IdP: fail closed
    const unknown = await idp.newKey()
    expect(await run(p, bearer(await idp.sign({ key: unknown })))).toMatchObject({ code: 'CB_ERR_IDP_UNAVAILABLE', status: 503 })
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(now + 121_000)
    expect(await run(p, bearer(token))).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
  })

  it('an issuer whose discovery document names another issuer is not trusted (OIDC Discovery §4.3)', async () => {
    const p = await oidc({ issuer: `https://localhost:${idp.port}` })
    const err = await run(p, bearer(await idp.sign()))
    expect(err).toMatchObject({ code: 'CB_ERR_IDP_UNAVAILABLE' })
    expect(err?.detail).toMatch(/names issuer/)
  })
})

describe('discovery', () => {
  it('falls back to /.well-known/oauth-authorization-server (RFC 8414)', async () => {
    idp.discovery = 'oauth'
    const p = await oidc()
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    expect(idp.hits.get('/.well-known/openid-configuration')).toBe(1)
    expect(idp.hits.get('/.well-known/oauth-authorization-server')).toBe(1)
  })

  it('accepts the discovery URL itself as issuer (as Kong does)', async () => {
    const p = await oidc({ issuer: `${idp.issuer}/.well-known/openid-configuration` })
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
  })

  it('jwks_endpoint + issuers_allowed: no discovery at all', async () => {
    const p = await oidc({ issuer: undefined, jwks_endpoint: `${idp.issuer}/jwks`, issuers_allowed: [idp.issuer] })
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    expect(idp.hits.get('/.well-known/openid-configuration')).toBeUndefined()
  })

  it('ready() is false until start() has loaded metadata and keys', async () => {
    const p = await oidc()
    expect(p.ready!()).toBe(false)
    p.start!()
    await vi.waitFor(() => { expect(p.ready!()).toBe(true) }, { timeout: 5000 })
    expect(idp.hits.get('/jwks')).toBe(1)
    expect(await run(p, bearer(await idp.sign()))).toBeUndefined()
    expect(idp.hits.get('/jwks')).toBe(1)
  })

  it('start() never throws and keeps retrying while the IdP is down', async () => {
    await idp.stop()
    const p = await oidc()
    expect(() => p.start!()).not.toThrow()
    await new Promise(r => setTimeout(r, 100))
    expect(p.ready!()).toBe(false)
    await idp.start()
    await vi.waitFor(() => { expect(p.ready!()).toBe(true) }, { timeout: 5000, interval: 100 })
  })

  it('an in-process issuer is used without HTTP', async () => {
    const local: LocalIssuer = {
      issuer: 'https://gateway.example',
      metadata: () => ({ issuer: 'https://gateway.example', jwks_uri: 'https://gateway.example/jwks' }),
      jwks: () => ({ keys: [firstKey.jwk] }),
      introspect: () => Promise.reject(new Error('unused')),
    }
    const noHttp: HttpClient = { request: () => Promise.reject(new Error('no HTTP expected')), fetch: () => Promise.reject(new Error('no HTTP expected')), close: async () => {} }
    const p = await oidc({ issuer: 'https://gateway.example' }, testDeps({ http: noHttp, local: new ServiceMap().set(localIssuerKey('https://gateway.example'), local) }))
    expect(p.ready!()).toBe(true)
    expect(await run(p, bearer(await idp.sign({ claims: { iss: 'https://gateway.example' } })))).toBeUndefined()
  })
})

describe('scopes_required (Kong: entries OR, words inside an entry AND)', () => {
  it('passes when one alternative is fully present; 403 insufficient_scope otherwise', async () => {
    const p = await oidc({ scopes_required: ['read write', 'admin'] })
    expect(await run(p, bearer(await idp.sign({ claims: { scope: 'write read other' } })))).toBeUndefined()
    expect(await run(p, bearer(await idp.sign({ claims: { scope: 'admin' } })))).toBeUndefined()
    const err = await run(p, bearer(await idp.sign({ claims: { scope: 'read' } })))
    expect(err).toMatchObject({
      code: 'CB_ERR_INSUFFICIENT_SCOPE',
      status: 403,
      headers: { 'www-authenticate': 'Bearer realm="certbound", error="insufficient_scope", error_description="The access token lacks a required scope", scope="read write"' },
    })
  })

  it('scopes_claim: a nested list claim (Keycloak realm roles)', async () => {
    const p = await oidc({ scopes_claim: ['realm_access', 'roles'], scopes_required: ['api-user'] })
    const ctx = bearer(await idp.sign({ claims: { scope: 'profile', realm_access: { roles: ['api-user', 'x'] } } }))
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.credential?.scopes).toEqual(['api-user', 'x'])
    expect(await run(p, bearer(await idp.sign({ claims: { scope: 'api-user' } })))).toMatchObject({ code: 'CB_ERR_INSUFFICIENT_SCOPE' })
  })

  it('the binding is checked before the scopes (401 before 403)', async () => {
    const p = await oidc({ proof_of_possession_mtls: 'strict', scopes_required: ['admin'] })
    expect(await run(p, bearer(await idp.sign({ claims: bound(thumb1) }), pki.client2.certPem))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
  })
})

describe('hide_credentials', () => {
  it('removes the Authorization header upstream', async () => {
    const p = await oidc({ hide_credentials: true })
    const ctx = bearer(await idp.sign())
    await run(p, ctx)
    expect(upstreamHeaderMap(ctx).authorization).toBeNull()
  })
})

describe('auth_methods: introspection (RFC 7662)', () => {
  const opaque = 'op/aq+ue-token=='
  const active = () => ({ active: true, client_id: 'client1', sub: 'svc', scope: 'system-access', iss: idp.issuer, exp: Math.floor(Date.now() / 1000) + 60, cnf: { 'x5t#S256': thumb1 } })

  it('introspects opaque tokens with a form-encoded request and client_secret_basic; checks the binding', async () => {
    idp.introspect = token => token === opaque ? { status: 200, body: active() } : { status: 200, body: { active: false } }
    const p = await oidc({ auth_methods: ['bearer', 'introspection'], client_id: ['gw'], client_secret: ['s3cr:t'], proof_of_possession_mtls: 'strict' })
    const ctx = bearer(opaque, pki.client1.certPem)
    expect(await run(p, ctx)).toBeUndefined()
    expect(ctx.credential).toMatchObject({ clientId: 'client1', cnfX5tS256: thumb1 })
    expect(idp.introspections).toHaveLength(1)
    expect(idp.introspections[0].body).toBe('token=op%2Faq%2Bue-token%3D%3D&token_type_hint=access_token')
    expect(idp.introspections[0].authorization).toBe('Basic ' + Buffer.from('gw:s3cr%3At').toString('base64'))
    expect(await run(p, bearer(opaque, pki.client2.certPem))).toMatchObject({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' })
    expect(idp.introspections).toHaveLength(1) // cached
    // JWTs still validate locally
    expect(await run(p, bearer(await idp.sign({ claims: bound(thumb1) }), pki.client1.certPem))).toBeUndefined()
    expect(idp.introspections).toHaveLength(1)
  })

  it('inactive → 401 CB_ERR_TOKEN_INACTIVE (not cached); IdP 4xx → 401; IdP 5xx → 503', async () => {
    const p = await oidc({ auth_methods: ['introspection'], client_id: 'gw', client_secret: 's', introspection_endpoint_auth_method: 'client_secret_post' })
    idp.introspect = () => ({ status: 200, body: { active: false } })
    expect(await run(p, bearer(opaque))).toMatchObject({ code: 'CB_ERR_TOKEN_INACTIVE', status: 401 })
    expect(await run(p, bearer(opaque))).toMatchObject({ code: 'CB_ERR_TOKEN_INACTIVE' })
    expect(idp.introspections).toHaveLength(2)
    expect(idp.introspections[0].body).toContain('&client_id=gw&client_secret=s')
    idp.introspect = () => ({ status: 400, body: { error: 'unsupported_token_type' } })
    const e4 = await run(p, bearer(opaque))
    expect(e4).toMatchObject({ code: 'CB_ERR_TOKEN_INVALID', status: 401 })
    expect(e4?.detail).toMatch(/HTTP 400.*unsupported_token_type/)
    idp.introspect = () => ({ status: 502, body: {} })
    expect(await run(p, bearer(opaque))).toMatchObject({ code: 'CB_ERR_IDP_UNAVAILABLE', status: 503 })
  })

  it('concurrent requests with one new token make one introspection call (single flight)', async () => {
    idp.introspect = () => ({ status: 200, body: active() })
    const p = await oidc({ auth_methods: ['introspection'], client_id: 'gw', client_secret: 's' })
    const errs = await Promise.all([1, 2, 3, 4, 5].map(() => run(p, bearer(opaque, pki.client1.certPem))))
    expect(errs.every(e => e === undefined)).toBe(true)
    expect(idp.introspections).toHaveLength(1)
  })
})

describe('config validation (at load, with paths)', () => {
  const base = { issuer: 'https://idp.example' }
  it('accepts the Kong guide\'s configuration', () => {
    expect(configIssues(plugin, { issuer: 'https://idp.example/realms/master', auth_methods: ['bearer'], proof_of_possession_mtls: 'strict', proof_of_possession_auth_methods_validation: true })).toEqual([])
  })
  it('unknown keys are errors', () => {
    expect(configIssues(plugin, { ...base, introspection_url: 'x' })).toEqual([['', 'Unrecognized key: "introspection_url"']])
  })
  it('HS256 and none in algorithms are rejected', () => {
    const issues = configIssues(plugin, { ...base, algorithms: ['ES256', 'HS256', 'none'] })
    expect(issues.map(i => i[0])).toEqual(['algorithms.1', 'algorithms.2'])
    expect(issues[0][1]).toMatch(/HMAC/)
  })
  it('proof of possession with an auth method that cannot carry it is rejected at auth_methods[i]', () => {
    const issues = configIssues(plugin, { ...base, auth_methods: ['bearer', 'session'], proof_of_possession_mtls: 'strict' })
    expect(issues).toEqual([['auth_methods.1', expect.stringMatching(/cannot carry proof of possession/)]])
  })
  it('unsupported Kong auth methods are rejected even without proof of possession', () => {
    expect(configIssues(plugin, { ...base, auth_methods: ['password'], proof_of_possession_auth_methods_validation: false })).toEqual([['auth_methods.0', expect.stringMatching(/not supported/)]])
  })
  it('upstream_headers_claims and upstream_headers_names must have the same length', () => {
    expect(configIssues(plugin, { ...base, upstream_headers_claims: ['sub', 'email'], upstream_headers_names: ['x-sub'] })).toEqual([['upstream_headers_names', expect.stringMatching(/same length/)]])
    expect(configIssues(plugin, { ...base, upstream_headers_claims: ['sub'], upstream_headers_names: ['Host'] })[0][0]).toBe('upstream_headers_names.0')
  })
  it('verify_signature: false is rejected', () => {
    expect(configIssues(plugin, { ...base, verify_signature: false })).toEqual([['verify_signature', expect.stringMatching(/never skips/)]])
  })
  it('issuer is required unless jwks_endpoint and issuers_allowed are given', () => {
    expect(configIssues(plugin, {})).toEqual([['issuer', expect.stringMatching(/required/)]])
    expect(configIssues(plugin, { jwks_endpoint: 'https://idp.example/jwks' })).toEqual([['issuers_allowed', expect.stringMatching(/iss/)]])
  })
  it('certificate_header needs trusted_ips', () => {
    expect(configIssues(plugin, { ...base, certificate_header: 'x-client-cert' })).toEqual([['trusted_ips', expect.any(String)]])
  })
  it('introspection needs client credentials (PluginConfigError at client_id)', async () => {
    await expect(build(plugin, { ...base, auth_methods: ['introspection'] })).rejects.toMatchObject({ name: 'PluginConfigError', path: ['client_id'] })
  })
})
