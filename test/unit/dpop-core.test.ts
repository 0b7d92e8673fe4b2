/**
 * The credential core's pure parts: htu normalisation (RFC 3986 §6.2.2/§6.2.3), stateless nonces shared through the
 * store (any node accepts any node's nonce), token extraction by scheme, cnf parsing, and the challenges built from
 * a route's schemes.
 */
import { describe, it, expect } from 'vitest'
import { normaliseHtu } from '../../src/auth/dpop/htu.js'
import { NonceService } from '../../src/auth/dpop/nonce.js'
import { extractToken } from '../../src/auth/token-extraction.js'
import { parseCnf } from '../../src/auth/cnf.js'
import { Challenger } from '../../src/auth/challenge.js'
import { jwkThumbprint } from '../../src/auth/dpop/proof.js'
import { formEncode } from '../../src/auth/form-encode.js'
import { MemoryStore } from '../../src/store/memory.js'
import { ManualClock } from '../helpers/clock.js'
import { makeCtx } from '../plugins/openid-connect/harness.js'
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose'

describe('RFC 9449 §4.3 step 9: htu normalisation', () => {
  it.each([
    ['HTTPS://API.Example.COM/a', 'https://api.example.com/a'],
    ['https://api.example.com:443/a', 'https://api.example.com/a'],
    ['http://api.example.com:80/a', 'http://api.example.com/a'],
    ['https://api.example.com:8443/a', 'https://api.example.com:8443/a'],
    ['https://api.example.com', 'https://api.example.com/'],
    ['https://api.example.com/a?q=1#f', 'https://api.example.com/a'],
    ['https://api.example.com/%7euser/%2f', 'https://api.example.com/~user/%2F'],
    ['https://api.example.com/a/./b/../c', 'https://api.example.com/a/c'],
  ])('%s → %s', (input, want) => {
    expect(normaliseHtu(input)).toBe(want)
  })

  it.each(['/relative', 'ftp://x/y', 'https://user:pw@api.example.com/', 'not a uri'])('%s is not an htu', (input) => {
    expect(normaliseHtu(input)).toBeUndefined()
  })
})

describe('RFC 9449 §9: stateless nonces, the key shared through the store', () => {
  it('a nonce issued by one node is accepted by another sharing the store; its age follows the clock', async () => {
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const store = new MemoryStore({ now: clock.now })
    const a = new NonceService(store, clock.now, 'rs')
    const b = new NonceService(store, clock.now, 'rs')
    const n = await a.issue()
    expect(await b.age(n)).toBe(0)
    clock.advance(42_000)
    expect(await b.age(n)).toBe(42_000)
    expect(await new NonceService(store, clock.now, 'as').age(n)).toBeUndefined() // another purpose
    expect(await b.age(n.slice(0, -1) + (n.endsWith('A') ? 'B' : 'A'))).toBeUndefined()
    expect(await new NonceService(new MemoryStore({ now: clock.now }), clock.now, 'rs').age(n)).toBeUndefined() // another key
  })
})

describe('token extraction by scheme', () => {
  const opts = { bearer: true, dpop: true }
  it('Bearer and DPoP, case-insensitive', () => {
    expect(extractToken(makeCtx({ headers: [['Authorization', 'bearer abc']] }), opts)).toEqual({ scheme: 'bearer', token: 'abc' })
    expect(extractToken(makeCtx({ headers: [['Authorization', 'DPOP abc']] }), opts)).toEqual({ scheme: 'dpop', token: 'abc' })
  })
  it('DPoP is not a scheme on a Bearer-only route; Bearer is not one on a DPoP-strict route', () => {
    expect(() => extractToken(makeCtx({ headers: [['Authorization', 'DPoP abc']] }), { bearer: true, dpop: false })).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_MISSING' }))
    expect(() => extractToken(makeCtx({ headers: [['Authorization', 'Bearer abc']] }), { bearer: false, dpop: true })).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_BINDING_MISMATCH' }))
  })
  it('two Authorization headers, or both schemes in one → 400 invalid_request', () => {
    expect(() => extractToken(makeCtx({ headers: [['Authorization', 'DPoP a'], ['Authorization', 'DPoP a']] }), opts)).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_MULTIPLE', status: 400 }))
    expect(() => extractToken(makeCtx({ headers: [['Authorization', 'Bearer a, DPoP b']] }), opts)).toThrow(expect.objectContaining({ code: 'CB_ERR_TOKEN_MULTIPLE' }))
  })
})

describe('cnf (RFC 7800) parsing', () => {
  const t = 'A'.repeat(43)
  it('x5t#S256 and jkt, unknown members kept by name, malformed → null', () => {
    expect(parseCnf({})).toBeUndefined()
    expect(parseCnf({ cnf: { 'x5t#S256': t } })).toEqual({ 'x5t#S256': t })
    expect(parseCnf({ cnf: { jkt: t } })).toEqual({ jkt: t })
    expect(parseCnf({ cnf: { jwk: {} } })).toEqual({ unsupported: ['jwk'] })
    expect(parseCnf({ cnf: { jkt: 'short' } })).toBeNull()
    expect(parseCnf({ cnf: 'x' })).toBeNull()
  })
})

describe('challenges from the schemes a route accepts (RFC 6750 §3, RFC 9449 §7.1)', () => {
  it('Bearer and DPoP with algs; the error on the scheme used', () => {
    const c = new Challenger({ bearer: true, dpopAlgs: ['ES256', 'EdDSA'] })
    expect(c.header({}, undefined)).toBe('Bearer realm="certbound", DPoP realm="certbound", algs="ES256 EdDSA"')
    expect(c.header({ error: 'invalid_token' }, 'dpop')).toBe('Bearer realm="certbound", DPoP realm="certbound", error="invalid_token", algs="ES256 EdDSA"')
    expect(c.header({ error: 'invalid_token' }, 'bearer')).toBe('Bearer realm="certbound", error="invalid_token", DPoP realm="certbound", algs="ES256 EdDSA"')
  })
})

describe('RFC 7638 thumbprints and the one form encoder', () => {
  it('jwkThumbprint equals jose\'s calculateJwkThumbprint', async () => {
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      const { publicKey } = await generateKeyPair(alg, { extractable: true })
      const jwk = await exportJWK(publicKey)
      expect(jwkThumbprint(jwk as Record<string, unknown>)).toBe(await calculateJwkThumbprint(jwk))
    }
  })
  it('formEncode is application/x-www-form-urlencoded (RFC 6749 Appendix B)', () => {
    expect(formEncode('a b+c/d=é')).toBe('a+b%2Bc%2Fd%3D%C3%A9')
  })
})

describe('the shared store fails: the replay check fails closed (503, not the client\'s fault)', () => {
  it('setIfAbsent rejects → 503; a working store accepts the same proof once', async () => {
    const { DpopVerifier } = await import('../../src/auth/dpop/proof.js')
    const { CidrSet } = await import('../../src/net/cidr.js')
    const { SignJWT } = await import('jose')
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const good = new MemoryStore({ now: clock.now })
    const broken = Object.assign(Object.create(good) as MemoryStore, { setIfAbsent: () => Promise.reject(new Error('connection refused')) })
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
    const proof = await new SignJWT({ jti: 'j1', htm: 'GET', htu: 'https://api.example.test/x', iat: Math.floor(clock.now() / 1000) })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(publicKey) }).sign(privateKey)
    const ctx = () => makeCtx({ path: '/x', headers: [['Host', 'api.example.test'], ['DPoP', proof]] })
    const policy = { algorithms: ['ES256'], proofLifetimeS: 300, futureSkewS: 5, nonces: undefined, trustedProxies: new CidrSet([]), now: clock.now }
    await expect(new DpopVerifier({ ...policy, store: broken }).verify(ctx(), {})).rejects.toMatchObject({ status: 503 })
    const ok = new DpopVerifier({ ...policy, store: good })
    await expect(ok.verify(ctx(), {})).resolves.toMatchObject({ jti: 'j1' })
    await expect(ok.verify(ctx(), {})).rejects.toMatchObject({ code: 'CB_ERR_DPOP_REPLAY' })
  })
})

describe('a full memory store keeps the replay check sound (gateway.store.max_keys)', () => {
  it('a proof whose jti marker was evicted for room is still refused; fresh proofs pass', async () => {
    const { DpopVerifier } = await import('../../src/auth/dpop/proof.js')
    const { CidrSet } = await import('../../src/net/cidr.js')
    const { generateKeyPairSync, sign } = await import('node:crypto')
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const store = new MemoryStore({ now: clock.now, maxKeys: 1000 })
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const head = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: k.publicKey.export({ format: 'jwk' }) })).toString('base64url')
    const proofAt = (jti: string): string => {
      const input = head + '.' + Buffer.from(JSON.stringify({ jti, htm: 'GET', htu: 'https://a.test/x', iat: Math.floor(clock.now() / 1000) })).toString('base64url')
      return input + '.' + sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    }
    const v = new DpopVerifier({ algorithms: ['ES256'], proofLifetimeS: 300, futureSkewS: 5, nonces: undefined, trustedProxies: new CidrSet([]), store, now: clock.now })
    const send = (proof: string) => v.verify(makeCtx({ path: '/x', headers: [['Host', 'a.test'], ['DPoP', proof]] }), {}).then(() => 'ok', (e: { code?: string }) => e.code)
    const { createHash } = await import('node:crypto')
    const jkt = jwkThumbprint(k.publicKey.export({ format: 'jwk' }) as Record<string, unknown>) as string
    const marker = 'dpop:jti:' + createHash('sha256').update(jkt).update('\0').update('first').digest('base64url')
    const first = proofAt('first')
    expect(await send(first)).toBe('ok')
    expect(await store.get(marker)).toBe('1')
    // 3000 proofs over 30 s (100 per second, three times what 1000 keys hold for 300 s proofs): the first marker goes
    for (let i = 0; i < 3000; i++) {
      expect(await send(proofAt(`p${i}`))).toBe('ok')
      if (i % 100 === 99) clock.advance(1000)
    }
    expect(store.status().evictions).toBeGreaterThan(0)
    expect(await store.get(marker)).toBeUndefined() // evicted
    expect(await send(first)).toBe('CB_ERR_DPOP_REPLAY')
    expect(await send(proofAt('fresh'))).toBe('ok')
  })
})

describe('RFC 9449 §4.3 steps 4–7 on hostile headers', () => {
  async function verifyWith (header: Record<string, unknown>, signWith: 'p256' | 'p384' = 'p256'): Promise<unknown> {
    const { DpopVerifier } = await import('../../src/auth/dpop/proof.js')
    const { CidrSet } = await import('../../src/net/cidr.js')
    const { generateKeyPairSync, sign } = await import('node:crypto')
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const k = generateKeyPairSync('ec', { namedCurve: signWith === 'p256' ? 'P-256' : 'P-384' })
    const h = { typ: 'dpop+jwt', alg: 'ES256', jwk: k.publicKey.export({ format: 'jwk' }), ...header }
    const input = Buffer.from(JSON.stringify(h)).toString('base64url') + '.' + Buffer.from(JSON.stringify({ jti: 'x', htm: 'GET', htu: 'https://a.test/x', iat: clock.now() / 1000 })).toString('base64url')
    const proof = input + '.' + sign(signWith === 'p256' ? 'sha256' : 'sha384', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    const v = new DpopVerifier({ algorithms: ['ES256', 'ES384'], proofLifetimeS: 300, futureSkewS: 5, nonces: undefined, trustedProxies: new CidrSet([]), store: new MemoryStore({ now: clock.now }), now: clock.now })
    return v.verify(makeCtx({ path: '/x', headers: [['Host', 'a.test'], ['DPoP', proof]] }), {}).then(() => 'ok', (e: unknown) => e)
  }
  it('a well-formed proof passes (the baseline of the cases below)', async () => {
    expect(await verifyWith({})).toBe('ok')
  })
  it('crit header parameters → invalid_dpop_proof (RFC 7515 §4.1.11)', async () => {
    expect(await verifyWith({ crit: ['exp'], exp: 1 })).toMatchObject({ code: 'CB_ERR_DPOP_PROOF_INVALID', detail: expect.stringMatching(/crit/) })
  })
  it('alg ES256 with a P-384 key (cross-algorithm use) → invalid_dpop_proof', async () => {
    expect(await verifyWith({}, 'p384')).toMatchObject({ code: 'CB_ERR_DPOP_PROOF_INVALID', detail: expect.stringMatching(/not a ES256 key/) })
  })
})

describe('the nonce key is sealed where the store offers a secret box (gateway.store.secret)', () => {
  it('the stored value is not the key; nodes with the same secret share it; another secret fails closed', async () => {
    const { createSecretBox } = await import('../../src/store/secret-box.js')
    const clock = new ManualClock(Date.UTC(2026, 5, 1))
    const mem = new MemoryStore({ now: clock.now })
    const withBox = (secret: string) => Object.assign(Object.create(mem) as MemoryStore, { secretBox: createSecretBox(secret) })
    const a = new NonceService(withBox('s'.repeat(32)), clock.now, 'rs')
    const n = await a.issue()
    const stored = await mem.get('dpop:nonce-key')
    expect(stored).toBeDefined()
    expect(Buffer.from(stored!, 'base64url').length).not.toBe(32)
    expect(await new NonceService(withBox('s'.repeat(32)), clock.now, 'rs').age(n)).toBe(0)
    await expect(new NonceService(withBox('t'.repeat(32)), clock.now, 'rs').age(n)).rejects.toThrow(/not sealed/)
  })
})
