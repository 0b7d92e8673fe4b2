import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { pino } from 'pino'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { authorizationServer, AuthorizationServerConfigError, rotateKey } from '../../src/authorization-server/index.js'
import { call, decodeJwt, startAuthorizationServer } from './harness.js'
import { storeDeps } from '../helpers/clock.js'

let pki: TestPki
let dir: string
const SECRET = 'key-test-secret-0123456789'
const clients = [{ client_id: 'c', token_endpoint_auth_method: 'client_secret_post', client_secret: SECRET }]

beforeAll(async () => {
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'certbound-as-keys-'))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  pki?.cleanup()
})

const getToken = async (port: number) => (await call(port, '/oauth2/token', { form: { grant_type: 'client_credentials', client_id: 'c', client_secret: SECRET } })).json.access_token as string
const introspect = async (port: number, token: string) => (await call(port, '/oauth2/introspect', { form: { token, client_id: 'rs', client_secret: SECRET } })).json

function pem (kind: 'ec' | 'ed25519' | 'rsa' | 'ec384'): string {
  const k = kind === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : kind === 'ec384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' }) : kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519')
  return k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

async function createWith (config: Record<string, unknown>) {
  const parsed = authorizationServer.schema.parse({ issuer: 'https://localhost:8443', clients, ...config })
  return await authorizationServer.create(parsed, { baseDir: dir, resolvePath: (p: string) => join(dir, p), logger: pino({ level: 'silent' }), http: undefined as never, where: [], ...storeDeps() })
}

describe('key_store: generated on first start, persisted, rotated', () => {
  it('creates the store (0600) with one ES256 key, reuses it after a restart, rotates with rotateKey', async () => {
    const sub = mkdtempSync(join(dir, 'ks-'))
    const as = await startAuthorizationServer(pki, origin => ({
      issuer: origin,
      key_store: 'keys/signing.json',
      clients: [...clients, { client_id: 'rs', token_endpoint_auth_method: 'client_secret_post', client_secret: SECRET, introspection: true }],
    }), { dir: sub })
    try {
      const file = join(sub, 'keys', 'signing.json')
      expect(statSync(file).mode & 0o777).toBe(0o600)
      const stored = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ created_at: number, jwk: Record<string, string> }> }
      expect(stored.keys).toHaveLength(1)
      expect(stored.keys[0].jwk).toMatchObject({ kty: 'EC', crv: 'P-256' })
      const kid1 = as.instance.keys.signing.kid
      const old = await getToken(as.port)
      expect(decodeJwt(old).header.kid).toBe(kid1)

      await as.restart()
      expect(as.instance.keys.signing.kid).toBe(kid1)
      expect((await introspect(as.port, old)).active).toBe(true)

      // rotation: a new key is added; after the restart it signs, the old one still verifies and publishes
      const kid2 = await rotateKey(file)
      expect(kid2).not.toBe(kid1)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      await as.restart()
      expect(as.instance.keys.signing.kid).toBe(kid2)
      const fresh = await getToken(as.port)
      expect(decodeJwt(fresh).header.kid).toBe(kid2)
      expect((await introspect(as.port, old)).active).toBe(true)
      expect((await introspect(as.port, fresh)).active).toBe(true)
      const jwks = (await call(as.port, '/oauth2/jwks')).json as { keys: Array<{ kid: string }> }
      expect(jwks.keys.map(k => k.kid).sort()).toEqual([kid1, kid2].sort())
      // an independent verifier with the published JWKS accepts both
      const set = createLocalJWKSet(jwks as never)
      for (const t of [old, fresh]) await jwtVerify(t, set, { issuer: as.origin, typ: 'at+jwt' })
    } finally {
      await as.close()
    }
  })

  it('generates EdDSA or RS256 keys when signing_alg says so', async () => {
    for (const alg of ['EdDSA', 'RS256'] as const) {
      const inst = await createWith({ key_store: `ks-${alg}.json`, signing_alg: alg })
      const keys = (inst as unknown as { keys: { signing: { alg: string } } }).keys
      expect(keys.signing.alg).toBe(alg)
      await inst.close?.()
    }
  })

  it('without key_store or state_dir, keys are ephemeral (and it still works)', async () => {
    const inst = await createWith({})
    expect((inst as unknown as { keys: { keys: unknown[] } }).keys.keys).toHaveLength(1)
    await inst.close?.()
  })
})

describe('signing_keys: PEM files', () => {
  it('the first key signs, every key is published; algorithms follow the key type', async () => {
    writeFileSync(join(dir, 'ed.pem'), pem('ed25519'))
    writeFileSync(join(dir, 'ec.pem'), pem('ec'))
    writeFileSync(join(dir, 'rsa.pem'), pem('rsa'))
    const as = await startAuthorizationServer(pki, origin => ({ issuer: origin, signing_keys: [join(dir, 'ed.pem'), join(dir, 'ec.pem'), join(dir, 'rsa.pem')], clients }))
    try {
      const t = await getToken(as.port)
      const { header } = decodeJwt(t)
      expect(header.alg).toBe('EdDSA')
      const jwks = (await call(as.port, '/oauth2/jwks')).json as { keys: Array<{ alg: string, kid: string }> }
      expect(jwks.keys.map(k => k.alg)).toEqual(['EdDSA', 'ES256', 'RS256'])
      expect(jwks.keys[0].kid).toBe(header.kid)
      await jwtVerify(t, createLocalJWKSet(jwks as never), { issuer: as.origin, typ: 'at+jwt', algorithms: ['EdDSA'] })
    } finally {
      await as.close()
    }
  })

  it('reports a key that does not match signing_alg, an unsupported curve, and an unreadable file at their paths', async () => {
    writeFileSync(join(dir, 'ec2.pem'), pem('ec'))
    writeFileSync(join(dir, 'p384.pem'), pem('ec384'))
    const cases: Array<[Record<string, unknown>, Array<string | number>, RegExp]> = [
      [{ signing_keys: 'ec2.pem', signing_alg: 'RS256' }, ['signing_keys'], /signing_alg is RS256 but the signing key is a ES256 key/],
      [{ signing_keys: ['ec2.pem', 'p384.pem'] }, ['signing_keys', 1], /unsupported signing key \(ec secp384r1\)/],
      [{ signing_keys: ['missing.pem'] }, ['signing_keys', 0], /cannot read .*missing.pem: ENOENT/],
    ]
    for (const [cfg, path, msg] of cases) {
      const err = await createWith(cfg).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(AuthorizationServerConfigError)
      const e = err as AuthorizationServerConfigError
      expect(e.message).toMatch(msg)
      expect(e.path).toEqual(path) // relative to the section: the core prefixes authorization_server
    }
  })
})
