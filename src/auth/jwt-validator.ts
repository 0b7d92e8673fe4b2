import { decodeProtectedHeader, errors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, type JWTVerifyResult } from 'jose'
import { GatewayError, invalidToken, type ErrCause } from '../errors/index.js'
import type { Clock } from '../store/types.js'

/** Keycloak's payload `typ` values for tokens that are not access tokens (its access tokens say "Bearer"). */
const NON_ACCESS_TYP: ReadonlySet<string> = new Set(['id', 'refresh', 'offline', 'logout'])

export interface JwtValidatorOptions {
  /** Accepted JWS algorithms (asymmetric only; the schemas refuse none and HS*). */
  readonly algorithms: readonly string[]
  /** Accepted `iss` values; a function because the issuer may be discovered after load. */
  readonly issuer: () => string | readonly string[] | undefined
  /** `aud` must contain one of these (RFC 9068 §4); undefined: not checked. */
  readonly audience: readonly string[] | undefined
  /** Seconds of clock skew on exp/nbf. */
  readonly leewayS: number
  /** `typ` values of access tokens (RFC 9068 §2.1), compared case-insensitively with or without `application/`. */
  readonly accessTokenTyp: readonly string[]
  /** Require `typ` to be one of accessTokenTyp (otherwise only tokens typed as another kind of JWT are refused). */
  readonly enforceAccessTokenTyp: boolean
  /** The issuer's keys (a JWKS resolver). */
  readonly getKey: JWTVerifyGetKey
  /** exp/nbf are judged on this clock (deps.now). */
  readonly now: Clock
}

function normaliseTyp (t: string): string {
  const l = t.toLowerCase()
  return l.startsWith('application/') ? l.slice(12) : l
}

/** A compact JWS has exactly three non-empty-headed parts; anything else is not a JWT access token. */
export function isCompactJws (token: string): boolean {
  const a = token.indexOf('.')
  if (a <= 0) return false
  const b = token.indexOf('.', a + 1)
  return b > a + 1 && token.indexOf('.', b + 1) < 0
}

function describeHeader (token: string): string {
  try {
    const h = decodeProtectedHeader(token)
    return `alg=${String(h.alg)} kid=${String(h.kid)}`
  } catch {
    return 'unparseable header'
  }
}

/** jose's failed claim check → the dashboard's sub-reason (nbf in the future: RFC 7519 §4.1.5). */
function claimCause (claim: string, reason: string): ErrCause {
  if (claim === 'iss') return 'issuer'
  if (claim === 'aud') return 'audience'
  if (claim === 'typ') return 'type'
  if ((claim === 'nbf' || claim === 'iat') && reason === 'check_failed') return 'not_yet_valid'
  return 'claim'
}

/**
 * The one validator of JWT access tokens (RFC 9068, RFC 8725): signature with the issuer's keys, algorithm
 * allow-list, iss, aud, exp (required) and nbf with leeway on the gateway's clock, explicit typing. Failures are 401
 * invalid_token with the precise reason for the log; IdP faults (GatewayError) pass through.
 */
export class JwtValidator {
  private readonly typAllowed: ReadonlySet<string>
  private options: JWTVerifyOptions | undefined
  private optionsIssuer: string | readonly string[] | undefined

  constructor (private readonly o: JwtValidatorOptions) {
    this.typAllowed = new Set(o.accessTokenTyp.map(normaliseTyp))
  }

  async verify (token: string): Promise<JWTPayload> {
    // exp/nbf against the gateway's clock (deps.now), like every other window
    const options = { ...this.frozenOptions(), currentDate: new Date(this.o.now()) }
    let result
    try {
      result = await jwtVerify(token, this.o.getKey, options)
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw this.failure(err, token)
      result = await this.tryEachKey(token, err as unknown as AsyncIterable<CryptoKey>, options)
    }
    const problem = this.typProblem(result.protectedHeader.typ, result.payload)
    if (problem !== undefined) throw invalidToken(problem, undefined, 'type')
    return result.payload
  }

  /** RFC 8725 §3.11 explicit typing, RFC 9068 §2.1 at+jwt; Keycloak's ID and refresh tokens are not access tokens. */
  typProblem (typ: unknown, payload: Readonly<Record<string, unknown>>): string | undefined {
    const t = typeof typ === 'string' ? normaliseTyp(typ) : undefined
    if (this.o.enforceAccessTokenTyp) {
      if (t === undefined || !this.typAllowed.has(t)) return `typ "${String(typ)}" is not an access token type (${[...this.typAllowed].join(', ')})`
    } else if (t !== undefined && t !== 'jwt' && !this.typAllowed.has(t) && t.endsWith('+jwt')) {
      return `typ "${String(typ)}" marks another kind of JWT`
    }
    const ptyp = payload.typ
    if (typeof ptyp === 'string' && NON_ACCESS_TYP.has(ptyp.toLowerCase())) return `payload typ "${ptyp}" is not an access token`
    return undefined
  }

  private frozenOptions (): JWTVerifyOptions {
    const iss = this.o.issuer()
    if (this.options === undefined || this.optionsIssuer !== iss) {
      this.options = Object.freeze({
        algorithms: [...this.o.algorithms],
        issuer: iss === undefined ? undefined : (typeof iss === 'string' ? iss : [...iss]),
        audience: this.o.audience === undefined ? undefined : [...this.o.audience],
        clockTolerance: this.o.leewayS,
        requiredClaims: ['exp'], // RFC 9068 §2.2
      })
      this.optionsIssuer = iss
    }
    return this.options
  }

  /** No kid and several candidate keys (RFC 7515 §4.1.4 makes kid optional): try each, bounded by the JWKS. */
  private async tryEachKey (token: string, keys: AsyncIterable<CryptoKey>, options: JWTVerifyOptions): Promise<JWTVerifyResult> {
    for await (const key of keys) {
      try {
        return await jwtVerify(token, key, options)
      } catch (err) {
        if (err instanceof errors.JWSSignatureVerificationFailed) continue
        throw this.failure(err, token)
      }
    }
    throw invalidToken(`no key of the issuer's JWKS verifies the signature (${describeHeader(token)})`, undefined, 'signature')
  }

  /** jose's typed failures → 401 invalid_token with the precise reason for the log; IdP faults pass through. */
  private failure (err: unknown, token: string): Error {
    if (err instanceof GatewayError) return err
    const t = 'CB_ERR_TOKEN_INVALID'
    if (err instanceof errors.JWTExpired) return invalidToken(`token expired (exp ${String(err.payload.exp)}, leeway ${this.o.leewayS}s)`, t, 'expired')
    if (err instanceof errors.JWTClaimValidationFailed) return invalidToken(`claim "${err.claim}" ${err.reason}: ${err.message}`, t, claimCause(err.claim, err.reason))
    if (err instanceof errors.JOSEAlgNotAllowed) return invalidToken(`algorithm not allowed (${describeHeader(token)}; allowed: ${this.o.algorithms.join(', ')})`, t, 'algorithm')
    if (err instanceof errors.JWKSNoMatchingKey) return invalidToken(`no key of the issuer's JWKS matches (${describeHeader(token)})`, t, 'unknown_key')
    if (err instanceof errors.JWSSignatureVerificationFailed) return invalidToken(`signature verification failed (${describeHeader(token)})`, t, 'signature')
    if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return invalidToken(`${err.code}: ${err.message}`, t, 'malformed')
    if (err instanceof errors.JOSEError) return invalidToken(`${err.code}: ${err.message}`)
    return err instanceof Error ? err : new Error(String(err))
  }
}
