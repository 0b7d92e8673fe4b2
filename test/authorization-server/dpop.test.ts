/**
 * RFC 9449 DPoP at the built-in authorization server, end to end through the gateway: openid-client v6 (a real
 * client library that implements DPoP) gets DPoP-bound tokens from the token endpoint — with and without the AS's
 * own nonce — and uses them at routes the same gateway protects with openid-connect (in-process issuer) and
 * token-introspection (in-process RFC 7662). Negative cases with jose proofs and the real curl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Agent, fetch as undiciFetch } from 'undici'
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose'
import * as oidc from 'openid-client'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { curl } from '../helpers/curl.js'
import { startAuthorizationServer } from './harness.js'

const SECRET = 'dpop-secret-0123456789abcdef'
let pki: TestPki
let gw: TestGateway
let upstream: Upstream
let origin: string
const agents: Agent[] = []

/** A free loopback port: the issuer (and so htu) must name the port clients connect to. */
async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(r => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise<void>(r => s.close(() => r()))
  return port
}

type Fetch = (url: string, init: object) => Promise<Response>
function fetchWith (cert?: { certPem: string, keyPem: string }): Fetch {
  // localhost (the issuer's host) always resolves to 127.0.0.1, where the gateway listens
  const lookup = (_h: string, o: unknown, cb: (e: null, a: string | Array<{ address: string, family: number }>, f?: number) => void): void => {
    if ((o as { all?: boolean }).all === true) cb(null, [{ address: '127.0.0.1', family: 4 }])
    else cb(null, '127.0.0.1', 4)
  }
  const agent = new Agent({ connect: { ca: pki.ca.certPem, cert: cert?.certPem, key: cert?.keyPem, autoSelectFamily: true, lookup } })
  agents.push(agent)
  return async function localFetch (url: string, init: object): Promise<Response> {
    return await undiciFetch(url, { ...init, dispatcher: agent }) as unknown as Response
  }
}

async function client (id: string, opts: { secret?: string, cert?: { certPem: string, keyPem: string } } = {}): Promise<oidc.Configuration> {
  const auth = opts.secret !== undefined ? oidc.ClientSecretBasic(opts.secret) : oidc.TlsClientAuth()
  const f = fetchWith(opts.cert)
  const config = await oidc.discovery(new URL(origin), id, undefined, auth, { [oidc.customFetch]: f })
  config[oidc.customFetch] = f
  return config
}

const curlTls = (): string[] => ['--resolve', `localhost:${gw.port()}:127.0.0.1`, '--cacert', pki.ca.certFile]

beforeAll(async () => {
  pki = await createTestPki()
  upstream = await startUpstream()
  const port = await freePort()
  origin = `https://localhost:${port}`
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:${port}
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
authorization_server:
  issuer: ${origin}
  ca_certificates: ${pki.ca.certFile}
  clients:
    - client_id: keystone
      token_endpoint_auth_method: client_secret_basic
      client_secret: ${SECRET}
      scope: orders:read
    - client_id: dpop-only
      token_endpoint_auth_method: client_secret_basic
      client_secret: ${SECRET}
      scope: orders:read
      dpop_bound_access_tokens: true
    - client_id: svc
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: orders:read
    - client_id: rs
      token_endpoint_auth_method: client_secret_basic
      client_secret: ${SECRET}
      introspection: true
services:
  - name: echo
    url: ${upstream.url}
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: openid-connect
            config:
              issuer: ${origin}
              proof_of_possession_dpop: strict
      - name: ti
        paths: [/ti]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${origin}/oauth2/introspect
              proof_of_possession_dpop: optional
`)
}, 60_000)

afterAll(async () => {
  await Promise.all(agents.map(a => a.close()))
  await gw?.close()
  await upstream?.close()
  pki?.cleanup()
})

describe('RFC 9449 §5.1: metadata', () => {
  it('announces dpop_signing_alg_values_supported', async () => {
    const config = await client('keystone', { secret: SECRET })
    expect(config.serverMetadata().dpop_signing_alg_values_supported).toEqual(['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'])
  })
})

describe('openid-client v6 with DPoP: token endpoint → gateway-protected routes', () => {
  it('clientCredentialsGrant with a DPoP handle gets token_type DPoP and cnf.jkt of the key; the token passes openid-connect and token-introspection', async () => {
    const config = await client('keystone', { secret: SECRET })
    const keyPair = await oidc.randomDPoPKeyPair('ES256')
    const DPoP = oidc.getDPoPHandle(config, keyPair)
    const res = await oidc.clientCredentialsGrant(config, { scope: 'orders:read' }, { DPoP })
    expect(res.token_type.toLowerCase()).toBe('dpop')
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
    expect(decodeJwt(res.access_token).cnf).toEqual({ jkt })

    // openid-client as the resource client: Authorization: DPoP + a proof with ath, made by the library
    for (const path of ['/api/orders', '/ti/orders']) {
      const r = await oidc.fetchProtectedResource(config, res.access_token, new URL(origin + path), 'GET', undefined, undefined, { DPoP })
      expect(r.status, path).toBe(200)
      const seen = upstream.requests[upstream.requests.length - 1]
      expect(seen.headers['x-credential-token-type']).toBe('DPoP')
      expect(seen.headers.dpop).toBeUndefined()
    }

    // the same token as Bearer: refused (no downgrade)
    const bearer = await curl([...curlTls(), '-H', `Authorization: Bearer ${res.access_token}`, `${origin}/ti/orders`])
    expect(bearer.status).toBe(401)
  })

  it('introspection answers token_type DPoP and cnf.jkt (RFC 9449 §6.2)', async () => {
    const config = await client('keystone', { secret: SECRET })
    const keyPair = await oidc.randomDPoPKeyPair('EdDSA')
    const res = await oidc.clientCredentialsGrant(config, {}, { DPoP: oidc.getDPoPHandle(config, keyPair) })
    const rs = await client('rs', { secret: SECRET })
    const info = await oidc.tokenIntrospection(rs, res.access_token)
    expect(info).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) } })
  })

  it('a client with a certificate and a DPoP key: the proof wins (cnf.jkt only)', async () => {
    const config = await client('svc', { cert: pki.client1 })
    const keyPair = await oidc.randomDPoPKeyPair('ES256')
    const res = await oidc.clientCredentialsGrant(config, {}, { DPoP: oidc.getDPoPHandle(config, keyPair) })
    expect(decodeJwt(res.access_token).cnf).toEqual({ jkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)) })
    // without a proof the same client gets a certificate-bound Bearer token
    const plain = await oidc.clientCredentialsGrant(config)
    expect(plain.token_type.toLowerCase()).toBe('bearer')
    expect(decodeJwt(plain.access_token).cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.client1) })
  })
})

describe('token endpoint negative cases', () => {
  async function proof (o: { htu?: string, htm?: string, iat?: number } = {}): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
    return new SignJWT({ jti: randomBytes(8).toString('hex'), htm: o.htm ?? 'POST', htu: o.htu ?? `${origin}/oauth2/token`, iat: o.iat ?? Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(publicKey) }).sign(privateKey)
  }
  const token = (extra: string[]) => curl([...curlTls(), ...extra, '-d', 'grant_type=client_credentials', `${origin}/oauth2/token`])

  it('dpop_bound_access_tokens: a request without a proof → 400 invalid_dpop_proof', async () => {
    const r = await token(['-u', `dpop-only:${SECRET}`])
    expect(r.status).toBe(400)
    expect(JSON.parse(r.body)).toMatchObject({ error: 'invalid_dpop_proof' })
  })

  it('dpop_bound_access_tokens: with a proof → 200 token_type DPoP', async () => {
    const r = await token(['-u', `dpop-only:${SECRET}`, '-H', `DPoP: ${await proof()}`])
    expect(r.status, r.body).toBe(200)
    expect(JSON.parse(r.body)).toMatchObject({ token_type: 'DPoP' })
  })

  it.each([
    ['htu of another endpoint', { htu: `${origin}/oauth2/introspect` }],
    ['htm GET', { htm: 'GET' }],
    ['iat ten minutes old', { iat: Math.floor(Date.now() / 1000) - 600 }],
  ])('a proof with %s → 400 invalid_dpop_proof, no token', async (_name, o) => {
    const r = await token(['-u', `keystone:${SECRET}`, '-H', `DPoP: ${await proof(o)}`])
    expect(r.status).toBe(400)
    expect(JSON.parse(r.body)).toMatchObject({ error: 'invalid_dpop_proof' })
  })

  it('a replayed proof → 400 invalid_dpop_proof', async () => {
    const p = await proof()
    expect((await token(['-u', `keystone:${SECRET}`, '-H', `DPoP: ${p}`])).status).toBe(200)
    const again = await token(['-u', `keystone:${SECRET}`, '-H', `DPoP: ${p}`])
    expect(again.status).toBe(400)
    expect(JSON.parse(again.body)).toMatchObject({ error: 'invalid_dpop_proof' })
  })
})

describe('RFC 9449 §8: the authorization server\'s own nonce (dpop.require_nonce)', () => {
  it('400 use_dpop_nonce with DPoP-Nonce; openid-client retries with it and gets a DPoP-bound token', async () => {
    const as = await startAuthorizationServer(pki, o => ({
      issuer: o,
      dpop: { require_nonce: true },
      clients: [{ client_id: 'keystone', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET, scope: 'orders:read' }],
    }))
    try {
      const f = fetchWith()
      const config = await oidc.discovery(new URL(as.origin), 'keystone', undefined, oidc.ClientSecretBasic(SECRET), { [oidc.customFetch]: f })
      config[oidc.customFetch] = f
      const keyPair = await oidc.randomDPoPKeyPair('ES256')
      const DPoP = oidc.getDPoPHandle(config, keyPair)
      const seen: Array<{ status: number, nonce: string | null }> = []
      config[oidc.customFetch] = async (url: string, init: object) => {
        const r = await f(url, init)
        seen.push({ status: r.status, nonce: r.headers.get('dpop-nonce') })
        return r
      }
      const res = await oidc.clientCredentialsGrant(config, {}, { DPoP })
      expect(res.token_type.toLowerCase()).toBe('dpop')
      expect(seen.map(x => x.status)).toEqual([400, 200])
      expect(seen[0].nonce).toMatch(/^[A-Za-z0-9_-]{32}$/)
    } finally {
      await as.close()
    }
  })
})
