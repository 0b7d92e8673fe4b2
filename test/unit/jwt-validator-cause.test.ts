/**
 * Issue 19: every JWT refusal keeps its stable code (CB_ERR_TOKEN_INVALID, RFC 6750 §3.1 invalid_token) and carries
 * a typed sub-reason (GatewayError.errCause) the access log and the dashboard tell apart: expired, bad signature,
 * wrong issuer… Real keys and real signed tokens (jose), the validator's clock driven.
 */
import { describe, it, expect, beforeAll } from 'vitest'
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose'
import { JwtValidator } from '../../src/auth/jwt-validator.js'
import { GatewayError, type ErrCause } from '../../src/errors/index.js'

const ISS = 'https://idp.example'
const NOW_S = 1_800_000_000
let good: CryptoKey
let other: CryptoKey
let validator: JwtValidator

beforeAll(async () => {
  const kp = await generateKeyPair('ES256', { extractable: true })
  const kp2 = await generateKeyPair('ES256')
  good = kp.privateKey; other = kp2.privateKey
  const jwk: JWK = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
  validator = new JwtValidator({
    algorithms: ['ES256'], issuer: () => ISS, audience: ['api'], leewayS: 0,
    accessTokenTyp: ['at+jwt'], enforceAccessTokenTyp: false, getKey: createLocalJWKSet({ keys: [jwk] }), now: () => NOW_S * 1000,
  })
})

async function token (o: { key?: CryptoKey, kid?: string, typ?: string, claims?: Record<string, unknown> } = {}): Promise<string> {
  return new SignJWT({ iss: ISS, aud: 'api', exp: NOW_S + 60, iat: NOW_S, sub: 's', ...o.claims })
    .setProtectedHeader({ alg: 'ES256', kid: o.kid ?? 'k1', typ: o.typ ?? 'at+jwt' }).sign(o.key ?? good)
}

async function refusal (t: string): Promise<[string, ErrCause | undefined]> {
  const e = await validator.verify(t).then(() => undefined, (err: unknown) => err)
  expect(e).toBeInstanceOf(GatewayError)
  const g = e as GatewayError
  return [g.code, g.errCause]
}

describe('JWT refusals: one code, a typed sub-reason', () => {
  it('a valid token passes', async () => {
    expect((await validator.verify(await token())).sub).toBe('s')
  })

  it.each<[string, () => Promise<string>, ErrCause]>([
    ['expired (RFC 7519 §4.1.4)', () => token({ claims: { exp: NOW_S - 1 } }), 'expired'],
    ['not yet valid (nbf, RFC 7519 §4.1.5)', () => token({ claims: { nbf: NOW_S + 600 } }), 'not_yet_valid'],
    ['signed by another key under the same kid', () => token({ key: other }), 'signature'],
    ['a tampered payload', async () => { const [h, , s] = (await token()).split('.'); return [h, Buffer.from(JSON.stringify({ iss: ISS, aud: 'api', exp: NOW_S + 60, sub: 'admin' })).toString('base64url'), s].join('.') }, 'signature'],
    ['an unknown kid', () => token({ kid: 'nope' }), 'unknown_key'],
    ['another issuer', () => token({ claims: { iss: 'https://evil.example' } }), 'issuer'],
    ['another audience', () => token({ claims: { aud: 'other' } }), 'audience'],
    ['no exp (RFC 9068 §2.2)', () => token({ claims: { exp: undefined } }), 'claim'],
    ['an ID token (typ, RFC 8725 §3.11)', () => token({ typ: 'id_token+jwt' }), 'type'],
    ['not a JWS', () => Promise.resolve('abc.def'), 'malformed'],
  ])('%s', async (_name, make, cause) => {
    expect(await refusal(await make())).toEqual(['CB_ERR_TOKEN_INVALID', cause])
  })

  it('an algorithm outside the allow-list', async () => {
    const hs = await new SignJWT({ iss: ISS, aud: 'api', exp: NOW_S + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new Uint8Array(32))
    expect(await refusal(hs)).toEqual(['CB_ERR_TOKEN_INVALID', 'algorithm'])
  })
})
