import { timingSafeEqual } from 'node:crypto'
import type { RequestContext } from '../pipeline/context.js'
import type { PeerCertificate } from '../server/peer.js'
import { invalidToken, type GatewayError } from '../errors/index.js'
import type { Confirmation } from './cnf.js'
import type { DpopVerifier } from './dpop/proof.js'
import type { PresentedToken } from './token-extraction.js'

/** Kong's proof_of_possession_* values. off: the member is not checked; optional: bound tokens are; strict: every token must be bound. */
export type BindingMode = 'off' | 'optional' | 'strict'

/** The certificate a request is bound to, where it came from, and why there is none (for the log). */
export type CertificateOf = (ctx: RequestContext) => { readonly certificate: PeerCertificate | null, readonly reason?: string, readonly source?: 'tls' | 'header' }

/** A revocation check of the bound certificate (OCSP/CRL for a certificate forwarded by a trusted proxy): the refusal, or undefined. */
export type CertificateRevoked = (ctx: RequestContext, cert: PeerCertificate, source: 'tls' | 'header' | undefined) => GatewayError | undefined | Promise<GatewayError | undefined>

/**
 * How a route checks sender-constrained tokens: one verifier per `cnf` member (RFC 8705 `x5t#S256` → the TLS or
 * trusted-header client certificate; RFC 9449 `jkt` → the DPoP proof). Built once per plugin instance.
 */
export interface BindingPolicy {
  readonly mtls: BindingMode
  readonly dpop: BindingMode
  readonly certificate: CertificateOf
  /** Run after the thumbprint matched (certificate_header_revocation_check_mode). */
  readonly certificateRevoked?: CertificateRevoked
  /** Required when `dpop` is not off. */
  readonly dpopVerifier: DpopVerifier | undefined
}

/** The thumbprint of a certificate as bytes, once per certificate (that is, per TLS session or parsed header). */
const thumbprintBytes = new WeakMap<PeerCertificate, Buffer>()

/** RFC 8705 §3.1 comparison in constant time, without allocating per request. */
function certificateMatches (x5t: string, cert: PeerCertificate): boolean {
  let b = thumbprintBytes.get(cert)
  if (b === undefined) {
    b = Buffer.from(cert.x5tS256, 'latin1')
    thumbprintBytes.set(cert, b)
  }
  const want = Buffer.from(x5t, 'latin1')
  return b.length === want.length && timingSafeEqual(b, want)
}

const BINDING = 'CB_ERR_TOKEN_BINDING_MISMATCH'

/**
 * Check a verified token's confirmation against this request. Synchronous unless a DPoP proof has to be verified
 * (the certificate path stays on the synchronous hot path). Every member present must verify; a member whose
 * verifier is off on this route, or that no verifier exists for, is refused rather than treated as unbound; with
 * any mode `strict`, an unbound token is refused. With every mode off, `cnf` is not looked at (Kong).
 * Failures are 401 invalid_token (RFC 6750 §3.1, RFC 9449 §7.1); proof failures are invalid_dpop_proof.
 */
export function enforceBinding (ctx: RequestContext, cnf: Confirmation | undefined | null, policy: BindingPolicy, presented: PresentedToken): void | Promise<void> {
  const { mtls, dpop } = policy
  if (mtls === 'off' && dpop === 'off') return
  if (cnf === null) throw invalidToken('the token\'s cnf is malformed (RFC 7800 §3.1, RFC 8705 §3.1, RFC 9449 §6)', BINDING)
  if (cnf?.unsupported !== undefined) throw invalidToken(`the token is bound by cnf member(s) ${cnf.unsupported.join(', ')}, which certbound cannot verify`, BINDING)
  const x5t = cnf?.['x5t#S256']
  const jkt = cnf?.jkt
  // every synchronous refusal first, so no started revocation check is left unobserved
  const verifier = policy.dpopVerifier
  if (jkt !== undefined) {
    if (dpop === 'off' || verifier === undefined) throw invalidToken('the token is DPoP-bound (cnf.jkt) and proof_of_possession_dpop is off on this route', BINDING)
    // RFC 9449 §7.2: a DPoP-bound token must not be accepted as a bearer token (no downgrade)
    if (presented.scheme !== 'dpop') throw invalidToken('a DPoP-bound token was sent with the Bearer scheme', BINDING)
  } else {
    // RFC 9449 §7.1: the DPoP scheme says the token is DPoP-bound; one that is not cannot be checked against the proof
    if (presented.scheme === 'dpop') throw invalidToken('the token was sent with the DPoP scheme but is not DPoP-bound (no cnf.jkt)', BINDING)
    if (x5t === undefined && mtls === 'strict') throw invalidToken('proof_of_possession_mtls is strict and the token is not certificate-bound (no cnf)', BINDING)
    if (x5t === undefined && dpop === 'strict') throw invalidToken('proof_of_possession_dpop is strict and the token is not DPoP-bound (no cnf.jkt)', BINDING)
  }
  let revocation: Promise<void> | undefined
  if (x5t !== undefined) {
    if (mtls === 'off') throw invalidToken('the token is certificate-bound (cnf."x5t#S256") and proof_of_possession_mtls is off on this route', BINDING)
    const src = policy.certificate(ctx)
    if (src.certificate === null) throw invalidToken(`certificate-bound token presented without a client certificate${src.reason === undefined ? '' : ': ' + src.reason}`, BINDING)
    if (!certificateMatches(x5t, src.certificate)) throw invalidToken('cnf."x5t#S256" does not match the client certificate', BINDING)
    const refused = policy.certificateRevoked?.(ctx, src.certificate, src.source)
    if (refused instanceof Promise) revocation = refused.then(throwIfRefused)
    else if (refused !== undefined) throw refused
  }
  if (jkt !== undefined) {
    const proof = (): Promise<void> => verifier!.verify(ctx, { token: presented.token, jkt }).then(noop)
    return revocation === undefined ? proof() : revocation.then(proof)
  }
  return revocation
}

function noop (): void {}

function throwIfRefused (err: GatewayError | undefined): void {
  if (err !== undefined) throw err
}
