/**
 * Everything a plugin may import from the core (Kong's PDK: plugins touch the gateway through it, never its
 * internals). eslint forbids plugins/ from importing any other module under src/ (eslint.config.js), so what is
 * exported here is the contract; a change here is a change for every plugin. Grouped as a plugin sees a request:
 * definition and lifecycle, the request context, answers (errors), credentials, certificates, headers, services.
 */

// definition, lifecycle, dependencies (create once at load; access/response/log per request)
export { definePlugin, PluginConfigError } from './pipeline/types.js'
export type { PluginDefinition, PluginInstance, PluginDeps, LocalServices, UpstreamHead } from './pipeline/types.js'
export type { HttpClient, HttpRequestOptions, HttpTlsOptions } from './http-client/types.js'
export type { Clock, StateStore } from './store/types.js'

// the request
export { RequestContext, StateKey, MULTIPLE } from './pipeline/context.js'
export type { Credential, Consumer, UpstreamHeaderView, VerifiedClientCertificate } from './pipeline/context.js'
export type { PeerCertificate, TlsIdentity } from './server/peer.js'

// answers: stable codes, RFC 6750 challenges
export { GatewayError, bearerChallenge, tokenMissing, invalidToken, invalidRequest, insufficientScope } from './errors/index.js'
export type { ErrorCode, ConfigErrorCode, GatewayErrorOptions, ErrCause } from './errors/index.js'

// bearer tokens and verified credentials (RFC 6750, RFC 8705 §3)
export { bearerToken } from './auth/bearer.js'
export { cnfThumbprint, safeEqual } from './auth/binding.js'
export { CREDENTIAL_HEADERS, claimHeaderValue, credentialFromClaims, credentialHeaders, sanitize } from './auth/credential.js'

// client certificates: chains, CRLs, certificate headers from a trusted TLS terminator
export {
  certificateFingerprint, certificateValidity, createTrustStore, parsePemCertificates, verifyChain,
} from './auth/verify-chain.js'
export type { ChainFailureReason, ChainResult, TrustStore } from './auth/verify-chain.js'
export { CrlLoadError, CrlStore } from './auth/crl.js'
export { CERTIFICATE_HEADER_FORMATS, createCertSource, nginxEscapeUriComponent } from './auth/cert-source.js'
export type { CertSource } from './auth/cert-source.js'

// upstream headers: hop-by-hop names and the gateway-wide strip set
export { HOP_BY_HOP, StripSet } from './proxy/headers.js'

// Kong consumers: the directory deps.consumers gives, mapping a request to one, the groups it authenticated with
export { AUTHENTICATED_GROUPS, CONSUMER_HEADERS, findConsumer, setConsumer } from './pipeline/consumers.js'
export type { ConsumerBy, ConsumerDirectory } from './pipeline/consumers.js'

// in-process services (the built-in authorization server as an issuer / introspection endpoint)
export { assertNotRevokedLocally, localIntrospectionKey, localIssuerKey } from './pipeline/local-issuer.js'
export { ServiceKey } from './pipeline/services.js'
export type { LocalIssuer } from './pipeline/local-issuer.js'

// token validation shared by every plugin that accepts OAuth 2.0 access tokens: where the token is (RFC 6750 §2,
// RFC 9449 §7), JWT validation (RFC 9068), introspection (RFC 7662), the cnf confirmation and its enforcement
// (RFC 8705 §3, RFC 9449 §6), DPoP proofs and nonces (RFC 9449), the challenge, the per-token verdict cache
export { extractToken } from './auth/token-extraction.js'
export type { PresentedToken } from './auth/token-extraction.js'
export { isCompactJws, JwtValidator } from './auth/jwt-validator.js'
export { IntrospectionClient } from './auth/introspection-client.js'
export { parseCnf } from './auth/cnf.js'
export type { Confirmation } from './auth/cnf.js'
export { enforceBinding } from './auth/enforce-binding.js'
export type { BindingPolicy } from './auth/enforce-binding.js'
export { createDpop, dpopSchemaFields, nextNonceResponse } from './auth/dpop/setup.js'
export type { DpopVerifier } from './auth/dpop/proof.js'
export type { Challenger } from './auth/challenge.js'
export { VerifiedTokenCache } from './auth/token-cache.js'
export { SharedTokenTier } from './auth/shared-token-tier.js'
export type { SharedAnswer } from './auth/shared-token-tier.js'

// revocation of client certificates: presented in a header by a trusted terminator, or checked online (OCSP, CRL
// distribution points, RFC 6960 / RFC 5280 §4.2.1.13) with the chain the plugin verified
export { createHeaderRevocationCheck, headerRevocationKeys } from './auth/revocation/header-certificate.js'
export type { HeaderRevocationCheck } from './auth/revocation/header-certificate.js'
export { admits, OnlineRevocationChecker, revocationState } from './auth/revocation/online-checker.js'
export { issuerIn } from './auth/revocation/issuer.js'
export { compileTrustedIps } from './auth/cert-source.js'

// the network: CIDR sets (trusted proxies, allow lists) and the client address they give (X-Forwarded-For)
export { CidrSet } from './net/cidr.js'
export { clientAddress } from './net/client-address.js'

// stores a plugin opens itself: its own Redis connection (gateway.store.redis's keys), and whether a store is
// in-process (no round trip worth batching)
export type { RedisConnectionInput } from './store/schema.js'
export { isInProcessStore } from './store/memory.js'
