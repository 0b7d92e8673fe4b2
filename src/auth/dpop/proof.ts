import { createHash, hash } from 'node:crypto'
import { compactVerify, decodeProtectedHeader, importJWK, type CryptoKey, type JWK } from 'jose'
import { LRUCache } from 'lru-cache'
import { MULTIPLE, RequestContext } from '../../pipeline/context.js'
import type { CidrSet } from '../../net/cidr.js'
import type { Clock, StateStore } from '../../store/types.js'
import { GatewayError, invalidToken } from '../../errors/index.js'
import { invalidDpopProof, multipleDpopProofs, useDpopNonce } from '../challenge.js'
import { safeEqual } from '../binding.js'
import { normaliseHtu, requestHtu } from './htu.js'
import type { NonceService } from './nonce.js'

/** RFC 9449 §4.2 proof algorithms accepted by default (here and at the built-in AS): ES256, PS256/RS256, EdDSA (Ed25519, also by its fully-specified name, RFC 9864). */
export const DEFAULT_DPOP_ALGORITHMS = ['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'] as const
/** Every asymmetric JWS algorithm a proof may use (RFC 9449 §4.2: never none, never a MAC). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'Ed25519'] as const

/** A proof is a few hundred bytes (an RSA-4096 jwk makes it ~1.5 kB); larger is hostile input. */
const MAX_PROOF_LENGTH = 8 * 1024
const MAX_JTI_LENGTH = 256
/** Tolerated client clock lead (RFC 9449 §11.1 suggests allowing for a little skew), at least this much. */
export const MIN_FUTURE_SKEW_S = 5
/** JWK members that make a key private (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2): never in a proof. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const
/** RFC 7638 §3.2: the required members, in lexicographic order, per key type. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] }
const KEY_CACHE_MAX = 10_000
const MIN_RSA_BYTES = 256

export interface DpopPolicy {
  /** Accepted proof algorithms (asymmetric only). */
  readonly algorithms: readonly string[]
  /** `dpop_proof_lifetime`: seconds a proof (or its nonce) stays acceptable after its creation. */
  readonly proofLifetimeS: number
  /** Seconds a proof's iat may lie in the future. */
  readonly futureSkewS: number
  /** `dpop_use_nonce`: proofs must carry a nonce we issued (RFC 9449 §9). */
  readonly nonces: NonceService | undefined
  /** Peers whose X-Forwarded-Proto/-Host/-Port describe the URI the client used. */
  readonly trustedProxies: CidrSet
  /** The shared store: `jti` replay is refused across workers and nodes (RFC 9449 §11.1). */
  readonly store: StateStore
  readonly now: Clock
}

/** What a verified proof proved. */
export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key (what `cnf.jkt` must equal). */
  readonly jkt: string
  readonly jti: string
}

/** What a proof is checked against: the request's method and headers (a RequestContext, or the AS's view of a request). */
export interface ProofRequest {
  readonly method: string
  singleHeader(name: string): string | undefined | typeof MULTIPLE
}

interface ImportedKey { readonly key: CryptoKey, readonly jkt: string }

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** A call that needs the shared store (the nonce key): a store failure fails closed with 503, never as the client's fault. */
async function storeCall<T> (backend: string, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (err) {
    throw err instanceof GatewayError ? err : new GatewayError('CB_ERR_INTERNAL', { status: 503, message: 'Service unavailable', detail: `DPoP ${what}: the ${backend} store failed: ${(err as Error).message}` })
  }
}

/** RFC 7638 thumbprint over the required members; undefined when a member is missing or not a string. */
export function jwkThumbprint (jwk: Readonly<Record<string, unknown>>): string | undefined {
  const members = typeof jwk.kty === 'string' ? THUMBPRINT_MEMBERS[jwk.kty] : undefined
  if (members === undefined) return undefined
  const canon: Record<string, string> = {}
  for (const m of members) {
    const v = jwk[m]
    if (typeof v !== 'string') return undefined
    canon[m] = v
  }
  return hash('sha256', JSON.stringify(canon), 'base64url')
}

/** RFC 9449 §6.1 / §7.1 `ath`: base64url(SHA-256(ASCII(access token))). */
export function accessTokenHash (token: string): string {
  return hash('sha256', token, 'base64url')
}

/**
 * RFC 9449 §4.3: the checks a server runs on a DPoP proof, in the RFC's order, each with its own logged reason.
 * One instance per plugin instance (or per AS); stateless but for a cache of imported public keys (derived data:
 * a key is the same on every node) and the shared store for `jti` replay.
 */
export class DpopVerifier {
  private readonly algorithms: ReadonlySet<string>
  private readonly keys = new LRUCache<string, ImportedKey>({ max: KEY_CACHE_MAX })

  constructor (readonly policy: DpopPolicy) {
    this.algorithms = new Set(policy.algorithms)
  }

  /** The single `DPoP` header (RFC 9449 §4.3 step 1); 400 for two, 401 invalid_dpop_proof for none. */
  static proofOf (ctx: ProofRequest): string {
    const v = ctx.singleHeader('dpop')
    if (v === MULTIPLE) throw multipleDpopProofs()
    if (v === undefined) throw invalidDpopProof('no DPoP header')
    return v
  }

  /**
   * Verify the request's proof. `token` (when given) must hash to `ath`; `jkt` (when given) must equal the proof
   * key's thumbprint (else 401 invalid_token: the token is not bound to this key). `htu` defaults to the request's
   * external URI (a RequestContext's; other callers pass it).
   */
  async verify (ctx: ProofRequest, o: { readonly token?: string, readonly jkt?: string, readonly htu?: string }): Promise<VerifiedProof> {
    const proof = DpopVerifier.proofOf(ctx)
    const p = this.policy
    // step 2: one well-formed JWT
    if (proof.length > MAX_PROOF_LENGTH) throw invalidDpopProof(`proof of ${proof.length} bytes exceeds ${MAX_PROOF_LENGTH}`)
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(proof)) throw invalidDpopProof('the DPoP header is not a compact JWS')
    let header: Record<string, unknown>
    try { header = decodeProtectedHeader(proof) as Record<string, unknown> } catch { throw invalidDpopProof('the proof\'s header is not a JSON object') }
    // step 4: typ
    if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt') throw invalidDpopProof(`typ "${String(header.typ)}" is not dpop+jwt`)
    // step 5: an asymmetric algorithm on the allow-list
    const alg = header.alg
    if (typeof alg !== 'string' || !this.algorithms.has(alg)) throw invalidDpopProof(`alg "${String(alg)}" is not accepted (${[...this.algorithms].join(', ')})`)
    // step 7: a public key
    const jwk = header.jwk
    if (!isObject(jwk)) throw invalidDpopProof('the proof has no jwk header')
    for (const m of PRIVATE_MEMBERS) if (m in jwk) throw invalidDpopProof(`the proof's jwk has the private member "${m}"`)
    const key = await this.importKey(jwk, alg)
    // step 6: the signature
    let payloadBytes: Uint8Array
    try {
      ({ payload: payloadBytes } = await compactVerify(proof, key.key, { algorithms: [alg] }))
    } catch (err) {
      throw invalidDpopProof(`signature verification failed: ${(err as Error).message}`)
    }
    let claims: unknown
    try { claims = JSON.parse(Buffer.from(payloadBytes).toString('utf8')) } catch { claims = undefined }
    if (!isObject(claims)) throw invalidDpopProof('the proof\'s payload is not a JSON object')
    const { jti, htm, htu, iat, ath, nonce } = claims
    // step 3: required claims
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw invalidDpopProof('jti is missing or not a string of 1 to 256 characters')
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidDpopProof('iat is missing or not a number')
    // step 8: htm
    if (htm !== ctx.method) throw invalidDpopProof(`htm "${String(htm)}" is not the request method ${ctx.method}`)
    // step 9: htu, both sides RFC 3986 §6.2.2/§6.2.3-normalised, query and fragment ignored
    const want = o.htu !== undefined ? normaliseHtu(o.htu) : (ctx instanceof RequestContext ? requestHtu(ctx, p.trustedProxies) : undefined)
    const got = typeof htu === 'string' ? normaliseHtu(htu) : undefined
    if (got === undefined) throw invalidDpopProof('htu is missing or not an absolute http(s) URI')
    if (want === undefined || got !== want) throw invalidDpopProof(`htu ${got} is not this request's URI ${String(want)}`)
    const now = p.now()
    const lifetimeMs = p.proofLifetimeS * 1000
    // step 10: nonce (RFC 9449 §9), its age within the proof lifetime
    if (p.nonces !== undefined) {
      const nonces = p.nonces
      const fresh = async (): Promise<string> => await storeCall(p.store.backend, 'nonce', () => nonces.issue())
      if (typeof nonce !== 'string') throw useDpopNonce(await fresh(), 'the proof has no nonce and dpop_use_nonce is on')
      const age = await storeCall(p.store.backend, 'nonce', () => nonces.age(nonce))
      if (age === undefined) throw useDpopNonce(await fresh(), 'the proof\'s nonce was not issued by this gateway')
      if (age > lifetimeMs) throw useDpopNonce(await fresh(), `the proof's nonce is ${Math.round(age / 1000)} s old (dpop_proof_lifetime ${p.proofLifetimeS} s)`)
    }
    // step 11: iat within the window (RFC 9449 §11.1)
    const iatMs = iat * 1000
    if (iatMs > now + p.futureSkewS * 1000) throw invalidDpopProof(`iat is ${Math.round((iatMs - now) / 1000)} s in the future (tolerance ${p.futureSkewS} s)`)
    if (iatMs < now - lifetimeMs) throw invalidDpopProof(`iat is ${Math.round((now - iatMs) / 1000)} s old (dpop_proof_lifetime ${p.proofLifetimeS} s)`)
    // step 12: ath, when presented with an access token
    if (o.token !== undefined) {
      if (typeof ath !== 'string') throw invalidDpopProof('the proof has no ath for the access token')
      if (!safeEqual(ath, accessTokenHash(o.token))) throw invalidDpopProof('ath is not the hash of the access token')
    }
    // the token is bound to this key (RFC 9449 §7.1): otherwise the token, not the proof, is at fault
    if (o.jkt !== undefined && !safeEqual(o.jkt, key.jkt)) throw invalidToken('cnf.jkt does not match the DPoP proof\'s key', 'CB_ERR_TOKEN_BINDING_MISMATCH')
    // jti: never seen within the proof's window, in the shared store (a hash: never the raw jti as a key)
    const ttl = Math.max(1000, Math.ceil(iatMs + lifetimeMs + p.futureSkewS * 1000 - now))
    const replayKey = 'dpop:jti:' + createHash('sha256').update(key.jkt).update('\0').update(jti).digest('base64url')
    let fresh: boolean
    try {
      fresh = await p.store.setIfAbsent(replayKey, '1', ttl)
    } catch (err) {
      // without the shared store a replay cannot be ruled out: fail closed, and say it is ours, not the client's
      throw err instanceof GatewayError ? err : new GatewayError('CB_ERR_INTERNAL', { status: 503, message: 'Service unavailable', detail: `DPoP jti replay check: the ${p.store.backend} store failed: ${(err as Error).message}` })
    }
    if (!fresh) throw invalidDpopProof('the proof\'s jti was seen before (replay)', 'CB_ERR_DPOP_REPLAY')
    return { jkt: key.jkt, jti }
  }

  private async importKey (jwk: Record<string, unknown>, alg: string): Promise<ImportedKey> {
    const jkt = jwkThumbprint(jwk)
    if (jkt === undefined) throw invalidDpopProof(`the proof's jwk (kty ${String(jwk.kty)}) lacks its RFC 7638 members`)
    const id = alg + ':' + jkt
    const hit = this.keys.get(id)
    if (hit !== undefined) return hit
    // FAPI 2.0 Security Profile §5.4.1: RSA keys of at least 2048 bits (RFC 7518 §3.3 says the same for RS/PS)
    if (jwk.kty === 'RSA' && Buffer.from(String(jwk.n), 'base64url').length < MIN_RSA_BYTES) throw invalidDpopProof('the proof\'s RSA key is shorter than 2048 bits')
    let key: CryptoKey
    try {
      const imported = await importJWK({ ...(jwk as JWK), ext: undefined, key_ops: undefined, use: undefined }, alg)
      if (imported instanceof Uint8Array || imported.type !== 'public') throw new Error('not a public key')
      key = imported
    } catch (err) {
      throw invalidDpopProof(`the proof's jwk is not a usable ${alg} public key: ${(err as Error).message}`)
    }
    const entry = { key, jkt }
    this.keys.set(id, entry)
    return entry
  }
}
