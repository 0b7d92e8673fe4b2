/**
 * Property-based tests (fast-check) for the DPoP proof verifier and the Authorization parser: whatever a client
 * sends — random text, a valid proof with one byte flipped, a header or payload replaced by arbitrary JSON — the
 * answer is a GatewayError with a stable code (400/401, or 503 for our own faults), never a crash and never an
 * acceptance. Issue 14: "Bad input: a clear answer, never a crash, fail closed".
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { generateKeyPairSync, sign } from 'node:crypto'
import { DpopVerifier } from '../../src/auth/dpop/proof.js'
import { normaliseHtu } from '../../src/auth/dpop/htu.js'
import { extractToken } from '../../src/auth/token-extraction.js'
import { CidrSet } from '../../src/net/cidr.js'
import { GatewayError } from '../../src/errors/index.js'
import { MemoryStore } from '../../src/store/memory.js'
import { ManualClock } from '../helpers/clock.js'
import { makeCtx } from '../plugins/openid-connect/harness.js'

const clock = new ManualClock(Date.UTC(2026, 5, 1))
const verifier = new DpopVerifier({ algorithms: ['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'], proofLifetimeS: 300, futureSkewS: 5, nonces: undefined, trustedProxies: new CidrSet([]), store: new MemoryStore({ now: clock.now }), now: clock.now })
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const jwk = key.publicKey.export({ format: 'jwk' })
const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
function signed (header: unknown, payload: unknown): string {
  const input = b64(header) + '.' + b64(payload)
  return input + '.' + sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
}
let n = 0
const validPayload = (): Record<string, unknown> => ({ jti: `j${n++}`, htm: 'GET', htu: 'https://a.test/x', iat: clock.now() / 1000 })
const validHeader = { typ: 'dpop+jwt', alg: 'ES256', jwk }

async function outcome (proof: string): Promise<'ok' | GatewayError> {
  try {
    await verifier.verify(makeCtx({ path: '/x', headers: [['Host', 'a.test'], ['DPoP', proof]] }), {})
    return 'ok'
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return err
  }
}

const refused = (r: 'ok' | GatewayError): boolean => r !== 'ok' && r.code === 'CB_ERR_DPOP_PROOF_INVALID' && r.status === 401

describe('DPoP proofs from hostile clients', () => {
  it('a valid proof passes (the baseline)', async () => {
    expect(await outcome(signed(validHeader, validPayload()))).toBe('ok')
  })

  it('arbitrary text in the DPoP header is refused with invalid_dpop_proof', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 300 }), async (s) => {
      expect(refused(await outcome(s))).toBe(true)
    }), { numRuns: 300 })
  })

  it('a valid proof with one character changed is refused (never accepted, never a crash)', async () => {
    await fc.assert(fc.asyncProperty(fc.nat(), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), async (at, c) => {
      const p = signed(validHeader, validPayload())
      const i = at % p.length
      fc.pre(p[i] !== c && p[i] !== '.')
      const mutated = p.slice(0, i) + c + p.slice(i + 1)
      const r = await outcome(mutated)
      // base64url's last character may carry unused bits: a change there can decode to the same bytes
      if (r === 'ok') expect(Buffer.from(mutated.split('.')[2], 'base64url').equals(Buffer.from(p.split('.')[2], 'base64url')) || mutated.split('.').slice(0, 2).join() === p.split('.').slice(0, 2).join()).toBe(true)
      else expect(refused(r)).toBe(true)
    }), { numRuns: 300 })
  })

  it('arbitrary JSON as the header or the payload of a correctly signed proof is refused', async () => {
    await fc.assert(fc.asyncProperty(fc.jsonValue(), fc.boolean(), async (v, inHeader) => {
      const r = await outcome(inHeader ? signed(v, validPayload()) : signed(validHeader, v))
      expect(refused(r)).toBe(true)
    }), { numRuns: 300 })
  })
})

describe('the Authorization parser and htu normalisation on arbitrary input', () => {
  it('extractToken answers a token or a GatewayError (400/401), never anything else', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.boolean(), (v, dpop) => {
      try {
        const t = extractToken(makeCtx({ headers: [['Authorization', v]] }), { bearer: true, dpop })
        expect(['bearer', 'dpop']).toContain(t.scheme)
      } catch (err) {
        expect(err).toBeInstanceOf(GatewayError)
        expect([400, 401]).toContain((err as GatewayError).status)
      }
    }), { numRuns: 500 })
  })

  it('normaliseHtu is total and idempotent', () => {
    fc.assert(fc.property(fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string()), (u) => {
      const n = normaliseHtu(u)
      if (n !== undefined) expect(normaliseHtu(n)).toBe(n)
    }), { numRuns: 500 })
  })
})
