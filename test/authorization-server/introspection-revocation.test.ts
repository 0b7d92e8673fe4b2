import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { call, decodeJwt, startAuthorizationServer, type Harness, type RequestOptions } from './harness.js'
import { revocationId } from '../../src/authorization-server/revocation-store.js'

const RS_SECRET = 'resource-server-secret-0123456789'
let pki: TestPki
let dir: string
let as: Harness

const config = (origin: string) => ({
  issuer: origin,
  ca_certificates: pki.ca.certFile,
  state_dir: 'state',
  clients: [
    { client_id: 'svc1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'read' },
    { client_id: 'svc2', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client2,O=Example Org' },
    { client_id: 'rs', token_endpoint_auth_method: 'client_secret_basic', client_secret: RS_SECRET, introspection: true },
  ],
})

beforeAll(async () => {
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'certbound-as-state-'))
  as = await startAuthorizationServer(pki, config, { dir })
})

afterAll(async () => {
  await as?.close()
  rmSync(dir, { recursive: true, force: true })
  pki?.cleanup()
})

async function tokenFor (client: 'svc1' | 'svc2'): Promise<string> {
  const r = await call(as.port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: client }, cert: client === 'svc1' ? pki.client1 : pki.client2 })
  expect(r.status).toBe(200)
  return r.json.access_token as string
}
const introspect = (token: string, o: RequestOptions = { basic: ['rs', RS_SECRET] }) =>
  call(as.port, '/oauth2/introspect', { ...o, form: { token, ...o.form } })
const revoke = (token: string, o: RequestOptions) => call(as.port, '/oauth2/revoke', { ...o, form: { token, ...o.form } })

describe('RFC 7662: introspection', () => {
  it('an authorized caller (introspection: true) gets every claim, cnf included', async () => {
    const t = await tokenFor('svc1')
    const claims = decodeJwt(t).payload
    const r = await introspect(t)
    expect(r.status).toBe(200)
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.json).toEqual({
      active: true,
      scope: 'read',
      client_id: 'svc1',
      token_type: 'Bearer',
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.nbf,
      sub: 'svc1',
      aud: as.origin,
      iss: as.origin,
      jti: claims.jti,
      cnf: { 'x5t#S256': pki.thumbprint(pki.client1) },
    })
  })

  it('answers {active: false} for garbage, a tampered token and a token from another issuer', async () => {
    const t = await tokenFor('svc1')
    const [h, p, s] = t.split('.')
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwt(t).payload, scope: 'admin' })).toString('base64url')}.${s}`
    for (const x of ['garbage', tampered, `${h}.${p}.AAAA`]) expect((await introspect(x)).json).toEqual({ active: false })
  })

  it('a caller without introspection: true learns nothing ({active: false}), and the log says why', async () => {
    const t = await tokenFor('svc1')
    const r = await introspect(t, { cert: pki.client2, form: { client_id: 'svc2' } })
    expect(r.status).toBe(200)
    expect(r.json).toEqual({ active: false })
    expect(as.logs.some(l => l.outcome === 'not_allowed' && l.client_id === 'svc2')).toBe(true)
  })

  it('an unauthenticated caller gets 401 invalid_client', async () => {
    const t = await tokenFor('svc1')
    const r = await call(as.port, '/oauth2/introspect', { form: { token: t } })
    expect(r.status).toBe(401)
    expect(r.json.error).toBe('invalid_client')
    const w = await introspect(t, { basic: ['rs', 'wrong'] })
    expect(w.status).toBe(401)
    expect(w.headers['www-authenticate']).toMatch(/^Basic /)
  })

  it('token is required', async () => {
    const r = await call(as.port, '/oauth2/introspect', { form: { x: 'y' }, basic: ['rs', RS_SECRET] })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('invalid_request')
  })
})

describe('RFC 7009: revocation', () => {
  it('a client revokes its own token: 200, then introspection says inactive', async () => {
    const t = await tokenFor('svc1')
    const r = await revoke(t, { cert: pki.client1, form: { client_id: 'svc1', token_type_hint: 'access_token' } })
    expect(r.status).toBe(200)
    expect(r.text).toBe('')
    expect((await introspect(t)).json).toEqual({ active: false })
  })

  it('a client may not revoke another client\'s token', async () => {
    const t = await tokenFor('svc1')
    const r = await revoke(t, { cert: pki.client2, form: { client_id: 'svc2' } })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('unauthorized_client')
    expect((await introspect(t)).json.active).toBe(true)
  })

  it('an introspection client may revoke any token', async () => {
    const t = await tokenFor('svc2')
    expect((await revoke(t, { basic: ['rs', RS_SECRET] })).status).toBe(200)
    expect((await introspect(t)).json.active).toBe(false)
  })

  it('an invalid token is not an error (§2.2)', async () => {
    expect((await revoke('not-a-token', { cert: pki.client1, form: { client_id: 'svc1' } })).status).toBe(200)
  })

  it('requires client authentication', async () => {
    const t = await tokenFor('svc1')
    expect((await call(as.port, '/oauth2/revoke', { form: { token: t } })).status).toBe(401)
    expect((await introspect(t)).json.active).toBe(true)
  })

  it('persists revocations (0600, atomic) and keeps them across a restart over the same state_dir', async () => {
    const t = await tokenFor('svc1')
    const { jti, exp } = decodeJwt(t).payload
    await revoke(t, { cert: pki.client1, form: { client_id: 'svc1' } })
    const file = join(dir, 'state', 'revocations.json')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700)
    // the store's file: ids are hashes of the jti (no token material on disk), until in ms
    const saved = JSON.parse(readFileSync(file, 'utf8')).revocations as Record<string, number>
    expect(saved[revocationId(jti as string)]).toBe((exp as number) * 1000)
    expect(readFileSync(file, 'utf8')).not.toContain(jti as string)
    const kid = as.instance.keys.signing.kid
    await as.restart()
    expect(as.instance.keys.signing.kid).toBe(kid) // the key store kept the key: old tokens still verify
    expect((await introspect(t)).json.active).toBe(false)
    expect((await introspect(await tokenFor('svc1'))).json.active).toBe(true)
  })

  it('migrates a file of the older format (raw jti, exp in s) and drops entries whose token has expired', async () => {
    const file = join(dir, 'state', 'revocations.json')
    const now = Math.floor(Date.now() / 1000)
    writeFileSync(file, JSON.stringify({ revoked: { old: now - 10, live: now + 100 } }))
    await as.restart()
    const t = await tokenFor('svc1')
    await revoke(t, { cert: pki.client1, form: { client_id: 'svc1' } })
    const saved = JSON.parse(readFileSync(file, 'utf8')).revocations as Record<string, number>
    expect(saved[revocationId('old')]).toBeUndefined()
    expect(saved[revocationId('live')]).toBe((now + 100) * 1000)
    expect(Object.keys(saved)).toHaveLength(2)
  })
})
