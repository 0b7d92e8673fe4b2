import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../errors/index.js'
import { MULTIPLE } from '../pipeline/context.js'
import { CidrSet } from '../net/cidr.js'
import { DpopVerifier, type ProofRequest } from '../auth/dpop/proof.js'
import { NonceService } from '../auth/dpop/nonce.js'
import { systemClock, type Clock, type StateStore } from '../store/types.js'
import { MemoryStore } from '../store/memory.js'
import type { CompiledClient } from './clients.js'
import { OAuthError } from './oauth-error.js'
import type { AuthorizationServerConfig } from './schema.js'

/**
 * RFC 9449 at the built-in authorization server's token endpoint: the same verifier as the resource server's
 * (src/auth/dpop), with htu the token endpoint URL (the AS knows its own external URI from the issuer), nonces of
 * their own purpose (an RS nonce is not an AS nonce) and `jti` replay in the shared store.
 *
 * Which binding wins when a client could have both (RFC 9449 §5 gives a token one `cnf` to carry; certbound puts
 * exactly one member in it): a request with a DPoP proof gets a DPoP-bound token (`cnf.jkt`), even from a client
 * that authenticated with its certificate. The proof is the client's explicit request for a DPoP token (RFC 9449
 * §5), it is what survives the TLS terminators and CDNs DPoP exists for, and a resource server that checks DPoP
 * needs `jkt`; the certificate still authenticates the client. Without a proof, RFC 8705 §3 binding applies as
 * configured (tls_client_certificate_bound_access_tokens).
 */
export class TokenEndpointDpop {
  readonly algorithms: readonly string[]
  private readonly verifier: DpopVerifier

  constructor (config: AuthorizationServerConfig['dpop'], store: StateStore, now: Clock, private readonly tokenUrl: string) {
    this.algorithms = config.signing_alg_values
    this.verifier = new DpopVerifier({
      algorithms: config.signing_alg_values,
      proofLifetimeS: config.proof_lifetime,
      futureSkewS: 5,
      nonces: config.require_nonce ? new NonceService(store, now, 'as') : undefined,
      trustedProxies: new CidrSet([]),
      store,
      now,
    })
  }

  /**
   * The thumbprint to bind the token to (RFC 9449 §5), or undefined when the request has no proof and the client
   * does not require one. Proof errors are 400 invalid_dpop_proof; a missing or stale nonce is 400 use_dpop_nonce
   * with a fresh DPoP-Nonce (RFC 9449 §8).
   */
  async bindingFor (req: IncomingMessage, client: CompiledClient): Promise<string | undefined> {
    const view = proofRequest(req)
    const present = view.singleHeader('dpop') !== undefined
    if (!present) {
      if (client.dpopBound) throw new OAuthError('invalid_dpop_proof', 'this client\'s access tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP proof (RFC 9449 §5)')
      return undefined
    }
    try {
      return (await this.verifier.verify(view, { htu: this.tokenUrl })).jkt
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err
      if (err.code === 'CB_ERR_DPOP_NONCE_REQUIRED') {
        throw new OAuthError('use_dpop_nonce', 'Authorization server requires nonce in DPoP proof', { detail: err.detail, headers: { 'dpop-nonce': err.headers?.['dpop-nonce'] ?? '' } })
      }
      throw new OAuthError('invalid_dpop_proof', 'The DPoP proof is invalid', { detail: err.detail })
    }
  }
}

/** The AS's view of a request for the proof checks: method and single-occurrence headers, from the raw headers. */
function proofRequest (req: IncomingMessage): ProofRequest {
  return {
    method: req.method ?? '',
    singleHeader (name: string) {
      const raw = req.rawHeaders
      let found: string | undefined
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i].length === name.length && raw[i].toLowerCase() === name) {
          if (found !== undefined) return MULTIPLE
          found = raw[i + 1]
        }
      }
      return found
    },
  }
}

/**
 * The token endpoint's DPoP support. The store and clock come from the gateway (shared across workers and nodes);
 * a server created without them (unit tests, `certbound validate`) gets a process-local memory store.
 */
export function createTokenEndpointDpop (config: AuthorizationServerConfig, deps: { readonly store?: StateStore, readonly now?: Clock }, tokenUrl: string): TokenEndpointDpop {
  const now = deps.now ?? systemClock
  return new TokenEndpointDpop(config.dpop, deps.store ?? new MemoryStore({ now }), now, tokenUrl)
}
