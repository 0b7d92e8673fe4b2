import { LRUCache } from 'lru-cache'

/**
 * The per-process tier (L1) of a token plugin's verified-token cache, with single flight: concurrent requests
 * presenting one new token share one verification (one JWKS check, one introspection call). What it holds is
 * derived from the token and the IdP's answer, so a per-process copy is consistent — but not shared: behind it, for
 * the answers of a remote introspection endpoint, sits the shared tier (SharedTokenTier, src/auth/shared-token-tier.ts,
 * through deps.store) so that the other workers and nodes do not ask the IdP again: L1 → single flight → L2 → IdP →
 * L2 + L1. Locally verified JWTs stay in L1 only (the plugin READMEs give the measurement). What must agree across
 * workers and nodes — revocations, DPoP `jti` replay, nonce keys — is decided through the store seam on every
 * request, after this cache (the built-in AS's revocations: assertNotRevokedLocally in each plugin's grant).
 * Entries are never kept past `until` (the caller's bound: exp, cache TTL).
 */
export class VerifiedTokenCache<E> {
  private readonly lru: LRUCache<string, { readonly entry: E, readonly until: number }>
  private readonly pending = new Map<string, Promise<E>>()

  constructor (max: number, private readonly now: () => number) {
    this.lru = new LRUCache({ max })
  }

  /** A live entry, or undefined. */
  get (key: string): E | undefined {
    const hit = this.lru.get(key)
    if (hit === undefined) return undefined
    if (hit.until <= this.now()) { this.lru.delete(key); return undefined }
    return hit.entry
  }

  /** Remember `entry` until `until` (epoch ms); nothing is stored when that is not in the future. */
  set (key: string, entry: E, until: number): void {
    if (until > this.now()) this.lru.set(key, { entry, until })
  }

  delete (key: string): void { this.lru.delete(key) }

  /** Run `load` once for concurrent callers with the same key. */
  singleFlight (key: string, load: () => Promise<E>): Promise<E> {
    let p = this.pending.get(key)
    if (p === undefined) {
      p = load()
      this.pending.set(key, p)
      const clear = (): void => { this.pending.delete(key) }
      p.then(clear, clear)
    }
    return p
  }

  clear (): void {
    this.lru.clear()
    this.pending.clear()
  }
}
