import { createHash, timingSafeEqual } from 'node:crypto'
import { parseSecretHash, verifySecret, type SecretHash } from '../../authorization-server/secret-hash.js'

/** A verified Authorization header is remembered this long: the page polls every few seconds, scrypt costs tens of ms. */
const REMEMBER_MS = 60_000
const MAX_REMEMBERED = 32
/**
 * scrypt verifications running at once (each holds 32 MiB and a libuv thread for tens of ms): past this, a request
 * is answered "busy" at once, so a flood of wrong passwords cannot exhaust memory or starve the gateway's threadpool.
 */
const MAX_CONCURRENT = 2

export interface BasicAuthConfig { readonly username: string, readonly password_hash: string }

/**
 * HTTP Basic (RFC 7617) against a scrypt hash from the config (the same `$scrypt$` format and verifier as the
 * authorization server's client_secret_hash). Credentials that verified are remembered by their SHA-256 (never the
 * header itself) for a minute, so polling does not cost an scrypt per request; a wrong password always costs one.
 */
export class BasicAuthVerifier {
  private readonly hash: SecretHash | undefined
  private readonly remembered = new Map<string, number>()
  private readonly user: Buffer

  constructor (readonly config: BasicAuthConfig, private readonly now: () => number = Date.now) {
    this.hash = parseSecretHash(config.password_hash)
    this.user = Buffer.from(config.username, 'utf8')
  }

  private running = 0

  /** 'busy': too many verifications are running; try again shortly (the caller answers 503). */
  async verify (authorization: string | undefined): Promise<boolean | 'busy'> {
    if (this.hash === undefined || authorization === undefined) return false
    const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(authorization)
    if (m === null) return false
    const key = createHash('sha256').update(authorization).digest('base64')
    const t = this.now()
    const until = this.remembered.get(key)
    if (until !== undefined && until > t) return true
    const decoded = Buffer.from(m[1], 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return false
    const user = Buffer.from(decoded.slice(0, colon), 'utf8')
    // compare the user name in constant time too; the password check runs either way, so timing tells nothing
    const userOk = user.length === this.user.length && timingSafeEqual(user, this.user)
    if (this.running >= MAX_CONCURRENT) return 'busy'
    this.running++
    let passOk: boolean
    try { passOk = await verifySecret(decoded.slice(colon + 1), this.hash) } finally { this.running-- }
    if (!userOk || !passOk) return false
    if (this.remembered.size >= MAX_REMEMBERED) {
      for (const [k, u] of this.remembered) if (u <= t) this.remembered.delete(k)
      if (this.remembered.size >= MAX_REMEMBERED) this.remembered.clear()
    }
    this.remembered.set(key, t + REMEMBER_MS)
    return true
  }
}
