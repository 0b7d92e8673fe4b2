import { execFile } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { startIdp, type Idp, IdpTokenError } from '../helpers/idp.js'

const run = promisify(execFile)

interface Pem {
  certPem: string
  keyPem: string
  certPath: string
  keyPath: string
}

interface Pki {
  dir: string
  caPem: string
  caPath: string
  server: Pem
  client1: Pem
  client2: Pem
  selfSigned: Pem
  /** Same subject as client1, issued by an unrelated CA. */
  impostor: Pem
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

async function readPem(dir: string, name: string): Promise<Pem> {
  const certPath = join(dir, `${name}.pem`)
  const keyPath = join(dir, `${name}.key`)
  return { certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8'), certPath, keyPath }
}

async function selfSignedCa(dir: string, name: string, subject: string): Promise<void> {
  await openssl(dir, 'req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1',
    '-subj', subject, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
}

async function issue(dir: string, ca: string, name: string, subject: string, ext: string): Promise<Pem> {
  await writeFile(join(dir, `${name}.ext`), ext)
  await openssl(dir, 'req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-CAcreateserial', '-days', '1', '-out', `${name}.pem`, '-extfile', `${name}.ext`)
  return readPem(dir, name)
}

/** Throwaway PKI via the openssl CLI (RDNs in ASN.1 order, so client1 is `CN=client1,O=Example Org` in RFC 4514). */
async function createPki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'certbound-idp-'))
  await selfSignedCa(dir, 'ca', '/CN=certbound test CA')
  await selfSignedCa(dir, 'other-ca', '/CN=unrelated CA')
  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
  const server = await issue(dir, 'ca', 'server', '/CN=localhost',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n'
    + 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  const client1 = await issue(dir, 'ca', 'client1', '/O=Example Org/CN=client1', clientExt)
  const client2 = await issue(dir, 'ca', 'client2', '/O=Example Org/CN=client2', clientExt)
  const impostor = await issue(dir, 'other-ca', 'impostor', '/O=Example Org/CN=client1', clientExt)
  await openssl(dir, 'req', '-x509', ...EC, '-keyout', 'self-signed.key', '-out', 'self-signed.pem', '-days', '1',
    '-subj', '/CN=self-signed-client', '-addext', 'extendedKeyUsage=clientAuth')
  const selfSigned = await readPem(dir, 'self-signed')
  const caPath = join(dir, 'ca.pem')
  return { dir, caPem: await readFile(caPath, 'utf8'), caPath, server, client1, client2, selfSigned, impostor }
}

/** RFC 8705 §3.1: base64url(SHA-256(DER)). */
function x5tS256(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url')
}

let pki: Pki
let idp: Idp
let agent: Agent

async function call(url: string, init: { method?: string; form?: Record<string, string>; basic?: [string, string] } = {}) {
  const headers: Record<string, string> = {}
  if (init.basic) headers.authorization = `Basic ${Buffer.from(init.basic.join(':')).toString('base64')}`
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded'
  const res = await request(url, {
    method: init.method ?? (init.form ? 'POST' : 'GET'),
    dispatcher: agent,
    headers,
    body: init.form ? new URLSearchParams(init.form).toString() : undefined,
  })
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }
}

function introspect(token: string) {
  return call(idp.introspectionEndpoint, { form: { token }, basic: ['introspection-client', 'introspection-secret'] })
}

async function jwks(): Promise<JSONWebKeySet> {
  return (await call(idp.jwksUri)).json as unknown as JSONWebKeySet
}

beforeAll(async function setUp() {
  pki = await createPki()
  agent = new Agent({ connect: { ca: pki.caPem } })
  idp = await startIdp({
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.caPem,
    clients: [
      {
        client_id: 'client1',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: 'CN=client1,O=Example Org',
        scope: 'system-access other-access',
      },
      {
        client_id: 'self-signed',
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        certificatePem: pki.selfSigned.certPem,
        scope: 'system-access',
      },
      { client_id: 'secret-client', token_endpoint_auth_method: 'client_secret_basic', client_secret: 's3cret', scope: 'system-access' },
      { client_id: 'post-client', token_endpoint_auth_method: 'client_secret_post', client_secret: 'p0st', scope: 'system-access' },
    ],
  })
})

afterAll(async function tearDown() {
  await idp?.close()
  await agent?.close()
  if (pki) await rm(pki.dir, { recursive: true, force: true })
})

describe('test/helpers/idp: RFC 8705 §2.1 tls_client_auth, RFC 9068 JWT access token', () => {
  it('issues an ES256 at+jwt whose cnf x5t#S256 is the client certificate thumbprint', async () => {
    const res = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access' })
    expect(res).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'system-access' })

    const header = decodeProtectedHeader(res.access_token)
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256', kid: idp.currentKid })

    const { payload } = await jwtVerify(res.access_token, createLocalJWKSet(await jwks()), {
      issuer: idp.issuer,
      audience: 'https://api.example.test',
      typ: 'at+jwt',
      algorithms: ['ES256'],
    })
    expect(payload).toMatchObject({ client_id: 'client1', sub: 'client1', scope: 'system-access' })
    expect(payload.cnf).toEqual({ 'x5t#S256': x5tS256(pki.client1.certPem) })
    expect(typeof payload.jti).toBe('string')
  })

  it('advertises the endpoints in discovery', async () => {
    const { json } = await call(idp.discoveryEndpoint)
    expect(json).toMatchObject({
      issuer: idp.issuer,
      token_endpoint: idp.tokenEndpoint,
      introspection_endpoint: idp.introspectionEndpoint,
      revocation_endpoint: idp.revocationEndpoint,
      jwks_uri: idp.jwksUri,
      tls_client_certificate_bound_access_tokens: true,
    })
  })

  it('sets aud from an RFC 8707 resource indicator', async () => {
    const res = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, resource: 'https://other.example.test' })
    const { payload } = await jwtVerify(res.access_token, createLocalJWKSet(await jwks()), { audience: 'https://other.example.test' })
    expect(payload.aud).toBe('https://other.example.test')
  })

  it('rejects a scope the client is not registered for (invalid_scope)', async () => {
    await expect(idp.token({ clientId: 'self-signed', certPem: pki.selfSigned.certPem, keyPem: pki.selfSigned.keyPem, scope: 'other-access' }))
      .rejects.toMatchObject({ error: 'invalid_scope', status: 400 })
  })
})

describe('test/helpers/idp: RFC 8705 §2.1 wrong certificate → invalid_client', () => {
  it('rejects a CA-issued certificate with another subject DN', async () => {
    const attempt = idp.token({ clientId: 'client1', certPem: pki.client2.certPem, keyPem: pki.client2.keyPem })
    await expect(attempt).rejects.toBeInstanceOf(IdpTokenError)
    await expect(attempt).rejects.toMatchObject({ status: 401, error: 'invalid_client' })
  })

  it('rejects the right subject DN from an unrelated CA', async () => {
    await expect(idp.token({ clientId: 'client1', certPem: pki.impostor.certPem, keyPem: pki.impostor.keyPem }))
      .rejects.toMatchObject({ error: 'invalid_client' })
  })

  it('rejects no certificate at all', async () => {
    await expect(idp.token({ clientId: 'client1' })).rejects.toMatchObject({ error: 'invalid_client' })
  })

  it('rejects an unregistered certificate for self_signed_tls_client_auth', async () => {
    await expect(idp.token({ clientId: 'self-signed', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem }))
      .rejects.toMatchObject({ error: 'invalid_client' })
  })
})

describe('test/helpers/idp: RFC 8705 §2.2 self_signed_tls_client_auth', () => {
  it('binds the token to the registered self-signed certificate', async () => {
    const res = await idp.token({ clientId: 'self-signed', certPem: pki.selfSigned.certPem, keyPem: pki.selfSigned.keyPem })
    const { payload } = await jwtVerify(res.access_token, createLocalJWKSet(await jwks()))
    expect(payload.cnf).toEqual({ 'x5t#S256': x5tS256(pki.selfSigned.certPem) })
  })
})

describe('test/helpers/idp: RFC 6749 §2.3.1 client secrets', () => {
  it('client_secret_basic gets an unbound token', async () => {
    const res = await idp.token({ clientId: 'secret-client', secret: 's3cret', scope: 'system-access' })
    const { payload } = await jwtVerify(res.access_token, createLocalJWKSet(await jwks()))
    expect(payload).toMatchObject({ client_id: 'secret-client', scope: 'system-access' })
    expect(payload.cnf).toBeUndefined()
  })

  it('client_secret_post gets a token', async () => {
    const res = await idp.token({ clientId: 'post-client', secret: 'p0st' })
    expect(res.token_type).toBe('Bearer')
  })

  it('a wrong secret is invalid_client', async () => {
    await expect(idp.token({ clientId: 'secret-client', secret: 'nope' })).rejects.toMatchObject({ error: 'invalid_client' })
  })
})

describe('test/helpers/idp: RFC 7662 introspection of opaque bound tokens, RFC 7009 revocation', () => {
  it('introspection returns active with cnf x5t#S256', async () => {
    const res = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access', format: 'opaque' })
    expect(res.access_token.split('.')).toHaveLength(1)

    const { status, json } = await introspect(res.access_token)
    expect(status).toBe(200)
    expect(json).toMatchObject({
      active: true,
      client_id: 'client1',
      scope: 'system-access',
      aud: 'https://api.example.test',
      iss: idp.issuer,
      token_type: 'Bearer',
      cnf: { 'x5t#S256': x5tS256(pki.client1.certPem) },
    })
  })

  it('a revoked token introspects as active:false', async () => {
    const res = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, format: 'opaque' })
    expect((await introspect(res.access_token)).json.active).toBe(true)
    await idp.revoke(res.access_token, { clientId: 'introspection-client', secret: 'introspection-secret' })
    expect((await introspect(res.access_token)).json).toEqual({ active: false })
  })

  it('an unknown token introspects as active:false', async () => {
    expect((await introspect('not-a-token')).json).toEqual({ active: false })
  })
})

describe('test/helpers/idp: key rotation (JWKS)', () => {
  it('rotateKeys() publishes a new current kid and keeps the old key; dropOld removes it', async () => {
    const before = await idp.token({ clientId: 'secret-client', secret: 's3cret' })
    const oldKid = idp.currentKid

    await idp.rotateKeys()
    const kids = (await jwks()).keys.map((k) => k.kid)
    expect(idp.currentKid).not.toBe(oldKid)
    expect(kids).toEqual([idp.currentKid, oldKid])

    const after = await idp.token({ clientId: 'secret-client', secret: 's3cret' })
    expect(decodeProtectedHeader(after.access_token).kid).toBe(idp.currentKid)
    await expect(jwtVerify(before.access_token, createLocalJWKSet(await jwks()))).resolves.toBeDefined()

    await idp.rotateKeys({ dropOld: true })
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([idp.currentKid])
    await expect(jwtVerify(after.access_token, createLocalJWKSet(await jwks()))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
  })

  it('opaque tokens survive a rotation (state lives outside the Provider)', async () => {
    const res = await idp.token({ clientId: 'secret-client', secret: 's3cret', format: 'opaque' })
    await idp.rotateKeys()
    expect((await introspect(res.access_token)).json.active).toBe(true)
  })
})

describe('test/helpers/idp: stop() / start()', () => {
  it('refuses connections while stopped and resumes on the same issuer with its state', async () => {
    const issuer = idp.issuer
    const opaque = await idp.token({ clientId: 'secret-client', secret: 's3cret', format: 'opaque' })

    await idp.stop()
    await expect(idp.token({ clientId: 'secret-client', secret: 's3cret' })).rejects.toMatchObject({ code: 'ECONNREFUSED' })

    await idp.start()
    expect(idp.issuer).toBe(issuer)
    const res = await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem })
    const { payload } = await jwtVerify(res.access_token, createLocalJWKSet(await jwks()), { issuer })
    expect(payload.iss).toBe(issuer)
    expect((await introspect(opaque.access_token)).json.active).toBe(true)
  })

  it('records every request', async () => {
    idp.requests.length = 0
    await jwks()
    await jwks()
    expect(idp.requests).toEqual([{ method: 'GET', path: '/jwks' }, { method: 'GET', path: '/jwks' }])
  })
})

describe('test/helpers/idp: the curl seed flow', () => {
  it('curl --cert --key --cacert obtains a bound token', async () => {
    const { stdout } = await run('curl', [
      '--silent', '--show-error', '--fail-with-body',
      '--cert', pki.client1.certPath, '--key', pki.client1.keyPath, '--cacert', pki.caPath,
      '-d', 'grant_type=client_credentials', '-d', 'client_id=client1', '-d', 'scope=system-access',
      idp.tokenEndpoint,
    ])
    const body = JSON.parse(stdout) as { access_token: string; token_type: string }
    expect(body.token_type).toBe('Bearer')
    const { payload } = await jwtVerify(body.access_token, createLocalJWKSet(await jwks()), { issuer: idp.issuer, typ: 'at+jwt' })
    expect(payload.cnf).toEqual({ 'x5t#S256': x5tS256(pki.client1.certPem) })
  })
})
