import { z } from 'zod'
import type { PluginDeps, UpstreamHead } from '../../pipeline/types.js'
import type { RequestContext } from '../../pipeline/context.js'
import { CidrSet } from '../../net/cidr.js'
import { Challenger } from '../challenge.js'
import type { BindingMode } from '../enforce-binding.js'
import { NonceService } from './nonce.js'
import { DEFAULT_DPOP_ALGORITHMS, DPOP_ALGORITHMS, DPOP_NEXT_NONCE, DpopVerifier, MIN_FUTURE_SKEW_S } from './proof.js'

/** Kong's DPoP keys (openid-connect 3.7+), shared by both token plugins' schemas. */
export const dpopSchemaFields = {
  proof_of_possession_dpop: z.enum(['off', 'optional', 'strict']).default('off')
    .describe('RFC 9449 DPoP. optional: tokens bound with cnf.jkt must come as "Authorization: DPoP" with a valid ' +
      'DPoP proof; strict: every token must (Bearer is refused). May be on together with certificate binding: a ' +
      'token bound with x5t#S256 needs its certificate, one bound with jkt needs a proof'),
  dpop_use_nonce: z.boolean().default(false)
    .describe('RFC 9449 §9: proofs must carry a nonce from this gateway (401 use_dpop_nonce with DPoP-Nonce ' +
      'otherwise). Nonces are stateless and valid on every node (HMAC with a key shared through the store)'),
  dpop_proof_lifetime: z.number().int().min(1).max(3600).default(300)
    .describe('Seconds a proof is accepted after its iat (and a nonce after its issue); its jti is remembered as long'),
  dpop_algorithms: z.array(z.enum(DPOP_ALGORITHMS)).min(1).default([...DEFAULT_DPOP_ALGORITHMS])
    .describe('(certbound) JWS algorithms accepted for DPoP proofs, announced in the DPoP challenge\'s algs ' +
      '(asymmetric only: none and HS* cannot be configured)'),
}

export interface DpopConfig {
  readonly proof_of_possession_dpop: BindingMode
  readonly dpop_use_nonce: boolean
  readonly dpop_proof_lifetime: number
  readonly dpop_algorithms: readonly string[]
}

/** The verifier (undefined when DPoP is off) and the challenge builder for a plugin instance. */
export function createDpop (c: DpopConfig, deps: PluginDeps, o: { readonly trustedProxies: CidrSet, readonly leewayS: number, readonly bearer: boolean }): { verifier: DpopVerifier | undefined, challenger: Challenger } {
  const on = c.proof_of_possession_dpop !== 'off'
  const challenger = new Challenger({ bearer: o.bearer && c.proof_of_possession_dpop !== 'strict', dpopAlgs: on ? c.dpop_algorithms : undefined })
  if (!on) return { verifier: undefined, challenger }
  const verifier = new DpopVerifier({
    algorithms: c.dpop_algorithms,
    proofLifetimeS: c.dpop_proof_lifetime,
    futureSkewS: Math.max(MIN_FUTURE_SKEW_S, o.leewayS),
    nonces: c.dpop_use_nonce ? new NonceService(deps.store, deps.now, 'rs') : undefined,
    trustedProxies: o.trustedProxies,
    store: deps.store,
    now: deps.now,
  })
  return { verifier, challenger }
}

export { CidrSet }

/** Response phase of a token plugin with dpop_use_nonce: hand the client its next nonce (RFC 9449 §9). */
export function nextNonceResponse (ctx: RequestContext, head: UpstreamHead): void {
  const n = ctx.get(DPOP_NEXT_NONCE)
  if (n !== undefined) head.headers['dpop-nonce'] = n
}
