import { createHash, type X509Certificate } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { TlsIdentity, PeerCertificate } from '../server/peer.js'
import { safeEqual } from '../auth/binding.js'
import type { CompiledClient } from './clients.js'
import { formDecode, param, type FormParams } from './form-body.js'
import { OAuthError } from './oauth-error.js'
import { verifySecret } from './secret-hash.js'
import type { SecretCheckLimiter } from './secret-check-limiter.js'
import type { AuthMethod } from './schema.js'
import type { ClientRevocationCheck } from './client-revocation.js'

/** Verifies a client certificate's chain against the configured CAs (RFC 8705 §2.1). */
export type ChainVerifier = (cert: PeerCertificate) => { ok: true, chain?: readonly X509Certificate[] } | { ok: false, reason: string }

/** A client that proved who it is, and how. */
export interface AuthenticatedClient {
  readonly client: CompiledClient
  readonly method: AuthMethod
}

/** What the request presented, before we know whether it is right (for the log and the challenge). */
interface Presented {
  clientId: string | undefined
  basic: { id: string, secret: string } | undefined
  postSecret: string | undefined
  usedAuthorizationHeader: boolean
}

const GENERIC = 'client authentication failed'

/**
 * Client authentication for the token, introspection and revocation endpoints. Exactly one method per
 * request (RFC 6749 §2.3); the method must be the client's registered `token_endpoint_auth_method`.
 * Failure reasons go to the log (`detail`); the wire says only "client authentication failed".
 */
export class ClientAuthenticator {
  /** Successful scrypt verifications, so a legitimate client does not pay scrypt on every request. */
  private readonly verified = new LRUCache<string, true>({ max: 1024, ttl: 10 * 60_000 })
  /**
   * Secrets that recently failed, per client (client_id + SHA-256 of the secret): a flood that repeats wrong
   * secrets is refused without scrypt. Bounded in entries and time; per process, like `verified`.
   */
  private readonly failed = new LRUCache<string, true>({ max: 4096, ttl: 10 * 60_000 })

  constructor (
    private readonly clients: ReadonlyMap<string, CompiledClient>,
    private readonly verifyChain: ChainVerifier,
    private readonly limiter?: SecretCheckLimiter,
    /** Revocation of tls_client_auth certificates (revocation_check_mode); undefined = SKIP. */
    private readonly revocation?: ClientRevocationCheck,
  ) {}

  async authenticate (req: IncomingMessage, params: FormParams, tls: TlsIdentity | null): Promise<AuthenticatedClient> {
    const p = presented(req, params)
    const fail = (detail: string, description = GENERIC): OAuthError =>
      new OAuthError('invalid_client', description, { detail, basicChallenge: p.usedAuthorizationHeader })
    if (p.clientId === undefined) {
      throw fail('no client_id and no Authorization header', 'client authentication is required (RFC 8705 §2: certificate-authenticated clients send client_id)')
    }
    const client = this.clients.get(p.clientId)
    const secret = p.basic?.secret ?? p.postSecret
    if (client === undefined) {
      if (secret !== undefined) safeEqual(secret, secret) // keep the timing close to a wrong secret for a known client
      throw fail('unknown client_id')
    }
    switch (client.method) {
      case 'client_secret_basic':
      case 'client_secret_post': {
        const used = p.basic !== undefined ? 'client_secret_basic' : (p.postSecret !== undefined ? 'client_secret_post' : undefined)
        if (used === undefined) throw fail(`no client secret presented; the client is registered for ${client.method}`)
        if (used !== client.method) throw fail(`presented ${used}; the client is registered for ${client.method}`)
        if (!await this.secretMatches(client, secret!)) throw fail('wrong client secret')
        return { client, method: client.method }
      }
      case 'tls_client_auth':
      case 'self_signed_tls_client_auth': {
        if (p.basic !== undefined || p.postSecret !== undefined) throw fail(`presented a client secret; the client is registered for ${client.method}`)
        const cert = tls?.certificate ?? null
        if (cert === null) throw fail('no TLS client certificate on the connection', `client authentication failed: ${client.method} needs a TLS client certificate`)
        const why = client.method === 'tls_client_auth' ? await this.checkPki(client, cert) : checkSelfSigned(client, cert)
        if (why !== undefined) throw fail(`${why} (certificate subject "${cert.subject}", x5t#S256 ${cert.x5tS256})`)
        return { client, method: client.method }
      }
    }
  }

  /** RFC 8705 §2.1: chains to ca_certificates, and carries the registered subject. Undefined = ok. */
  private async checkPki (client: CompiledClient, cert: PeerCertificate): Promise<string | undefined> {
    const chain = this.verifyChain(cert)
    if (!chain.ok) return chain.reason
    if (!client.subject!.matches(cert)) return `the certificate does not match ${client.subject!.describe}`
    // after the cheap checks: a stranger's certificate never causes an OCSP request
    if (this.revocation !== undefined) return await this.revocation(cert, chain.chain ?? [cert.x509, ...cert.chain])
    return undefined
  }

  private async secretMatches (client: CompiledClient, secret: string): Promise<boolean> {
    if (client.secret !== undefined) return safeEqual(secret, client.secret)
    if (client.secretHash === undefined) return false
    const key = client.id + '\0' + createHash('sha256').update(secret).digest('base64url')
    if (this.verified.has(key)) return true
    if (this.failed.has(key)) return false
    const hash = client.secretHash
    const ok = this.limiter === undefined ? await verifySecret(secret, hash) : await this.limiter.run(client.id, () => verifySecret(secret, hash))
    if (ok) this.verified.set(key, true)
    else this.failed.set(key, true)
    return ok
  }
}

/** RFC 8705 §2.2: the presented certificate is one registered for the client, and is within its validity. */
function checkSelfSigned (client: CompiledClient, cert: PeerCertificate): string | undefined {
  const match: X509Certificate | undefined = client.selfSigned.find(c => c.raw.equals(cert.der))
  if (match === undefined) return 'the certificate is not one registered for the client'
  const now = Date.now()
  if (now < cert.validFrom.getTime() || now > cert.validTo.getTime()) return `the registered certificate is not valid now (${cert.validFrom.toISOString()} – ${cert.validTo.toISOString()})`
  return undefined
}

/** Which credentials the request carries; refuses more than one method (RFC 6749 §2.3). */
function presented (req: IncomingMessage, params: FormParams): Presented {
  const authz = authorizationHeader(req)
  let basic: Presented['basic']
  if (authz !== undefined) {
    const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(authz)
    const fail = (d: string) => new OAuthError('invalid_client', GENERIC, { detail: d, basicChallenge: true })
    if (m === null) throw fail(/^Basic\b/i.test(authz) ? 'malformed Basic credentials' : 'unsupported Authorization scheme')
    const decoded = Buffer.from(m[1], 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) throw fail('malformed Basic credentials (no ":")')
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding
    const id = formDecode(decoded.slice(0, colon))
    const secret = formDecode(decoded.slice(colon + 1))
    if (id === undefined || secret === undefined || id === '') throw fail('malformed Basic credentials (bad percent-encoding)')
    basic = { id, secret }
  }
  const postSecret = param(params, 'client_secret')
  const bodyId = param(params, 'client_id')
  if (params.has('client_assertion') || params.has('client_assertion_type')) {
    throw new OAuthError('invalid_client', 'client authentication failed: private_key_jwt and client_secret_jwt are not supported', { basicChallenge: authz !== undefined })
  }
  if (basic !== undefined && postSecret !== undefined) {
    throw new OAuthError('invalid_request', 'use exactly one client authentication method (RFC 6749 §2.3): Authorization header or client_secret, not both')
  }
  if (basic !== undefined && bodyId !== undefined && bodyId !== basic.id) {
    throw new OAuthError('invalid_request', 'client_id in the body differs from the one in the Authorization header')
  }
  return { clientId: basic?.id ?? bodyId, basic, postSecret, usedAuthorizationHeader: authz !== undefined }
}

/** The Authorization header; more than one is refused (Node keeps only the first). */
function authorizationHeader (req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders
  let found: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 13 && raw[i].toLowerCase() === 'authorization') {
      if (found !== undefined) throw new OAuthError('invalid_request', 'more than one Authorization header')
      found = raw[i + 1]
    }
  }
  return found
}
