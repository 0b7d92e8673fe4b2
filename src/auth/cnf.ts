/**
 * The confirmation (`cnf`, RFC 7800) of a token: which key or certificate the token is bound to. RFC 8705 §3.1
 * `x5t#S256` binds to a TLS client certificate, RFC 9449 §6 `jkt` to a DPoP key. Members certbound cannot verify
 * (`jwk`, `kid`, `jku`…) are kept by name so a binding check can refuse them instead of treating the token as unbound.
 */
export interface Confirmation {
  readonly 'x5t#S256'?: string
  readonly jkt?: string
  /** Names of members no verifier exists for. */
  readonly unsupported?: readonly string[]
}

/** A base64url SHA-256 digest (both members are one): 43 characters, no padding. */
const SHA256_B64URL = /^[A-Za-z0-9_-]{43}$/

/** The `cnf` of a claim set: undefined if absent, null if present but malformed. */
export function parseCnf (claims: Readonly<Record<string, unknown>>): Confirmation | undefined | null {
  const cnf = claims.cnf
  if (cnf === undefined) return undefined
  if (cnf === null || typeof cnf !== 'object' || Array.isArray(cnf)) return null
  const out: { 'x5t#S256'?: string, jkt?: string, unsupported?: string[] } = {}
  for (const [k, v] of Object.entries(cnf as Record<string, unknown>)) {
    if (k === 'x5t#S256' || k === 'jkt') {
      if (typeof v !== 'string' || !SHA256_B64URL.test(v)) return null
      out[k] = v
    } else {
      (out.unsupported ??= []).push(k)
    }
  }
  return Object.freeze(out)
}
