/**
 * Interop with independent implementations: the real curl (what users run), plain jose with the published
 * JWKS (what any resource server does), and openid-client v6 driven by our RFC 8414 metadata.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Agent, fetch as undiciFetch } from 'undici'
import { createLocalJWKSet, createRemoteJWKSet, customFetch as joseCustomFetch, jwtVerify } from 'jose'
import * as oidc from 'openid-client'
import { createTestPki, type TestPki, type TestCert } from '../helpers/pki.js'
import { curl } from '../helpers/curl.js'
import { call, decodeJwt, startAuthorizationServer, type Harness } from './harness.js'

const SECRET = 'interop-secret-0123456789abcdef'
let pki: TestPki
let as: Harness
const agents: Agent[] = []

beforeAll(async () => {
  pki = await createTestPki()
  as = await startAuthorizationServer(pki, origin => ({
    issuer: origin,
    ca_certificates: pki.ca.certFile,
    clients: [
      { client_id: 'svc', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'orders:read orders:write' },
      { client_id: 'self', token_endpoint_auth_method: 'self_signed_tls_client_auth', certificate: pki.selfSigned.certFile, scope: 'orders:read' },
      { client_id: 'keystone', token_endpoint_auth_method: 'client_secret_basic', client_secret: SECRET, scope: 'orders:read' },
    ],
  }))
})

afterAll(async () => {
  await Promise.all(agents.map(a => a.close()))
  await as?.close()
  pki?.cleanup()
})

/** A WHATWG fetch that trusts the test CA and, optionally, presents a client certificate (mTLS). */
type Fetch = (url: string, init: object) => Promise<Response>
function fetchWith (cert?: TestCert): Fetch {
  const agent = new Agent({ connect: { ca: pki.ca.certPem, cert: cert?.certPem, key: cert?.keyPem, autoSelectFamily: true } })
  agents.push(agent)
  return async function mtlsFetch (url: string, init: object): Promise<Response> {
    return await undiciFetch(url, { ...init, dispatcher: agent }) as unknown as Response
  }
}

const curlTls = () => ['--resolve', `localhost:${as.port}:127.0.0.1`, '--cacert', pki.ca.certFile]

describe('curl (the commands users run)', () => {
  it('tls_client_auth: curl --cert --key --cacert -d grant_type=client_credentials -d client_id=svc', async () => {
    const r = await curl([...curlTls(), '--cert', pki.client1.certFile, '--key', pki.client1.keyFile,
      '-d', 'grant_type=client_credentials', '-d', 'client_id=svc', `${as.origin}/oauth2/token`])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.status).toBe(200)
    expect(r.headers['cache-control']).toBe('no-store')
    const body = JSON.parse(r.body) as Record<string, unknown>
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'orders:read orders:write' })
    expect(decodeJwt(body.access_token as string).payload.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.client1) })
  })

  it('self_signed_tls_client_auth with curl (WSO2 style)', async () => {
    const r = await curl([...curlTls(), '--cert', pki.selfSigned.certFile, '--key', pki.selfSigned.keyFile,
      '-H', 'Content-Type: application/x-www-form-urlencoded', '-d', 'grant_type=client_credentials&client_id=self', `${as.origin}/oauth2/token`])
    expect(r.status, r.body).toBe(200)
  })

  it('client_secret_basic: curl -u id:secret -d grant_type=client_credentials (Keystone style)', async () => {
    const r = await curl([...curlTls(), '-u', `keystone:${SECRET}`, '-d', 'grant_type=client_credentials', `${as.origin}/oauth2/token`])
    expect(r.status, r.body).toBe(200)
    const body = JSON.parse(r.body) as Record<string, unknown>
    expect(body.scope).toBe('orders:read')
    expect(decodeJwt(body.access_token as string).payload.cnf).toBeUndefined()
  })

  it('a wrong secret: 401 with a Basic challenge', async () => {
    const r = await curl([...curlTls(), '-u', 'keystone:wrong', '-d', 'grant_type=client_credentials', `${as.origin}/oauth2/token`])
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toMatch(/^Basic realm="certbound"/)
    expect(JSON.parse(r.body)).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' })
  })

  it('client2\'s certificate is refused for svc', async () => {
    const r = await curl([...curlTls(), '--cert', pki.client2.certFile, '--key', pki.client2.keyFile,
      '-d', 'grant_type=client_credentials', '-d', 'client_id=svc', `${as.origin}/oauth2/token`])
    expect(r.status).toBe(401)
  })
})

describe('jose: an independent verifier with the published JWKS', () => {
  it('createRemoteJWKSet over jwks_uri verifies the token (issuer, audience, at+jwt)', async () => {
    const tok = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'svc' }, cert: pki.client1 })
    const meta = (await call(as.port, '/.well-known/oauth-authorization-server')).json
    const jwks = createRemoteJWKSet(new URL(meta.jwks_uri as string), { [joseCustomFetch]: fetchWith() })
    const { payload, protectedHeader } = await jwtVerify(tok.json.access_token as string, jwks, { issuer: as.origin, audience: as.origin, typ: 'at+jwt', algorithms: ['ES256'] })
    expect(protectedHeader.typ).toBe('at+jwt')
    expect(payload.client_id).toBe('svc')
  })

  it('createLocalJWKSet verifies, and rejects a token whose payload was altered', async () => {
    const tok = (await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'svc' }, cert: pki.client1 })).json.access_token as string
    const set = createLocalJWKSet((await call(as.port, '/oauth2/jwks')).json as never)
    await jwtVerify(tok, set, { issuer: as.origin, typ: 'at+jwt' })
    const [h, , s] = tok.split('.')
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwt(tok).payload, scope: 'admin' })).toString('base64url')}.${s}`
    await expect(jwtVerify(forged, set)).rejects.toThrow(/signature verification failed/)
  })
})

describe('openid-client v6: discovery() + clientCredentialsGrant() against our metadata', () => {
  it('tls_client_auth over mTLS, using the RFC 8705 mtls_endpoint_aliases', async () => {
    const config = await oidc.discovery(new URL(as.origin), 'svc', { use_mtls_endpoint_aliases: true }, oidc.TlsClientAuth(), { [oidc.customFetch]: fetchWith(pki.client1) })
    config[oidc.customFetch] = fetchWith(pki.client1)
    expect(config.serverMetadata().tls_client_certificate_bound_access_tokens).toBe(true)
    const res = await oidc.clientCredentialsGrant(config, { scope: 'orders:read' })
    expect(res.token_type.toLowerCase()).toBe('bearer')
    expect(res.scope).toBe('orders:read')
    expect(res.expiresIn()).toBeGreaterThan(290)
    expect(decodeJwt(res.access_token).payload.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.client1) })
  })

  it('client_secret_basic, and the error surfaces as an OAuth error for a wrong secret', async () => {
    const config = await oidc.discovery(new URL(as.origin), 'keystone', undefined, oidc.ClientSecretBasic(SECRET), { [oidc.customFetch]: fetchWith() })
    config[oidc.customFetch] = fetchWith()
    const res = await oidc.clientCredentialsGrant(config)
    expect(res.scope).toBe('orders:read')

    const bad = await oidc.discovery(new URL(as.origin), 'keystone', undefined, oidc.ClientSecretBasic('wrong'), { [oidc.customFetch]: fetchWith() })
    bad[oidc.customFetch] = fetchWith()
    // a 401 with WWW-Authenticate surfaces as the challenge (RFC 6749 §5.2), the JSON error alongside
    const err = await oidc.clientCredentialsGrant(bad).then(() => undefined, (e: unknown) => e) as { status: number, cause: Array<{ scheme: string, parameters: Record<string, string> }>, response: Response }
    expect(err.status).toBe(401)
    expect(err.cause[0]).toMatchObject({ scheme: 'basic', parameters: { realm: 'certbound' } })
    expect(await err.response.json()).toMatchObject({ error: 'invalid_client' })
  })

  it('introspection and revocation through openid-client (RFC 7662 / RFC 7009 helpers)', async () => {
    const config = await oidc.discovery(new URL(as.origin), 'svc', { use_mtls_endpoint_aliases: true }, oidc.TlsClientAuth(), { [oidc.customFetch]: fetchWith(pki.client1) })
    config[oidc.customFetch] = fetchWith(pki.client1)
    const { access_token: token } = await oidc.clientCredentialsGrant(config)
    await oidc.tokenRevocation(config, token)
    const check = await call(as.port, '/oauth2/introspect', { form: { token, client_id: 'svc' }, cert: pki.client1 })
    expect(check.json).toEqual({ active: false }) // revoked (and svc may not introspect anyway)
  })
})
