import { GatewayError, type ChallengeParams } from '../errors/index.js'
import type { Scheme } from './token-extraction.js'

const REALM = 'certbound'

function quote (s: string): string {
  return '"' + s.replace(/[\\"]/g, '\\$&').replace(/[^\x20-\x7e]/g, '') + '"'
}

/** Which authentication schemes a route accepts, fixed at load. */
export interface AcceptedSchemes {
  readonly bearer: boolean
  /** The JWS algorithms accepted for DPoP proofs; undefined when DPoP is off. */
  readonly dpopAlgs: readonly string[] | undefined
}

/**
 * RFC 6750 §3 and RFC 9449 §7.1 challenges built from the schemes a route accepts. The error goes on the scheme the
 * client used (a DPoP proof error always on DPoP); every DPoP challenge carries `algs` (RFC 9449 §7.1). Built per
 * error, never per successful request.
 */
export class Challenger {
  private readonly algs: string | undefined

  constructor (readonly schemes: AcceptedSchemes) {
    this.algs = schemes.dpopAlgs?.join(' ')
  }

  /** True when only Bearer is accepted: the errors the core throws already carry the right challenge. */
  get bearerOnly (): boolean { return this.algs === undefined }

  /** The WWW-Authenticate value: one challenge per accepted scheme, the error on `used`. */
  header (params: ChallengeParams | undefined, used: Scheme | undefined): string {
    const bearer = this.schemes.bearer || this.algs === undefined
    const dpop = this.algs !== undefined
    // the error goes on the scheme the client used; when that is unknown (two Authorization headers) or not
    // accepted here (Bearer on a DPoP-only route), on every challenge the route offers
    const onAll = used === undefined || (used === 'bearer' && !bearer) || (used === 'dpop' && !dpop)
    const parts: string[] = []
    if (bearer) parts.push('Bearer ' + this.params(onAll || used === 'bearer' ? params : undefined))
    if (dpop) parts.push(`DPoP ${this.params(onAll || used === 'dpop' ? params : undefined)}, algs=${quote(this.algs!)}`)
    return parts.join(', ')
  }

  private params (p: ChallengeParams | undefined): string {
    let v = `realm=${quote(REALM)}`
    if (p?.error !== undefined) v += `, error=${quote(p.error)}`
    if (p?.description !== undefined) v += `, error_description=${quote(p.description)}`
    if (p?.scope !== undefined) v += `, scope=${quote(p.scope)}`
    return v
  }

  /**
   * The same error under this route's schemes. Errors without challenge parameters (the IdP is down: 503) pass
   * through unchanged, as do all errors on a Bearer-only route (their challenge is already right).
   */
  rewrite (err: unknown, used: Scheme | undefined): unknown {
    if (this.bearerOnly || !(err instanceof GatewayError) || err.challenge === undefined) return err
    const e = err.challenge.error
    const on = e === 'invalid_dpop_proof' || e === 'use_dpop_nonce' ? 'dpop' : used
    const headers = { ...err.headers, 'www-authenticate': this.header(err.challenge, on) }
    return new GatewayError(err.code, { detail: err.detail, message: err.message, status: err.status, headers, body: err.body, contentType: err.contentType, challenge: err.challenge, cause: err.cause, errCause: err.errCause })
  }
}

/** RFC 9449 §7.1: 401 `invalid_dpop_proof`, the specific reason to the log. */
export function invalidDpopProof (detail: string, code: 'CB_ERR_DPOP_PROOF_INVALID' | 'CB_ERR_DPOP_REPLAY' = 'CB_ERR_DPOP_PROOF_INVALID'): GatewayError {
  const challenge = { error: 'invalid_dpop_proof', description: 'The DPoP proof is invalid' }
  return new GatewayError(code, { detail, challenge, headers: { 'www-authenticate': `DPoP error="invalid_dpop_proof", error_description="${challenge.description}"` } })
}

/** RFC 9449 §8: 401 `use_dpop_nonce` with a fresh `DPoP-Nonce`. */
export function useDpopNonce (nonce: string, detail: string): GatewayError {
  const challenge = { error: 'use_dpop_nonce', description: 'Resource server requires nonce in DPoP proof' }
  return new GatewayError('CB_ERR_DPOP_NONCE_REQUIRED', { detail, challenge, headers: { 'www-authenticate': `DPoP error="use_dpop_nonce", error_description="${challenge.description}"`, 'dpop-nonce': nonce } })
}

/** Two `DPoP` headers (RFC 9449 §4.3 step 1: exactly one): 400 invalid_request. */
export function multipleDpopProofs (): GatewayError {
  const challenge = { error: 'invalid_request', description: 'The request is malformed' }
  return new GatewayError('CB_ERR_DPOP_PROOF_MULTIPLE', { detail: 'more than one DPoP header', challenge, headers: { 'www-authenticate': `DPoP error="invalid_request", error_description="${challenge.description}"` } })
}
