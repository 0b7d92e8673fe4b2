import { LRUCache } from 'lru-cache'

/**
 * The verified-token cache of a token plugin, with single flight: concurrent requests presenting one new token
 * share one verification (one JWKS check, one introspection call). What it holds is derived from the token alone
 * (a signature check or the issuer's answer), so a per-process copy is safe; what must agree across workers and
 * nodes — DPoP `jti` replay, revocations, nonce keys — goes through the store seam (deps.store), never here.
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
