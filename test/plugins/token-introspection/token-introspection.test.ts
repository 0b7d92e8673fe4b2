import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import plugin from '../../../plugins/token-introspection/index.js'
import { schema } from '../../../plugins/token-introspection/schema.js'
import { PluginConfigError, type PluginDeps, type PluginInstance } from '../../../src/pipeline/types.js'
import { localIntrospectionKey, type LocalIssuer } from '../../../src/pipeline/local-issuer.js'
import { ServiceMap } from '../../../src/pipeline/services.js'
import { CREDENTIAL_HEADERS } from '../../../src/auth/credential.js'
import { encodeCertificateHeader } from '../../../src/auth/cert-source.js'
import { x5tS256 } from '../../../src/server/peer.js'
import { createMtlsPki, type Issued, type MtlsPki } from '../../unit/helpers/mtls-pki.js'
import { startHarness, testDeps, type Harness } from '../../unit/helpers/plugin-harness.js'
import { startIntrospectionServer, type IntrospectionServer } from '../../unit/helpers/introspection-server.js'
import { ManualClock, storeDeps } from '../../helpers/clock.js'

let pki: MtlsPki
let idp: IntrospectionServer
let deps: PluginDeps
const open: Array<{ close (): Promise<void> }> = []
let seq = 0

beforeAll(async () => {
  pki = await createMtlsPki()
  idp = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  deps = testDeps(pki.dir, [pki.root.certPem])
})
afterAll(async () => {
  for (const o of open.reverse()) await o.close()
  await idp.close()
  await deps.http.close()
  pki.cleanup()
})

const now = (): number => Math.floor(Date.now() / 1000)
const as = (c: Issued) => ({ certPem: c.certPem, keyPem: c.keyPem })
const bearer = (t: string) => ({ authorization: `Bearer ${t}` })

/** A fresh token answered by the IdP with these claims (active, 5 minutes left, unless overridden). */
function token (claims: Record<string, unknown> = {}, answer: { status?: number, delayMs?: number, raw?: string } = {}): string {
  const t = `tok-${++seq}-${Math.random().toString(36).slice(2)}`
  idp.tokens.set(t, { json: { active: true, scope: 'system-access', client_id: 'system-client-mtls', token_type: 'Bearer', sub: 'service-account-system-client-mtls', iss: 'https://idp.test', exp: now() + 300, iat: now(), jti: t, ...claims }, ...answer })
  return t
}
const boundTo = (c: Issued) => ({ cnf: { 'x5t#S256': x5tS256(c.der) } })

async function instance (config: Record<string, unknown>, d: PluginDeps = deps): Promise<PluginInstance> {
  const inst = await plugin.create(schema.parse({ introspection_endpoint: idp.url, client_id: 'introspection-client', client_secret: 'secret', ...config }), d)
  open.push({ close: () => inst.close?.() ?? Promise.resolve() })
  return inst
}

async function serve (config: Record<string, unknown> = {}, d: PluginDeps = deps): Promise<Harness> {
  const h = await startHarness(await instance(config, d), { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  open.push(h)
  return h
}

describe('token-introspection: config', () => {
  it('accepts Callista\'s keys and has safe defaults', () => {
    const c = schema.parse({ introspection_endpoint: 'https://idp/introspect', client_id: 'a', client_secret: 'b', scope: ['system-access'], certificate_header: 'X-Client-Cert', custom_claims_forward: ['department'] })
    expect(c).toMatchObject({ introspection_ssl_verify: true, token_header: 'Authorization', hide_credentials: false, ttl: 30, negative_ttl: 0, timeout: 5000, certificate_binding: 'optional', cache_size: 10_000, introspection_endpoint_auth_method: 'client_secret_basic', certificate_header_format: 'url_encoded', trusted_ips: [] })
    expect(schema.safeParse({ introspection_endpoint: 'ftp://x' }).success).toBe(false)
    expect(schema.safeParse({ introspection_endpoint: 'https://x', introspection_url: 'https://x' }).success).toBe(false)
    expect(schema.safeParse({ introspection_endpoint: 'https://x', scope: ['two words'] }).success).toBe(false)
  })

  it('requires client credentials for the chosen auth method, at their path', async () => {
    const cases: Array<[Record<string, unknown>, Array<string | number>]> = [
      [{ client_id: undefined }, ['client_id']],
      [{ client_secret: undefined }, ['client_secret']],
      [{ introspection_endpoint_auth_method: 'tls_client_auth' }, ['client_cert']],
      [{ introspection_endpoint_auth_method: 'tls_client_auth', client_cert: 'missing.pem', client_key: 'missing.key' }, ['client_cert']],
      [{ allow_anonymous: true }, ['allow_anonymous']],
      [{ trusted_ips: ['10.0.0.0/99'] }, ['trusted_ips', 0]],
      // RFC 9449 §7.1: DPoP-bound tokens travel in Authorization only
      [{ proof_of_possession_dpop: 'optional', token_header: 'X-Token' }, ['token_header']],
    ]
    for (const [extra, path] of cases) {
      const err = await Promise.resolve().then(() => plugin.create(schema.parse({ introspection_endpoint: idp.url, client_id: 'c', client_secret: 's', ...extra }), deps)).catch((e: unknown) => e)
      expect(err, JSON.stringify(extra)).toBeInstanceOf(PluginConfigError)
      expect((err as PluginConfigError).path).toEqual(path)
    }
  })

  it('declares the headers it sets and that it provides a credential', async () => {
    const inst = await instance({ custom_claims_forward: ['department'], certificate_header: 'X-Client-Cert' })
    expect(inst.providesCredential).toBe(true)
    expect(inst.identityHeaders).toEqual(expect.arrayContaining([...CREDENTIAL_HEADERS, 'x-credential-department', 'x-client-cert']))
  })
})

describe('RFC 7662 + RFC 8705 §3: certificate-bound tokens', () => {
  let h: Harness
  let strict: Harness
  beforeAll(async () => {
    h = await serve({ scope: ['system-access'] })
    strict = await serve({ certificate_binding: 'strict' })
  })

  it('a bound token on the right certificate passes, with Callista\'s X-Credential-* headers upstream', async () => {
    const t = token(boundTo(pki.client1))
    const a = await h.send({ ...as(pki.client1), headers: bearer(t) })
    expect(a.status).toBe(200)
    expect(a.upstream.get('x-credential-scope')).toBe('system-access')
    expect(a.upstream.get('x-credential-client-id')).toBe('system-client-mtls')
    expect(a.upstream.get('x-credential-token-type')).toBe('Bearer')
    expect(a.upstream.get('x-credential-sub')).toBe('service-account-system-client-mtls')
    expect(a.upstream.get('x-credential-iss')).toBe('https://idp.test')
    expect(a.upstream.get('x-credential-jti')).toBe(t)
    expect(a.upstream.get('x-credential-exp')).toMatch(/^\d+$/)
    expect(a.upstream.has('authorization')).toBe(false) // forwarded unless hide_credentials
    expect(a.body.credential).toMatchObject({ clientId: 'system-client-mtls', verifiedBy: 'token-introspection', cnfX5tS256: x5tS256(pki.client1.der) })
    expect(h.contexts[h.contexts.length - 1].credential?.token).toBe(t)
  })

  it('the same token on another certificate → 401 invalid_token', async () => {
    const t = token(boundTo(pki.client1))
    const a = await h.send({ ...as(pki.client2), headers: bearer(t) })
    expect(a.status).toBe(401)
    expect(a.body.code).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
    expect(a.headers['www-authenticate']).toBe('Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid"')
  })

  it('a bound token without any client certificate → 401 invalid_token', async () => {
    const a = await h.send({ headers: bearer(token(boundTo(pki.client1))) })
    expect(a.status).toBe(401)
    expect(a.body.code).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
  })

  it('a malformed cnf → 401', async () => {
    const a = await h.send({ ...as(pki.client1), headers: bearer(token({ cnf: { 'x5t#S256': 42 } })) })
    expect(a.status).toBe(401)
    const b = await h.send({ ...as(pki.client1), headers: bearer(token({ cnf: 'x' })) })
    expect(b.status).toBe(401)
  })

  it('a token bound to something else than a certificate (DPoP cnf.jkt) is not treated as unbound', async () => {
    const a = await h.send({ ...as(pki.client1), headers: bearer(token({ cnf: { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' } })) })
    expect(a.status).toBe(401)
    expect(a.body.code).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
  })

  it('certificate_binding optional: an unbound token passes; strict: refused', async () => {
    const t = token()
    expect((await h.send({ ...as(pki.client1), headers: bearer(t) })).status).toBe(200)
    const s = await strict.send({ ...as(pki.client1), headers: bearer(t) })
    expect(s.status).toBe(401)
    expect(s.body.code).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
    expect((await strict.send({ ...as(pki.client1), headers: bearer(token(boundTo(pki.client1))) })).status).toBe(200)
  })

  it('an inactive token → 401 invalid_token, and it is asked about every time by default', async () => {
    const t = 'inactive-' + String(++seq)
    idp.tokens.set(t, { json: { active: false } })
    const a = await h.send({ ...as(pki.client1), headers: bearer(t) })
    expect(a.status).toBe(401)
    expect(a.body.code).toBe('CB_ERR_TOKEN_INACTIVE')
    expect(a.headers['www-authenticate']).toContain('error="invalid_token"')
    await h.send({ ...as(pki.client1), headers: bearer(t) })
    expect(idp.calls(t)).toBe(2)
  })

  it('negative_ttl caches inactive answers', async () => {
    const n = await serve({ negative_ttl: 60 })
    const t = 'inactive-' + String(++seq)
    idp.tokens.set(t, { json: { active: false } })
    await n.send({ headers: bearer(t) })
    await n.send({ headers: bearer(t) })
    expect(idp.calls(t)).toBe(1)
  })

  it('active:true past exp, or a refresh token, is refused, each with its sub-reason for the log and dashboard', async () => {
    const expired = await h.send({ ...as(pki.client1), headers: bearer(token({ exp: now() - 10 })) })
    expect([expired.status, expired.body.code, expired.body.errCause]).toEqual([401, 'CB_ERR_TOKEN_INACTIVE', 'expired'])
    const refresh = await h.send({ ...as(pki.client1), headers: bearer(token({ token_type: undefined, typ: 'Refresh' })) })
    expect([refresh.status, refresh.body.code, refresh.body.errCause]).toEqual([401, 'CB_ERR_TOKEN_INACTIVE', 'type'])
    // the IdP's active:false says no more than that: no sub-reason is made up
    const t = 'inactive-' + String(++seq)
    idp.tokens.set(t, { json: { active: false } })
    expect((await h.send({ ...as(pki.client1), headers: bearer(t) })).body.errCause).toBeUndefined()
  })

  it('missing scope → 403 insufficient_scope naming the required scope', async () => {
    const a = await h.send({ ...as(pki.client1), headers: bearer(token({ scope: 'other' })) })
    expect(a.status).toBe(403)
    expect(a.body.code).toBe('CB_ERR_INSUFFICIENT_SCOPE')
    expect(a.headers['www-authenticate']).toContain('scope="system-access"')
  })

  it('scope and its alias scopes are all required', async () => {
    const s = await serve({ scope: ['a'], scopes: ['b'] })
    expect((await s.send({ headers: bearer(token({ scope: 'a' })) })).status).toBe(403)
    expect((await s.send({ headers: bearer(token({ scope: 'b a c' })) })).status).toBe(200)
  })

  it('RFC 6750: no token → 401 without error; two Authorization headers → 400 invalid_request', async () => {
    const none = await h.send(as(pki.client1))
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer realm="certbound"')
    const t = token()
    const two = await h.send({ ...as(pki.client1), headers: { authorization: [`Bearer ${t}`, `Bearer ${t}`] } })
    expect(two.status).toBe(400)
  })
})

describe('token-introspection: the request to the authorization server', () => {
  it('POSTs a properly URL-encoded form (a token with + / =) with Accept: application/json', async () => {
    const h = await serve()
    const t = `abc+def/ghi==`
    idp.tokens.set(t, { json: { active: true, exp: now() + 60 } })
    expect((await h.send({ headers: bearer(t) })).status).toBe(200)
    const r = idp.requests[idp.requests.length - 1]
    expect(r.method).toBe('POST')
    expect(r.body).toBe('token=abc%2Bdef%2Fghi%3D%3D&token_type_hint=access_token')
    expect(r.form.get('token')).toBe(t)
    expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded')
    expect(r.headers.accept).toBe('application/json')
  })

  it('client_secret_basic form-encodes id and secret before base64 (RFC 6749 §2.3.1)', async () => {
    const h = await serve({ client_id: 'my client:id+1', client_secret: 'p@ss w%rd/é' })
    const t = token()
    await h.send({ headers: bearer(t) })
    const r = idp.requests[idp.requests.length - 1]
    const expected = 'my+client%3Aid%2B1:p%40ss+w%25rd%2F%C3%A9'
    expect(r.headers.authorization).toBe('Basic ' + Buffer.from(expected).toString('base64'))
    expect(r.form.has('client_secret')).toBe(false)
  })

  it('client_secret_post puts the credentials in the form', async () => {
    const h = await serve({ introspection_endpoint_auth_method: 'client_secret_post', client_id: 'a b', client_secret: 's+t' })
    await h.send({ headers: bearer(token()) })
    const r = idp.requests[idp.requests.length - 1]
    expect(r.headers.authorization).toBeUndefined()
    expect(r.form.get('client_id')).toBe('a b')
    expect(r.form.get('client_secret')).toBe('s+t')
    expect(r.body).toContain('client_id=a+b&client_secret=s%2Bt')
  })

  it('tls_client_auth presents client_cert in TLS and client_id in the form (RFC 8705 §2.1)', async () => {
    pki.write('gw.crt', pki.client2.certPem)
    pki.write('gw.key', pki.client2.keyPem)
    const h = await serve({ introspection_endpoint_auth_method: 'tls_client_auth', client_cert: 'gw.crt', client_key: 'gw.key', client_secret: undefined })
    await h.send({ headers: bearer(token()) })
    const r = idp.requests[idp.requests.length - 1]
    expect(r.clientCn).toBe('client2')
    expect(r.form.get('client_id')).toBe('introspection-client')
    expect(r.headers.authorization).toBeUndefined()
  })

  it('reads Keycloak\'s names when RFC 7662\'s are absent (clientId, typ)', async () => {
    const h = await serve()
    const a = await h.send({ headers: bearer(token({ client_id: undefined, token_type: undefined, clientId: 'kc-client', typ: 'Bearer' })) })
    expect(a.upstream.get('x-credential-client-id')).toBe('kc-client')
    expect(a.upstream.get('x-credential-token-type')).toBe('Bearer')
  })

  it('uses an in-process issuer instead of HTTP when one serves the endpoint', async () => {
    const url = 'https://local.test/introspect'
    const local: LocalIssuer = {
      issuer: 'https://local.test',
      metadata: () => ({}),
      jwks: () => ({ keys: [] }),
      introspect: (t: string) => Promise.resolve(t === 'local-token' ? { active: true, sub: 'local', exp: now() + 60 } : { active: false }),
    }
    const localDeps = { ...deps, local: new ServiceMap().set(localIntrospectionKey(url), local) }
    const before = idp.calls()
    // no client credentials needed for the built-in issuer
    const inst = await plugin.create(schema.parse({ introspection_endpoint: url }), localDeps)
    const h = await startHarness(inst, { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
    open.push(h)
    expect((await h.send({ headers: bearer('local-token') })).upstream.get('x-credential-sub')).toBe('local')
    expect((await h.send({ headers: bearer('other') })).status).toBe(401)
    expect(idp.calls()).toBe(before)
  })
})

describe('token-introspection: failures of the authorization server (fail closed)', () => {
  it('a 4xx from the IdP → 401 invalid_token, with the IdP\'s answer in the log detail', async () => {
    const h = await serve()
    const t = token({}, { status: 400, raw: '{"error":"invalid_request","error_description":"JWT introspection refused"}' })
    const a = await h.send({ headers: bearer(t) })
    expect(a.status).toBe(401)
    expect(a.body.code).toBe('CB_ERR_TOKEN_INVALID')
    expect(a.body.detail).toContain('400')
    expect(a.body.detail).toContain('JWT introspection refused')
  })

  it('a 5xx, a non-JSON body or a timeout → 503 CB_ERR_IDP_UNAVAILABLE', async () => {
    const h = await serve({ timeout: 200 })
    for (const t of [token({}, { status: 502 }), token({}, { raw: '<html>' }), token({}, { delayMs: 1000 })]) {
      const a = await h.send({ headers: bearer(t) })
      expect(a.status).toBe(503)
      expect(a.body.code).toBe('CB_ERR_IDP_UNAVAILABLE')
    }
  })

  it('IdP down: refused without a cached result; a cached valid result still serves', async () => {
    const down = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
    const h = await serve({ introspection_endpoint: down.url })
    const cached = 'cached-' + String(++seq)
    down.tokens.set(cached, { json: { active: true, exp: now() + 300, ...boundTo(pki.client1) } })
    expect((await h.send({ ...as(pki.client1), headers: bearer(cached) })).status).toBe(200)
    await down.close()
    const fresh = await h.send({ ...as(pki.client1), headers: bearer('never-seen') })
    expect(fresh.status).toBe(503)
    expect(fresh.body.code).toBe('CB_ERR_IDP_UNAVAILABLE')
    expect((await h.send({ ...as(pki.client1), headers: bearer(cached) })).status).toBe(200)
    // the cache does not weaken the binding
    expect((await h.send({ ...as(pki.client2), headers: bearer(cached) })).status).toBe(401)
  })
})

describe('token-introspection: cache', () => {
  it('caches an active result: one IdP call for repeated requests', async () => {
    const h = await serve()
    const t = token()
    for (let i = 0; i < 3; i++) expect((await h.send({ headers: bearer(t) })).status).toBe(200)
    expect(idp.calls(t)).toBe(1)
  })

  it('ttl 0 disables the cache', async () => {
    const h = await serve({ ttl: 0 })
    const t = token()
    await h.send({ headers: bearer(t) })
    await h.send({ headers: bearer(t) })
    expect(idp.calls(t)).toBe(2)
  })

  it('never serves a cached result past the token\'s exp', async () => {
    // the plugin's clock is driven: the token's exp is on it, and the test moves it past exp instead of sleeping
    const clock = new ManualClock(Date.now())
    const h = await serve({ ttl: 300 }, { ...deps, ...storeDeps(clock.now) })
    const exp = Math.floor(clock.now() / 1000) + 2
    const t = token({ exp, iat: exp - 2 })
    expect((await h.send({ headers: bearer(t) })).status).toBe(200)
    clock.set(exp * 1000 - 1)
    expect((await h.send({ headers: bearer(t) })).status).toBe(200)
    expect(idp.calls(t)).toBe(1)
    // the IdP would now say inactive; meanwhile the cache must not answer for it
    idp.tokens.set(t, { json: { active: false } })
    clock.set(exp * 1000)
    const a = await h.send({ headers: bearer(t) })
    expect(a.status).toBe(401)
    expect(idp.calls(t)).toBe(2)
  })

  it('single flight: 10 concurrent misses for one token make one IdP call', async () => {
    const h = await serve()
    const t = token({}, { delayMs: 150 })
    const answers = await Promise.all(Array.from({ length: 10 }, () => h.send({ headers: bearer(t) })))
    expect(answers.map(a => a.status)).toEqual(Array(10).fill(200))
    expect(idp.calls(t)).toBe(1)
  })

  it('cache_size bounds the cache (least recently used evicted)', async () => {
    const h = await serve({ cache_size: 2 })
    const [a, b, c] = [token(), token(), token()]
    for (const t of [a, b, c, a]) await h.send({ headers: bearer(t) })
    expect(idp.calls(a)).toBe(2)
  })
})

describe('token-introspection: headers', () => {
  it('hide_credentials removes token_header upstream', async () => {
    const h = await serve({ hide_credentials: true })
    const a = await h.send({ headers: bearer(token()) })
    expect(a.status).toBe(200)
    expect(a.upstream.get('authorization')).toBeNull()
  })

  it('token_header: another header carries the raw token', async () => {
    const h = await serve({ token_header: 'X-Access-Token', hide_credentials: true })
    const t = token()
    const a = await h.send({ headers: { 'x-access-token': t } })
    expect(a.status).toBe(200)
    expect(a.upstream.get('x-access-token')).toBeNull()
    expect((await h.send({ headers: bearer(t) })).status).toBe(401)
  })

  it('custom_claims_forward sends claims as X-Credential-<Claim>', async () => {
    const h = await serve({ custom_claims_forward: ['department', 'roles', 'absent', 'evil'] })
    const a = await h.send({ headers: bearer(token({ department: 'eng', roles: ['a', 'b'], evil: 'x\r\nInjected: 1' })) })
    expect(a.upstream.get('x-credential-department')).toBe('eng')
    expect(a.upstream.get('x-credential-roles')).toBe('["a","b"]')
    expect(a.upstream.has('x-credential-absent')).toBe(false)
    expect(a.upstream.get('x-credential-evil')).toBe('xInjected: 1')
  })

  it('certificate_header from a trusted TLS terminator binds to the forwarded certificate', async () => {
    const h = await serve({ certificate_header: 'X-Client-Cert', trusted_ips: ['127.0.0.1/32'] })
    const t = token(boundTo(pki.client1))
    // the terminator's own TLS certificate is client2; the client's (client1) comes in the header
    const a = await h.send({ ...as(pki.client2), headers: { ...bearer(t), 'x-client-cert': encodeCertificateHeader('url_encoded', pki.client1.der) } })
    expect(a.status).toBe(200)
    const wrong = await h.send({ ...as(pki.client1), headers: { ...bearer(t), 'x-client-cert': encodeCertificateHeader('url_encoded', pki.client2.der) } })
    expect(wrong.status).toBe(401)
  })

  it('certificate_header from an untrusted address is ignored (the seed config: no trusted_ips)', async () => {
    const h = await serve({ certificate_header: 'X-Client-Cert' })
    const t = token(boundTo(pki.client1))
    const spoofed = await h.send({ ...as(pki.client2), headers: { ...bearer(t), 'x-client-cert': encodeCertificateHeader('url_encoded', pki.client1.der) } })
    expect(spoofed.status).toBe(401)
    expect((await h.send({ ...as(pki.client1), headers: bearer(t) })).status).toBe(200)
  })
})
