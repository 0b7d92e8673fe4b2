import { constants, createHash, createPublicKey, hash, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { MULTIPLE, RequestContext, StateKey } from '../../pipeline/context.js'
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

/**
 * A fresh nonce for the response (RFC 9449 §9: a server may supply a new nonce with a successful response), set
 * when the proof's nonce has used half its lifetime, so a client switches before it gets `use_dpop_nonce`.
 */
export const DPOP_NEXT_NONCE = new StateKey<string>('dpop.next-nonce')

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

interface ImportedKey { readonly key: KeyObject, readonly jkt: string }

/**
 * How each JWS algorithm (RFC 7518 §3, RFC 8037) verifies with node:crypto's one-shot verify, and the key it needs.
 * Not jose's compactVerify here: jose verifies through WebCrypto, whose asynchronous job costs about a third more
 * CPU per signature than the one-shot call on this hot path (a DPoP proof is a fresh signature on every request;
 * bench/dpop-micro.mjs). jose stays the reference in the tests (thumbprints, proofs, the CLI's signing).
 */
const JWS: Readonly<Record<string, { readonly hash: string | null, readonly kty: string, readonly crv?: string, readonly pss?: number, readonly ecdsa?: boolean }>> = {
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256', ecdsa: true },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384', ecdsa: true },
  ES512: { hash: 'sha512', kty: 'EC', crv: 'P-521', ecdsa: true },
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  PS256: { hash: 'sha256', kty: 'RSA', pss: 32 },
  PS384: { hash: 'sha384', kty: 'RSA', pss: 48 },
  PS512: { hash: 'sha512', kty: 'RSA', pss: 64 },
  EdDSA: { hash: null, kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { hash: null, kty: 'OKP', crv: 'Ed25519' },
}

function decodeJson (part: string): unknown {
  try { return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) } catch { return undefined }
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** A call that needs the shared store (the nonce key): a store failure fails closed with 503, never as the client's fault. */
async function storeCall<T> (backend: string, what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (err) {
    throw err instanceof GatewayError ? err : new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: `DPoP ${what}: the ${backend} store failed: ${(err as Error).message}` })
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
  /** Header segments that passed steps 4, 5 and 7 (derived data: the same on every node). */
  private readonly headers = new LRUCache<string, { readonly alg: string, readonly key: ImportedKey }>({ max: KEY_CACHE_MAX })
  private readonly htus = new LRUCache<string, string | 0>({ max: KEY_CACHE_MAX })
  /** normaliseHtu, remembered: the URIs of a route repeat. */
  private readonly normalised = (uri: string): string | undefined => {
    const hit = this.htus.get(uri)
    if (hit !== undefined) return hit === 0 ? undefined : hit
    const n = normaliseHtu(uri)
    this.htus.set(uri, n ?? 0)
    return n
  }

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
    const dot1 = proof.indexOf('.')
    const dot2 = proof.indexOf('.', dot1 + 1)
    const checked = this.checkHeader(proof.slice(0, dot1))
    const alg = checked.alg
    const key = checked.key
    // step 6: the signature (RFC 7515 §5.2: over the ASCII of header.payload as sent)
    const jws = JWS[alg]
    const signature = Buffer.from(proof.slice(dot2 + 1), 'base64url')
    let valid: boolean
    try {
      valid = cryptoVerify(jws.hash, Buffer.from(proof.slice(0, dot2), 'ascii'),
        jws.ecdsa === true ? { key: key.key, dsaEncoding: 'ieee-p1363' } : jws.pss !== undefined ? { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: jws.pss } : key.key,
        signature)
    } catch { valid = false }
    if (!valid) throw invalidDpopProof(`signature verification failed (${alg})`)
    const claims = decodeJson(proof.slice(dot1 + 1, dot2))
    if (!isObject(claims)) throw invalidDpopProof('the proof\'s payload is not a JSON object')
    const { jti, htm, htu, iat, ath, nonce } = claims
    // step 3: required claims
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw invalidDpopProof('jti is missing or not a string of 1 to 256 characters')
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalidDpopProof('iat is missing or not a number')
    // step 8: htm
    if (htm !== ctx.method) throw invalidDpopProof(`htm "${String(htm)}" is not the request method ${ctx.method}`)
    // step 9: htu, both sides RFC 3986 §6.2.2/§6.2.3-normalised, query and fragment ignored
    const want = o.htu !== undefined ? this.normalised(o.htu) : (ctx instanceof RequestContext ? requestHtu(ctx, p.trustedProxies, this.normalised) : undefined)
    const got = typeof htu === 'string' ? this.normalised(htu) : undefined
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
      if (age > lifetimeMs / 2 && ctx instanceof RequestContext && ctx.get(DPOP_NEXT_NONCE) === undefined) ctx.set(DPOP_NEXT_NONCE, await fresh())
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
      throw err instanceof GatewayError ? err : new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: `DPoP jti replay check: the ${p.store.backend} store failed: ${(err as Error).message}` })
    }
    if (!fresh) throw invalidDpopProof('the proof\'s jti was seen before (replay), or the proof is older than the replay store can still rule out', 'CB_ERR_DPOP_REPLAY')
    return { jkt: key.jkt, jti }
  }

  /**
   * Steps 4, 5 and 7 for a header segment, remembered when they pass: a client signs every proof with the same key,
   * so the header segment repeats and its checks (JSON, typ, alg, a public jwk, the key's import and thumbprint)
   * are a function of that string alone.
   */
  private checkHeader (segment: string): { readonly alg: string, readonly key: ImportedKey } {
    const hit = this.headers.get(segment)
    if (hit !== undefined) return hit
    const header = decodeJson(segment)
    if (!isObject(header)) throw invalidDpopProof('the proof\'s header is not a JSON object')
    // RFC 7515 §4.1.11: a critical extension we do not understand makes the JWS invalid
    if (header.crit !== undefined) throw invalidDpopProof('the proof has crit header parameters')
    // step 4: typ
    if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt') throw invalidDpopProof(`typ "${String(header.typ)}" is not dpop+jwt`)
    // step 5: an asymmetric algorithm on the allow-list
    const alg = header.alg
    if (typeof alg !== 'string' || !this.algorithms.has(alg) || !Object.hasOwn(JWS, alg)) throw invalidDpopProof(`alg "${String(alg)}" is not accepted (${[...this.algorithms].join(', ')})`)
    // step 7: a public key
    const jwk = header.jwk
    if (!isObject(jwk)) throw invalidDpopProof('the proof has no jwk header')
    for (const m of PRIVATE_MEMBERS) if (m in jwk) throw invalidDpopProof(`the proof's jwk has the private member "${m}"`)
    const entry = { alg, key: this.importKey(jwk, alg) }
    this.headers.set(segment, entry)
    return entry
  }

  private importKey (jwk: Record<string, unknown>, alg: string): ImportedKey {
    const jkt = jwkThumbprint(jwk)
    if (jkt === undefined) throw invalidDpopProof(`the proof's jwk (kty ${String(jwk.kty)}) lacks its RFC 7638 members`)
    const id = alg + ':' + jkt
    const hit = this.keys.get(id)
    if (hit !== undefined) return hit
    // FAPI 2.0 Security Profile §5.4.1: RSA keys of at least 2048 bits (RFC 7518 §3.3 says the same for RS/PS)
    if (jwk.kty === 'RSA' && Buffer.from(String(jwk.n), 'base64url').length < MIN_RSA_BYTES) throw invalidDpopProof('the proof\'s RSA key is shorter than 2048 bits')
    // the key type and curve must be the algorithm's (RFC 7518 §3.4, RFC 8037 §3.1): no cross-algorithm use of a key
    const want = JWS[alg]
    if (jwk.kty !== want.kty || (want.crv !== undefined && jwk.crv !== want.crv)) throw invalidDpopProof(`the proof's jwk (kty ${String(jwk.kty)}, crv ${String(jwk.crv)}) is not a ${alg} key`)
    let key: KeyObject
    try {
      const members: Record<string, unknown> = { kty: jwk.kty }
      for (const m of THUMBPRINT_MEMBERS[jwk.kty as string]) members[m] = jwk[m]
      key = createPublicKey({ key: members as JsonWebKey, format: 'jwk' })
      if (key.type !== 'public') throw new Error('not a public key')
    } catch (err) {
      throw invalidDpopProof(`the proof's jwk is not a usable ${alg} public key: ${(err as Error).message}`)
    }
    const entry = { key, jkt }
    this.keys.set(id, entry)
    return entry
  }
}
