import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { localIntrospectionKey, localIssuerKey, type LocalIssuer } from '../../src/pipeline/local-issuer.js'
import { call, startAuthorizationServer, type Harness } from './harness.js'

let pki: TestPki
let as: Harness
let withPath: Harness

beforeAll(async () => {
  pki = await createTestPki()
  const clients = [
    { client_id: 'a', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'write read' },
    { client_id: 'b', token_endpoint_auth_method: 'client_secret_basic', client_secret: 'b-secret-0123456789', scope: 'read admin' },
  ]
  as = await startAuthorizationServer(pki, origin => ({ issuer: origin, ca_certificates: pki.ca.certFile, clients }))
  withPath = await startAuthorizationServer(pki, origin => ({ issuer: `${origin}/as`, ca_certificates: pki.ca.certFile, clients, endpoints: { jwks: '/keys' } }))
})

afterAll(async () => {
  await as?.close()
  await withPath?.close()
  pki?.cleanup()
})

describe('RFC 8414: authorization server metadata', () => {
  it('serves the document at /.well-known/oauth-authorization-server and /.well-known/openid-configuration', async () => {
    const o = as.origin
    const a = await call(as.port, '/.well-known/oauth-authorization-server')
    const b = await call(as.port, '/.well-known/openid-configuration')
    expect(a.status).toBe(200)
    expect(a.headers['content-type']).toBe('application/json;charset=UTF-8')
    expect(b.json).toEqual(a.json)
    expect(a.json).toEqual({
      issuer: o,
      token_endpoint: `${o}/oauth2/token`,
      introspection_endpoint: `${o}/oauth2/introspect`,
      revocation_endpoint: `${o}/oauth2/revoke`,
      jwks_uri: `${o}/oauth2/jwks`,
      grant_types_supported: ['client_credentials'],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: ['tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic', 'client_secret_post'],
      introspection_endpoint_auth_methods_supported: ['tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic', 'client_secret_post'],
      revocation_endpoint_auth_methods_supported: ['tls_client_auth', 'self_signed_tls_client_auth', 'client_secret_basic', 'client_secret_post'],
      scopes_supported: ['admin', 'read', 'write'],
      tls_client_certificate_bound_access_tokens: true,
      dpop_signing_alg_values_supported: ['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'],
      mtls_endpoint_aliases: {
        token_endpoint: `${o}/oauth2/token`,
        introspection_endpoint: `${o}/oauth2/introspect`,
        revocation_endpoint: `${o}/oauth2/revoke`,
      },
    })
  })

  it('answers HEAD without a body, other methods with 405', async () => {
    const h = await call(as.port, '/.well-known/oauth-authorization-server', { method: 'HEAD' })
    expect(h.status).toBe(200)
    expect(h.text).toBe('')
    const p = await call(as.port, '/.well-known/oauth-authorization-server', { method: 'POST', form: { a: 'b' } })
    expect(p.status).toBe(405)
    expect(p.headers.allow).toBe('GET, HEAD')
  })

  it('an issuer with a path: RFC 8414 §3.1 inserts the well-known segment; OIDC appends it; endpoints move under the path', async () => {
    const o = withPath.origin
    const a = await call(withPath.port, '/.well-known/oauth-authorization-server/as')
    const b = await call(withPath.port, '/as/.well-known/openid-configuration')
    expect(a.json.issuer).toBe(`${o}/as`)
    expect(b.json).toEqual(a.json)
    expect(a.json.token_endpoint).toBe(`${o}/as/oauth2/token`)
    expect(a.json.jwks_uri).toBe(`${o}/keys`)
    expect((await call(withPath.port, '/.well-known/oauth-authorization-server')).status).toBe(404)
    expect(withPath.instance.routes.find(r => r.name === 'authorization_server.token')?.paths).toEqual(['/as/oauth2/token'])
  })
})

describe('jwks_uri', () => {
  it('publishes the public signing key with kid, alg, use — and nothing private', async () => {
    const r = await call(as.port, '/oauth2/jwks')
    expect(r.status).toBe(200)
    const keys = r.json.keys as Array<Record<string, unknown>>
    expect(keys).toHaveLength(1)
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: as.instance.keys.signing.kid })
    expect(keys[0].d).toBeUndefined()
  })
})

describe('LocalIssuer service (in-process validation for the token plugins)', () => {
  it('is registered under localIssuerKey(issuer) and localIntrospectionKey(introspection endpoint)', () => {
    const byIssuer = as.instance.services.get(localIssuerKey(as.origin)) as LocalIssuer
    expect(byIssuer).toBeDefined()
    expect(as.instance.services.get(localIssuerKey(as.origin + '/'))).toBe(byIssuer)
    expect(as.instance.services.get(localIntrospectionKey(`${as.origin}/oauth2/introspect`))).toBe(byIssuer)
    expect(byIssuer.issuer).toBe(as.origin)
    expect(byIssuer.metadata().token_endpoint).toBe(`${as.origin}/oauth2/token`)
    expect(byIssuer.jwks().keys[0].kid).toBe(as.instance.keys.signing.kid)
  })

  it('introspects tokens in process', async () => {
    const issuer = as.instance.services.get(localIssuerKey(as.origin)) as LocalIssuer
    const r = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'a' }, cert: pki.client1 })
    const res = await issuer.introspect(r.json.access_token as string)
    expect(res).toMatchObject({ active: true, client_id: 'a', scope: 'write read', token_type: 'Bearer', cnf: { 'x5t#S256': pki.thumbprint(pki.client1) } })
    expect(await issuer.introspect('not-a-token')).toEqual({ active: false })
  })

  it('serves its endpoints as named internal routes', () => {
    expect(as.instance.routes.flatMap(r => r.paths).sort()).toEqual(['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/oauth2/introspect', '/oauth2/jwks', '/oauth2/revoke', '/oauth2/token'])
    expect(as.instance.routes.map(r => r.name).sort()).toEqual(['authorization_server.introspection', 'authorization_server.jwks', 'authorization_server.metadata', 'authorization_server.revocation', 'authorization_server.token'])
  })
})

describe('plain HTTP listeners', () => {
  it('token endpoints answer 400 instead of passing the request (and its secrets) on to routing', async () => {
    const plain = await startAuthorizationServer(pki, origin => ({ issuer: origin, clients: [] }), { listenerTls: false })
    try {
      const base = `http://127.0.0.1:${plain.port}`
      const r = await fetch(`${base}/oauth2/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) })
      expect(r.status).toBe(400)
      expect(((await r.json()) as { error_description: string }).error_description).toMatch(/https only/)
      expect((await fetch(`${base}/.well-known/oauth-authorization-server`)).status).toBe(200)
    } finally {
      await plain.close()
    }
  })
})
