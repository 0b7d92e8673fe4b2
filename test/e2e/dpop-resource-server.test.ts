/**
 * RFC 9449 DPoP at the resource server, through the real gateway: DPoP-bound JWT and opaque tokens from a real
 * authorization server (node-oidc-provider's DPoP feature, test/helpers/idp.ts), proofs made with jose, the clock
 * driven by the test (deps.now), an echo upstream that records whether it was reached. Every RFC 9449 §4.3 check and
 * the FAPI 2.0 DPoP negative cases are one test each, each showing the upstream was never reached (issue 14).
 */
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach, vi } from 'vitest'
import { constants, createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, base64url, type JWK, type CryptoKey } from 'jose'
import { Agent, request } from 'undici'
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { ManualClock } from '../helpers/clock.js'

const AUDIENCE = 'https://api.example.test'
const CLIENT = { clientId: 'dpop-client', secret: 'dpop-s3cret' }
const ALGS = 'algs="ES256 PS256 RS256 EdDSA Ed25519"'

interface Holder { readonly privateKey: CryptoKey, readonly jwk: JWK, readonly jkt: string, readonly alg: string }

let pki: TestPki
let idp: Idp
let upstream: Upstream
let gw: TestGateway
let base: string
const clock = new ManualClock(Date.now())
let holder: Holder
/** A DPoP-bound JWT access token (cnf.jkt = holder.jkt) from oidc-provider. */
let token: string
/** The same, opaque (introspected; the introspection answer carries cnf.jkt and token_type DPoP). */
let opaque: string

async function newHolder (alg = 'ES256', opts: Parameters<typeof generateKeyPair>[1] = {}): Promise<Holder> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...opts })
  const jwk = await exportJWK(publicKey)
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk), alg }
}

interface ProofOptions {
  htm?: string
  htu?: string
  iat?: number
  jti?: string
  /** The token the proof is for (ath); null: no ath. */
  ath?: string | null
  nonce?: string
  typ?: string
  alg?: string
  jwk?: Record<string, unknown>
  key?: Holder
  /** Sign with this key instead of the holder's (a signature that does not verify with the jwk). */
  signer?: CryptoKey
  omit?: ReadonlyArray<'jti' | 'iat' | 'htm' | 'htu'>
}

/** A DPoP proof (RFC 9449 §4.2) made with jose. */
async function proof (path: string, o: ProofOptions = {}): Promise<string> {
  const k = o.key ?? holder
  const claims: Record<string, unknown> = {
    jti: o.jti ?? randomBytes(12).toString('base64url'),
    htm: o.htm ?? 'GET',
    htu: o.htu ?? base + path,
    iat: o.iat ?? Math.floor(clock.now() / 1000),
  }
  const ath = o.ath === undefined ? token : o.ath
  if (ath !== null) claims.ath = createHash('sha256').update(ath).digest('base64url')
  if (o.nonce !== undefined) claims.nonce = o.nonce
  for (const m of o.omit ?? []) delete claims[m]
  return new SignJWT(claims)
    .setProtectedHeader({ typ: o.typ ?? 'dpop+jwt', alg: o.alg ?? k.alg, jwk: (o.jwk ?? k.jwk) as JWK })
    .sign(o.signer ?? k.privateKey)
}

/** An unsigned (alg none) or HMAC-signed JWT, which jose refuses to make with SignJWT's asymmetric path. */
function rawJwt (header: Record<string, unknown>, claims: Record<string, unknown>, sign: (input: string) => string): string {
  const input = base64url.encode(JSON.stringify(header)) + '.' + base64url.encode(JSON.stringify(claims))
  return input + '.' + sign(input)
}

interface Res { status: number, headers: Record<string, string>, body: string }

/** One request with raw headers (duplicates allowed), in order. */
async function send (path: string, headers: string[], method = 'GET'): Promise<Res> {
  const r = await request(base + path, { method, headers })
  const body = await r.body.text()
  const h: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) h[k] = Array.isArray(v) ? v.join(', ') : String(v)
  return { status: r.statusCode, headers: h, body }
}

function dpopAuth (t = token): string[] { return ['authorization', `DPoP ${t}`] }

async function accessLog (r: Res): Promise<LogLine> {
  return vi.waitFor(() => {
    const line = gw.logs.find(l => l.msg === 'request' && l.req_id === r.headers['x-request-id'])
    if (line === undefined) throw new Error('no access log line yet')
    return line
  })
}

let reached = 0
beforeEach(() => { reached = upstream.requests.length })
/** The answer, its error code in the access log, and that the upstream never saw the request. */
async function refused (r: Res, status: number, code: string, challenge?: RegExp): Promise<void> {
  expect(r.status).toBe(status)
  expect((await accessLog(r)).err).toBe(code)
  if (challenge !== undefined) expect(r.headers['www-authenticate']).toMatch(challenge)
  expect(upstream.requests.length).toBe(reached)
}

const INVALID_PROOF = /^Bearer realm="certbound", DPoP realm="certbound", error="invalid_dpop_proof", error_description="The DPoP proof is invalid", algs="ES256 PS256 RS256 EdDSA Ed25519"$/
const INVALID_TOKEN_DPOP = /DPoP realm="certbound", error="invalid_token", error_description="The access token is invalid", algs="ES256 PS256 RS256 EdDSA Ed25519"$/

beforeAll(async () => {
  pki = await createTestPki()
  ;[idp, upstream] = await Promise.all([
    startIdp({
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      clientCaPem: pki.ca.certPem,
      audience: AUDIENCE,
      // tests move the gateway's clock forward (windows, nonce ages); tokens outlive a slow run on a loaded machine
      accessTokenTtl: 3600,
      clients: [
        { client_id: CLIENT.clientId, token_endpoint_auth_method: 'client_secret_basic', client_secret: CLIENT.secret, scope: 'system-access' },
        { client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access' },
      ],
    }),
    startUpstream(),
  ])
  const oidc = (extra: string): string => `          - name: openid-connect
            config:
              issuer: ${idp.issuer}
              audience_required: [${AUDIENCE}]
${extra.split('\n').filter(l => l.trim() !== '').map(l => `              ${l.trim()}`).join('\n')}`
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: none         # proof_of_possession_mtls makes it request one
  trusted_certificates: ${pki.ca.certFile}
services:
  - name: echo
    url: ${upstream.url}
    routes:
      - name: dpop
        paths: [/dpop]
        plugins:
${oidc('proof_of_possession_dpop: optional')}
      - name: strict
        paths: [/strict]
        plugins:
${oidc('proof_of_possession_dpop: strict')}
      - name: nonce
        paths: [/nonce]
        plugins:
${oidc('proof_of_possession_dpop: strict\ndpop_use_nonce: true\ndpop_proof_lifetime: 60')}
      - name: fapi
        paths: [/fapi]
        plugins:
${oidc('proof_of_possession_dpop: strict\ndpop_algorithms: [PS256, ES256, EdDSA]')}
      - name: proxied
        paths: [/proxied]
        plugins:
${oidc('proof_of_possession_dpop: optional\ntrusted_ips: [127.0.0.1]')}
      - name: both
        paths: [/both]
        plugins:
${oidc('proof_of_possession_mtls: optional\nproof_of_possession_dpop: optional')}
      - name: off
        paths: [/off]
        plugins:
${oidc('proof_of_possession_mtls: optional')}
      - name: introspected
        paths: [/ti]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.introspectionEndpoint}
              client_id: introspection-client
              client_secret: introspection-secret
              proof_of_possession_dpop: optional
`, { now: clock.now })
  base = gw.url()
  holder = await newHolder()
  const tokenProof = (): Promise<string> => new SignJWT({ jti: randomBytes(8).toString('hex'), htm: 'POST', htu: idp.tokenEndpoint, iat: Math.floor(Date.now() / 1000) })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: holder.jwk }).sign(holder.privateKey)
  const t = await idp.token({ clientId: CLIENT.clientId, secret: CLIENT.secret, dpop: await tokenProof() })
  expect(t.token_type).toBe('DPoP')
  token = t.access_token
  opaque = (await idp.token({ clientId: CLIENT.clientId, secret: CLIENT.secret, dpop: await tokenProof(), format: 'opaque' })).access_token
}, 60_000)

afterAll(async () => {
  await gw?.close()
  await Promise.all([idp?.close(), upstream?.close()])
})

describe('RFC 9449 §7: a DPoP-bound token from oidc-provider with a valid proof', () => {
  it('passes; the upstream gets x-credential-token-type: DPoP and never the DPoP header', async () => {
    const r = await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop')])
    expect(r.status).toBe(200)
    const seen = upstream.requests[upstream.requests.length - 1]
    expect(seen.headers.dpop).toBeUndefined()
    expect(seen.headers['x-credential-token-type']).toBe('DPoP')
    expect(seen.headers['x-credential-client-id']).toBe(CLIENT.clientId)
    expect(seen.headers.authorization).toBe(`DPoP ${token}`)
  })

  it('the scheme name is case-insensitive (RFC 9110 §11.1)', async () => {
    expect((await send('/dpop', ['authorization', `dpop ${token}`, 'dpop', await proof('/dpop')])).status).toBe(200)
    expect((await send('/dpop', ['authorization', `DPOP ${token}`, 'dpop', await proof('/dpop')])).status).toBe(200)
  })

  it('an opaque DPoP-bound token, introspected (cnf.jkt, token_type DPoP), passes token-introspection', async () => {
    const r = await send('/ti', [...dpopAuth(opaque), 'dpop', await proof('/ti', { ath: opaque })])
    expect(r.status).toBe(200)
    const seen = upstream.requests[upstream.requests.length - 1]
    expect(seen.headers['x-credential-token-type']).toBe('DPoP')
    expect(seen.headers.dpop).toBeUndefined()
  })

  it('token-introspection: an opaque DPoP-bound token with a proof of another key is refused', async () => {
    const other = await newHolder()
    const r = await send('/ti', [...dpopAuth(opaque), 'dpop', await proof('/ti', { ath: opaque, key: other })])
    await refused(r, 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', INVALID_TOKEN_DPOP)
  })

  it('proofs signed with PS256, RS256 and EdDSA are accepted by default (for a token bound to that key)', async () => {
    for (const alg of ['PS256', 'RS256', 'EdDSA']) {
      const k = await newHolder(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {})
      const p = await new SignJWT({ jti: randomBytes(8).toString('hex'), htm: 'POST', htu: idp.tokenEndpoint, iat: Math.floor(Date.now() / 1000) })
        .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk: k.jwk }).sign(k.privateKey)
      const t = (await idp.token({ clientId: CLIENT.clientId, secret: CLIENT.secret, dpop: p })).access_token
      const r = await send('/dpop', [...dpopAuth(t), 'dpop', await proof('/dpop', { key: k, ath: t })])
      expect(r.status, alg).toBe(200)
    }
  })
})

describe('RFC 9449 §4.3 checks (each refused before the upstream)', () => {
  it('step 1: two DPoP headers → 400 invalid_request', async () => {
    const r = await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop'), 'dpop', await proof('/dpop')])
    await refused(r, 400, 'CB_ERR_DPOP_PROOF_MULTIPLE', /DPoP realm="certbound", error="invalid_request"/)
  })

  it('step 1: no DPoP header with the DPoP scheme → 401 invalid_dpop_proof', async () => {
    await refused(await send('/dpop', dpopAuth()), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 2: a DPoP header that is not a JWT', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', 'not-a-jwt']), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 3: a proof without jti', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { omit: ['jti'] })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 3: a proof without iat', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { omit: ['iat'] })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 4: typ other than dpop+jwt', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { typ: 'JWT' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 5: alg none', async () => {
    const p = rawJwt({ typ: 'dpop+jwt', alg: 'none', jwk: holder.jwk }, { jti: 'n1', htm: 'GET', htu: base + '/dpop', iat: Math.floor(clock.now() / 1000) }, () => '')
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', p]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 5: a MAC algorithm (HS256)', async () => {
    const secret = randomBytes(32)
    const p = rawJwt({ typ: 'dpop+jwt', alg: 'HS256', jwk: holder.jwk }, { jti: 'h1', htm: 'GET', htu: base + '/dpop', iat: Math.floor(clock.now() / 1000) },
      input => createHash('sha256').update(secret).update(input).digest('base64url'))
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', p]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 5: an asymmetric algorithm not on the route\'s list (ES384)', async () => {
    const k = await newHolder('ES384')
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { key: k })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 6: a signature that does not verify with the jwk', async () => {
    const other = await newHolder()
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { signer: other.privateKey })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 7: a jwk with a private member (d)', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const priv = privateKey.export({ format: 'jwk' }) as Record<string, unknown>
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { jwk: priv })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 8: htm is not the request method', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { htm: 'POST' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 9: htu names another path', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { htu: base + '/other' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 9: htu names another host', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { htu: base.replace('127.0.0.1', 'api.example.test') + '/dpop' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 9: htu with another scheme (https for an http request)', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { htu: base.replace('http:', 'https:') + '/dpop' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 11: iat older than dpop_proof_lifetime (300 s)', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: Math.floor(clock.now() / 1000) - 301 })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 11: iat too far in the future', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: Math.floor(clock.now() / 1000) + 60 })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 11: jti replayed → refused (the shared store remembers it)', async () => {
    const p = await proof('/dpop')
    expect((await send('/dpop', [...dpopAuth(), 'dpop', p])).status).toBe(200)
    reached = upstream.requests.length
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', p]), 401, 'CB_ERR_DPOP_REPLAY', INVALID_PROOF)
  })

  it('step 12: no ath', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { ath: null })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('step 12: ath of another token', async () => {
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { ath: 'another-token' })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', INVALID_PROOF)
  })

  it('jkt: a valid proof by a key the token is not bound to → invalid_token', async () => {
    const other = await newHolder()
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { key: other })]), 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', INVALID_TOKEN_DPOP)
  })

  it('a tampered token (signature broken) with a proof for it → invalid_token', async () => {
    const bad = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    await refused(await send('/dpop', [...dpopAuth(bad), 'dpop', await proof('/dpop', { ath: bad })]), 401, 'CB_ERR_TOKEN_INVALID', INVALID_TOKEN_DPOP)
  })
})

describe('FAPI 2.0 Security Profile §5.3.1.2 / §5.4: DPoP negative cases', () => {
  it('a DPoP-bound token sent as Bearer is refused (no downgrade, RFC 9449 §7.2)', async () => {
    const r = await send('/dpop', ['authorization', `Bearer ${token}`, 'dpop', await proof('/dpop')])
    await refused(r, 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', /^Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid", DPoP realm="certbound", algs="ES256 PS256 RS256 EdDSA Ed25519"$/)
  })

  it('strict: a Bearer token is refused with a DPoP challenge only', async () => {
    const r = await send('/strict', ['authorization', `Bearer ${token}`])
    await refused(r, 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', new RegExp(`^DPoP realm="certbound", error="invalid_token", error_description="The access token is invalid", ${ALGS}$`))
  })

  it('RS256 proofs are refused where the route follows FAPI 2.0 (PS256, ES256, EdDSA)', async () => {
    const k = await newHolder('RS256')
    await refused(await send('/fapi', [...dpopAuth(), 'dpop', await proof('/fapi', { key: k })]), 401, 'CB_ERR_DPOP_PROOF_INVALID', /algs="PS256 ES256 EdDSA"/)
  })

  it('an RSA proof key shorter than 2048 bits is refused', async () => {
    // jose will not sign with a 1024-bit key: sign with node:crypto (RSASSA-PSS, SHA-256, 32-byte salt: PS256)
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const jwk = publicKey.export({ format: 'jwk' })
    const p = rawJwt({ typ: 'dpop+jwt', alg: 'PS256', jwk }, { jti: 'short-rsa', htm: 'GET', htu: base + '/fapi', iat: Math.floor(clock.now() / 1000), ath: createHash('sha256').update(token).digest('base64url') },
      input => sign('sha256', Buffer.from(input), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString('base64url'))
    await refused(await send('/fapi', [...dpopAuth(), 'dpop', p]), 401, 'CB_ERR_DPOP_PROOF_INVALID')
  })

  it('two Authorization headers → 400 invalid_request', async () => {
    await refused(await send('/dpop', [...dpopAuth(), ...dpopAuth(), 'dpop', await proof('/dpop')]), 400, 'CB_ERR_TOKEN_MULTIPLE', /invalid_request/)
  })

  it('both schemes in one Authorization header → 400 invalid_request', async () => {
    await refused(await send('/dpop', ['authorization', `Bearer ${token}, DPoP ${token}`, 'dpop', await proof('/dpop')]), 400, 'CB_ERR_TOKEN_MULTIPLE', /invalid_request/)
  })

  it('an unbound token sent with the DPoP scheme → invalid_token', async () => {
    const t = (await idp.token({ clientId: CLIENT.clientId, secret: CLIENT.secret })).access_token
    await refused(await send('/dpop', [...dpopAuth(t), 'dpop', await proof('/dpop', { ath: t })]), 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', INVALID_TOKEN_DPOP)
  })

  it('a DPoP-bound token on a route with DPoP off (mTLS binding on) is refused, not treated as unbound', async () => {
    await refused(await send('/off', ['authorization', `Bearer ${token}`]), 401, 'CB_ERR_TOKEN_BINDING_MISMATCH', /^Bearer realm="certbound", error="invalid_token"/)
  })

  it('no token: 401 with both challenges and no error', async () => {
    const r = await send('/dpop', [])
    await refused(r, 401, 'CB_ERR_TOKEN_MISSING', new RegExp(`^Bearer realm="certbound", DPoP realm="certbound", ${ALGS}$`))
  })
})

describe('RFC 9449 §11.1: clock skew at the window\'s edges (driven by the clock, not sleeps)', () => {
  it('iat exactly dpop_proof_lifetime old passes; one second older is refused', async () => {
    const now = Math.floor(clock.now() / 1000)
    clock.set(now * 1000)
    expect((await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: now - 300 })])).status).toBe(200)
    reached = upstream.requests.length
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: now - 301 })]), 401, 'CB_ERR_DPOP_PROOF_INVALID')
  })

  it('iat 5 s ahead (the tolerated skew) passes; 6 s ahead is refused', async () => {
    const now = Math.floor(clock.now() / 1000)
    clock.set(now * 1000)
    expect((await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: now + 5 })])).status).toBe(200)
    reached = upstream.requests.length
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', await proof('/dpop', { iat: now + 6 })]), 401, 'CB_ERR_DPOP_PROOF_INVALID')
  })

  it('a proof accepted now is refused once the clock has moved past its window', async () => {
    const now = Math.floor(clock.now() / 1000)
    const p = await proof('/dpop', { iat: now })
    clock.advance(301_000)
    await refused(await send('/dpop', [...dpopAuth(), 'dpop', p]), 401, 'CB_ERR_DPOP_PROOF_INVALID')
    clock.set(now * 1000)
  })
})

describe('RFC 9449 §9: resource server nonces (dpop_use_nonce)', () => {
  // each test moves the clock; put it back so later tests see the real time again
  let start = 0
  beforeEach(() => { start = clock.now() })
  afterEach(() => { clock.set(start) })

  it('no nonce → 401 use_dpop_nonce with DPoP-Nonce; the retry with it passes; an old nonce gets a new one', async () => {
    const first = await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce')])
    await refused(first, 401, 'CB_ERR_DPOP_NONCE_REQUIRED', /^DPoP realm="certbound", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256 PS256 RS256 EdDSA Ed25519"$/)
    const nonce = first.headers['dpop-nonce']
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect((await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce })])).status).toBe(200)
    // the nonce's age counts against dpop_proof_lifetime (60 s here)
    clock.advance(61_000)
    reached = upstream.requests.length
    const stale = await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce })])
    await refused(stale, 401, 'CB_ERR_DPOP_NONCE_REQUIRED', /use_dpop_nonce/)
    expect(stale.headers['dpop-nonce']).not.toBe(nonce)
    expect((await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce: stale.headers['dpop-nonce'] })])).status).toBe(200)
  })

  it('past half its lifetime, a successful response carries the next nonce (RFC 9449 §9), which then works', async () => {
    const first = await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce')])
    const nonce = first.headers['dpop-nonce']
    const young = await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce })])
    expect(young.status).toBe(200)
    expect(young.headers['dpop-nonce']).toBeUndefined()
    clock.advance(31_000) // dpop_proof_lifetime 60 s on this route
    const old = await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce })])
    expect(old.status).toBe(200)
    const next = old.headers['dpop-nonce']
    expect(next).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(next).not.toBe(nonce)
    clock.advance(30_000) // the first nonce is now 61 s old, the next one 30 s
    expect((await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce })])).status).toBe(401)
    expect((await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce: next })])).status).toBe(200)
  })

  it('a forged nonce → use_dpop_nonce', async () => {
    const forged = randomBytes(24).toString('base64url')
    await refused(await send('/nonce', [...dpopAuth(), 'dpop', await proof('/nonce', { nonce: forged })]), 401, 'CB_ERR_DPOP_NONCE_REQUIRED')
  })
})

describe('RFC 9449 §4.3 step 9: htu normalisation and the external view', () => {
  it('scheme and host case, query and fragment are ignored', async () => {
    const htu = base.replace('http://', 'HTTP://') + '/dpop?x=1#frag'
    expect((await send('/dpop?x=1', [...dpopAuth(), 'dpop', await proof('/dpop', { htu })])).status).toBe(200)
  })

  it('percent-encoded unreserved characters and dot segments are normalised (RFC 3986 §6.2.2)', async () => {
    expect((await send('/dpop/~a', [...dpopAuth(), 'dpop', await proof('', { htu: base + '/dpop/%7Ea' })])).status).toBe(200)
    expect((await send('/dpop/b', [...dpopAuth(), 'dpop', await proof('', { htu: base + '/dpop/x/../b' })])).status).toBe(200)
  })

  it('behind a trusted proxy, the client\'s URI comes from X-Forwarded-Proto/-Host (default port removed, RFC 3986 §6.2.3)', async () => {
    const r = await send('/proxied', [...dpopAuth(), 'x-forwarded-proto', 'https', 'x-forwarded-host', 'API.example.test', 'x-forwarded-port', '443',
      'dpop', await proof('', { htu: 'https://api.example.test:443/proxied' })])
    expect(r.status).toBe(200)
  })

  it('from an untrusted peer, X-Forwarded-Host does not choose the URI a proof is checked against', async () => {
    const r = await send('/dpop', [...dpopAuth(), 'x-forwarded-proto', 'https', 'x-forwarded-host', 'api.example.test',
      'dpop', await proof('', { htu: 'https://api.example.test/dpop' })])
    await refused(r, 401, 'CB_ERR_DPOP_PROOF_INVALID')
  })
})

describe('certificate binding and DPoP on one route (each cnf member needs its own proof)', () => {
  async function sendTls (path: string, headers: string[], cert?: { certPem: string, keyPem: string }): Promise<Res> {
    const dispatcher = new Agent({ connect: { ca: pki.ca.certPem, cert: cert?.certPem, key: cert?.keyPem, servername: 'localhost' } })
    try {
      const r = await request(gw.url(1).replace('127.0.0.1', 'localhost') + path, { headers, dispatcher })
      const body = await r.body.text()
      const h: Record<string, string> = {}
      for (const [k, v] of Object.entries(r.headers)) h[k] = Array.isArray(v) ? v.join(', ') : String(v)
      return { status: r.statusCode, headers: h, body }
    } finally { await dispatcher.close() }
  }
  const tlsBase = (): string => gw.url(1).replace('127.0.0.1', 'localhost')

  it('a certificate-bound token passes on its certificate and is refused on another; a DPoP token passes with its proof over the same TLS route', async () => {
    const certToken = (await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem })).access_token
    expect((await sendTls('/both', ['authorization', `Bearer ${certToken}`], pki.client1)).status).toBe(200)
    const wrong = await sendTls('/both', ['authorization', `Bearer ${certToken}`], pki.client2)
    expect(wrong.status).toBe(401)
    expect((await accessLog(wrong)).err).toBe('CB_ERR_TOKEN_BINDING_MISMATCH')
    const p = await proof('', { htu: tlsBase() + '/both' })
    expect((await sendTls('/both', [...dpopAuth(), 'dpop', p])).status).toBe(200)
    // a DPoP-bound token as Bearer, even with a client certificate, is not accepted
    const downgrade = await sendTls('/both', ['authorization', `Bearer ${token}`], pki.client1)
    expect(downgrade.status).toBe(401)
    expect(downgrade.headers['www-authenticate']).toMatch(/^Bearer realm="certbound", error="invalid_token".*, DPoP realm="certbound", algs=/)
  })
})
