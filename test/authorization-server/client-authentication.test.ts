import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { issueCert, type IssuedCert } from '../../src/pki/dev-pki.js'
import { hashSecret } from '../../src/authorization-server/index.js'
import { call, decodeJwt, startAuthorizationServer, type Harness } from './harness.js'

const BASIC_SECRET = 'basic-secret-0123456789 +&:%'
const HASHED_SECRET = 'hashed-secret-9876543210'
const POST_SECRET = 'post-secret-abcdefghijklmnop'

let pki: TestPki
let as: Harness
let sanClient: IssuedCert
const issuedTokens: string[] = []

const token = (client_id: string, extra: Record<string, string> = {}) => ({ grant_type: 'client_credentials', client_id, ...extra })

beforeAll(async () => {
  pki = await createTestPki()
  sanClient = await issueCert(pki.ca, {
    kind: 'client',
    subject: 'CN=san-client, O=Example Org',
    dns: ['Billing.Example.com'],
    uris: ['spiffe://example.org/ns/prod/sa/billing'],
    ips: ['10.1.2.3', '2001:db8::1'],
    emails: ['ops@Example.COM'],
  })
  const hash = await hashSecret(HASHED_SECRET)
  const selfSignedB64 = pki.selfSigned.x509.raw.toString('base64')
  writeFileSync(join(pki.dir, 'registered-self-signed.pem'), pki.selfSigned.certPem)
  as = await startAuthorizationServer(pki, origin => ({
    issuer: origin,
    ca_certificates: pki.ca.certFile,
    clients: [
      { client_id: 'pki-dn', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'read write' },
      { client_id: 'pki-dn-loose', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: ' cn = client1 , o=Example Org' },
      { client_id: 'pki-oid', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: '2.5.4.3=client1,OID.2.5.4.10=Example Org' },
      { client_id: 'pki-pattern', token_endpoint_auth_method: 'tls_client_auth', subject_dn_pattern: '.*O=Callista Enterprise AB,.*' },
      { client_id: 'pki-san-dns', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_dns: 'billing.example.com' },
      { client_id: 'pki-san-uri', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_uri: 'spiffe://example.org/ns/prod/sa/billing' },
      { client_id: 'pki-san-ip', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_ip: '2001:0db8:0:0:0:0:0:0001' },
      { client_id: 'pki-san-email', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_san_email: 'ops@example.com' },
      { client_id: 'pki-chained', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=chained,O=Example Org' },
      { client_id: 'pki-expired', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=expired,O=Example Org' },
      { client_id: 'self-signed', token_endpoint_auth_method: 'self_signed_tls_client_auth', certificate: join(pki.dir, 'registered-self-signed.pem') },
      { client_id: 'self-signed-jwks', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ kty: 'EC', x5c: [selfSignedB64] }] } },
      { client_id: 'basic', token_endpoint_auth_method: 'client_secret_basic', client_secret: BASIC_SECRET, scope: 'read' },
      { client_id: 'basic-hashed', token_endpoint_auth_method: 'client_secret_basic', client_secret_hash: hash },
      { client_id: 'post', token_endpoint_auth_method: 'client_secret_post', client_secret: POST_SECRET },
    ],
  }))
})

afterAll(async () => {
  await as?.close()
  pki?.cleanup()
})

async function expectToken (r: Awaited<ReturnType<typeof call>>, clientId: string): Promise<Record<string, unknown>> {
  expect(r.status, r.text).toBe(200)
  expect(r.json.token_type).toBe('Bearer')
  const t = r.json.access_token as string
  issuedTokens.push(t)
  const { payload } = decodeJwt(t)
  expect(payload.client_id).toBe(clientId)
  expect(payload.sub).toBe(clientId)
  return payload
}

function expectInvalidClient (r: Awaited<ReturnType<typeof call>>, basic = false): void {
  expect(r.status, r.text).toBe(401)
  expect(r.json.error).toBe('invalid_client')
  if (basic) expect(r.headers['www-authenticate']).toMatch(/^Basic realm="certbound"/)
  else expect(r.headers['www-authenticate']).toBeUndefined()
  expect(r.headers['cache-control']).toBe('no-store')
}

const post = (form: Record<string, string>, o: Parameters<typeof call>[2] = {}) => call(as.port, '/oauth2/token', { form, ...o })

describe('RFC 8705 §2.1 tls_client_auth: tls_client_auth_subject_dn', () => {
  it('issues a bound token to client1 (certificate chains to ca_certificates, subject DN equal)', async () => {
    const p = await expectToken(await post(token('pki-dn'), { cert: pki.client1 }), 'pki-dn')
    expect(p.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.client1) })
    expect(p.scope).toBe('read write')
  })

  it('compares DNs normalised: attribute types case-insensitive, spaces around separators ignored, OIDs', async () => {
    await expectToken(await post(token('pki-dn-loose'), { cert: pki.client1 }), 'pki-dn-loose')
    await expectToken(await post(token('pki-oid'), { cert: pki.client1 }), 'pki-oid')
  })

  it('refuses a certificate from the right CA with another subject (client2)', async () => {
    expectInvalidClient(await post(token('pki-dn'), { cert: pki.client2 }))
  })

  it('refuses the same subject issued by another CA (the listener let it through: request mode)', async () => {
    expectInvalidClient(await post(token('pki-dn'), { cert: pki.otherClient }))
  })

  it('refuses a request without a client certificate', async () => {
    const r = await post(token('pki-dn'))
    expectInvalidClient(r)
    expect(r.json.error_description).toMatch(/TLS client certificate/)
  })

  it('refuses an expired certificate', async () => {
    expectInvalidClient(await post(token('pki-expired'), { cert: pki.expiredClient }))
  })

  it('builds the path through an intermediate the client sends', async () => {
    await expectToken(await post(token('pki-chained'), { cert: pki.chainClient }), 'pki-chained')
  })

  it('refuses a chained client that does not send its intermediate', async () => {
    expectInvalidClient(await post(token('pki-chained'), { cert: { certPem: pki.chainClient.certPem, keyPem: pki.chainClient.keyPem } }))
  })

  it('refuses a certificate client that sends a secret instead (the registered method rules)', async () => {
    expectInvalidClient(await post(token('pki-dn', { client_secret: 'x' }), { cert: pki.client1 }))
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { cert: pki.client1, basic: ['pki-dn', 'x'] }), true)
  })

  it('logs the reason but does not send it', async () => {
    const r = await post(token('pki-dn'), { cert: pki.otherClient })
    expect(r.json.error_description).toBe('client authentication failed')
    const line = [...as.logs].reverse().find(l => l.outcome === 'refused')!
    expect(String(line.reason)).toMatch(/untrusted/)
  })
})

describe('RFC 8705 §2.1 tls_client_auth: subject_dn_pattern (Keycloak x509.subjectdn)', () => {
  it('matches the whole RFC 4514 subject against the regex', async () => {
    await expectToken(await post(token('pki-pattern'), { cert: pki.callistaClient }), 'pki-pattern')
  })
  it('refuses a subject that does not match', async () => {
    expectInvalidClient(await post(token('pki-pattern'), { cert: pki.client1 }))
  })
})

describe('RFC 8705 §2.1.2 tls_client_auth: subject alternative names', () => {
  for (const id of ['pki-san-dns', 'pki-san-uri', 'pki-san-ip', 'pki-san-email']) {
    it(`${id}: matches the SAN`, async () => {
      await expectToken(await post(token(id), { cert: sanClient }), id)
    })
    it(`${id}: refuses a certificate without it`, async () => {
      expectInvalidClient(await post(token(id), { cert: pki.client1 }))
    })
  }
})

describe('RFC 8705 §2.2 self_signed_tls_client_auth', () => {
  it('accepts the registered certificate (PEM file)', async () => {
    const p = await expectToken(await post(token('self-signed'), { cert: pki.selfSigned }), 'self-signed')
    expect(p.cnf).toEqual({ 'x5t#S256': pki.thumbprint(pki.selfSigned) })
  })
  it('accepts the registered certificate (jwks with x5c)', async () => {
    await expectToken(await post(token('self-signed-jwks'), { cert: pki.selfSigned }), 'self-signed-jwks')
  })
  it('refuses any other certificate, even a CA-issued one', async () => {
    expectInvalidClient(await post(token('self-signed'), { cert: pki.client1 }))
    expectInvalidClient(await post(token('self-signed-jwks'), { cert: pki.client1 }))
  })
  it('refuses a request without a certificate', async () => {
    expectInvalidClient(await post(token('self-signed')))
  })
})

describe('RFC 6749 §2.3.1 client_secret_basic', () => {
  it('issues a token for the right secret (form-urlencoded before base64)', async () => {
    const p = await expectToken(await post({ grant_type: 'client_credentials' }, { basic: ['basic', BASIC_SECRET] }), 'basic')
    expect(p.cnf).toBeUndefined()
  })
  it('refuses a wrong secret with 401 and a Basic challenge', async () => {
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { basic: ['basic', BASIC_SECRET + 'x'] }), true)
  })
  it('refuses an unknown client', async () => {
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { basic: ['nobody', BASIC_SECRET] }), true)
  })
  it('refuses malformed Basic credentials and other schemes', async () => {
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { headers: { authorization: 'Basic !!!' } }), true)
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { headers: { authorization: 'Basic ' + Buffer.from('no-colon').toString('base64') } }), true)
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { headers: { authorization: 'Bearer abc' } }), true)
  })
  it('refuses the secret sent in the body by a client_secret_basic client', async () => {
    expectInvalidClient(await post(token('basic', { client_secret: BASIC_SECRET })))
  })
  it('checks a client_secret_hash (scrypt), also when the verification is cached', async () => {
    await expectToken(await post({ grant_type: 'client_credentials' }, { basic: ['basic-hashed', HASHED_SECRET] }), 'basic-hashed')
    await expectToken(await post({ grant_type: 'client_credentials' }, { basic: ['basic-hashed', HASHED_SECRET] }), 'basic-hashed')
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { basic: ['basic-hashed', HASHED_SECRET.slice(1)] }), true)
  })
  it('refuses a body client_id that differs from the Basic one', async () => {
    const r = await post(token('post'), { basic: ['basic', BASIC_SECRET] })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('invalid_request')
  })
})

describe('RFC 6749 §2.3.1 client_secret_post', () => {
  it('issues a token for the right secret', async () => {
    await expectToken(await post(token('post', { client_secret: POST_SECRET })), 'post')
  })
  it('refuses a wrong secret (401, no challenge: the Authorization header was not used)', async () => {
    expectInvalidClient(await post(token('post', { client_secret: 'nope' })))
  })
  it('refuses Basic for a client_secret_post client', async () => {
    expectInvalidClient(await post({ grant_type: 'client_credentials' }, { basic: ['post', POST_SECRET] }), true)
  })
})

describe('RFC 6749 §2.3: exactly one authentication method', () => {
  it('refuses Basic and client_secret together with invalid_request', async () => {
    const r = await post(token('basic', { client_secret: BASIC_SECRET }), { basic: ['basic', BASIC_SECRET] })
    expect(r.status).toBe(400)
    expect(r.json.error).toBe('invalid_request')
  })
  it('refuses a request with no client authentication at all', async () => {
    expectInvalidClient(await post({ grant_type: 'client_credentials' }))
  })
  it('refuses client assertions (private_key_jwt is not supported)', async () => {
    expectInvalidClient(await post(token('post', { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'a.b.c' })))
  })
})

describe('logging', () => {
  it('logs client_id and outcome, never secrets or tokens', () => {
    const text = JSON.stringify(as.logs)
    expect(issuedTokens.length).toBeGreaterThan(5)
    for (const s of [BASIC_SECRET, HASHED_SECRET, POST_SECRET, ...issuedTokens]) expect(text).not.toContain(s)
    expect(as.logs.some(l => l.outcome === 'issued' && l.client_id === 'pki-dn')).toBe(true)
  })
})

describe('RFC 8705 §2.1 tls_client_auth: allow_partial_chain', () => {
  it('trusts an intermediate listed in ca_certificates without the root', async () => {
    const partial = await startAuthorizationServer(pki, origin => ({
      issuer: origin,
      ca_certificates: [pki.intermediateCa.certFile],
      allow_partial_chain: true,
      clients: [{ client_id: 'chained', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=chained,O=Example Org' }],
    }))
    try {
      const ok = await call(partial.port, '/oauth2/token', { form: token('chained'), cert: { certPem: pki.chainClient.certPem, keyPem: pki.chainClient.keyPem } })
      expect(ok.status, ok.text).toBe(200)
      // client1 is issued by the root, which is not trusted here
      const no = await call(partial.port, '/oauth2/token', { form: token('chained'), cert: pki.client1 })
      expect(no.status).toBe(401)
    } finally {
      await partial.close()
    }
  })
})
