import { randomBytes } from 'node:crypto'
import { SignJWT, jwtVerify, type JWTPayload, type JWTHeaderParameters } from 'jose'
import type { KeySet } from './signing-keys.js'
import { revocationUnknown, type RevocationStore } from './revocation-store.js'

/** Longer strings are not tokens we issued (ours are well under 2 KiB): refused before any parsing. */
const MAX_TOKEN_LENGTH = 8192

export interface IssueRequest {
  readonly clientId: string
  readonly scopes: readonly string[]
  readonly audience: readonly string[]
  readonly ttl: number
  /** RFC 8705 §3.1 thumbprint to bind to, or undefined for an unbound token. */
  readonly x5tS256: string | undefined
  /** RFC 9449 §6.1 JWK thumbprint to bind to (a DPoP-bound token); at most one of x5tS256 and jkt. */
  readonly jkt?: string | undefined
}

export interface IssuedToken {
  readonly token: string
  readonly claims: Readonly<AccessTokenClaims>
}

/** RFC 9068 §2.2 claims of our access tokens. */
export interface AccessTokenClaims extends JWTPayload {
  iss: string
  sub: string
  aud: string | string[]
  exp: number
  iat: number
  nbf: number
  jti: string
  client_id: string
  scope?: string
  cnf?: { 'x5t#S256': string } | { jkt: string }
}

/** Issues and verifies the server's JWT access tokens (RFC 9068: `typ: at+jwt`, `kid` in the header). */
export class AccessTokens {
  private readonly algorithms: string[]

  constructor (
    readonly issuer: string,
    private readonly keys: KeySet,
    private readonly revocations: RevocationStore,
    /** The gateway's clock (deps.now): iat/nbf/exp and verification agree with every plugin's window. */
    private readonly now: () => number = Date.now,
  ) {
    this.algorithms = [...new Set(keys.keys.map(k => k.alg))]
  }

  async issue (r: IssueRequest): Promise<IssuedToken> {
    const now = Math.floor(this.now() / 1000)
    const claims: AccessTokenClaims = {
      iss: this.issuer,
      sub: r.clientId, // RFC 9068 §2.2: for client credentials, the client itself
      aud: r.audience.length === 1 ? r.audience[0] : [...r.audience],
      exp: now + r.ttl,
      iat: now,
      nbf: now,
      jti: randomBytes(16).toString('base64url'),
      client_id: r.clientId,
    }
    if (r.scopes.length > 0) claims.scope = r.scopes.join(' ')
    if (r.x5tS256 !== undefined) claims.cnf = { 'x5t#S256': r.x5tS256 }
    else if (r.jkt !== undefined) claims.cnf = { jkt: r.jkt }
    const k = this.keys.signing
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: k.alg, kid: k.kid, typ: 'at+jwt' })
      .sign(k.privateKey)
    return { token, claims }
  }

  /**
   * Verify signature, issuer, type and lifetime. Undefined for anything that is not a live token we issued
   * (revocation is checked separately: see `introspect`).
   */
  async verify (token: string): Promise<AccessTokenClaims | undefined> {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) return undefined
    try {
      const { payload } = await jwtVerify<AccessTokenClaims>(token, (header: JWTHeaderParameters) => {
        const key = header.kid === undefined ? undefined : this.keys.byKid.get(header.kid)
        if (key === undefined || key.alg !== header.alg) throw new Error('unknown kid')
        return key.publicKey
      }, {
        issuer: this.issuer,
        typ: 'at+jwt',
        algorithms: this.algorithms,
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
        currentDate: new Date(this.now()),
      })
      if (typeof payload.jti !== 'string' || typeof payload.client_id !== 'string') return undefined
      return payload
    } catch {
      return undefined
    }
  }

  /**
   * RFC 7662 §2.2: `{active: false}` for anything invalid, expired, revoked or not ours (no reason given);
   * otherwise the token's claims with `active: true` and `token_type`.
   */
  async introspect (token: string): Promise<Record<string, unknown>> {
    const c = await this.verify(token)
    if (c === undefined) return { active: false }
    const revoked = this.revocations.isRevoked(c.jti)
    if (revoked === undefined) throw revocationUnknown()
    if (revoked) return { active: false }
    const out: Record<string, unknown> = { active: true }
    if (c.scope !== undefined) out.scope = c.scope
    out.client_id = c.client_id
    // RFC 9449 §6.2: a DPoP-bound token introspects as token_type DPoP with cnf.jkt
    out.token_type = c.cnf !== undefined && 'jkt' in c.cnf ? 'DPoP' : 'Bearer'
    out.exp = c.exp
    out.iat = c.iat
    if (c.nbf !== undefined) out.nbf = c.nbf
    out.sub = c.sub
    out.aud = c.aud
    out.iss = c.iss
    out.jti = c.jti
    if (c.cnf !== undefined) out.cnf = c.cnf
    return out
  }
}
