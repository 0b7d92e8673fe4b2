import type { Clock, SecretBox, StateStore, StoreStatus } from './types.js'
import { readRevocationFile, writeRevocationFile } from './revocation-file.js'

export interface MemoryStoreOptions {
  readonly now: Clock
  /**
   * Most live keys (values, counters, set-if-absent markers); beyond it, after the expired ones, those that expire
   * soonest are evicted (gateway.store.max_keys). Default 100 000.
   */
  readonly maxKeys?: number
  /** false: persistRevocations reads the file but never writes it (`certbound validate`). Default true. */
  readonly writeFiles?: boolean
  /**
   * The backend this store stands in for (`certbound validate` compiles a config that names Redis without connecting
   * to it): what `backend` reports, so plugins decide at validation as they will at start. Default `memory`.
   */
  readonly standInFor?: string
  /** The stand-in's `secretBox` (gateway.store.secret), so a config that needs one validates as it will start. */
  readonly secretBox?: SecretBox
}

/** `once`: made by setIfAbsent (a replay marker), whose eviction setIfAbsent must remember. */
interface Entry { value: string, expires: number, once?: true }

/** Default gateway.store.max_keys: ~20 MB of keys; DPoP replay markers at 300 s proofs fill it at ~330 proofs/s. */
export const DEFAULT_MAX_KEYS = 100_000

/**
 * The `memory` backend for one process: a Map with expiry, bounded. Expired entries are dropped when read and
 * swept when the map is full; if live keys with a TTL still fill it, the tenth that expires soonest is evicted (the least
 * lost: a counter's window nearly over, a replay marker nearly due). The revocation set is not bounded by
 * `maxKeys` (a revocation is never evicted early; it is dropped only once its token has expired).
 *
 * Eviction must never turn setIfAbsent into a yes for a key it once held (a DPoP proof replayed once its `jti`
 * marker was evicted): the store remembers the latest expiry among the setIfAbsent keys it has evicted, and setIfAbsent answers no for an
 * absent key that would expire no later than that. A replay presents the same proof, so the same absolute expiry as
 * the evicted marker, and is refused; a fresh proof expires later and passes. Under a sustained rate beyond
 * maxKeys per proof lifetime, proofs older than the store's turnover are refused (fail closed), never accepted.
 */
export class MemoryStore implements StateStore {
  readonly backend: string
  readonly secretBox: SecretBox | undefined
  private readonly now: Clock
  private readonly maxKeys: number
  private readonly entries = new Map<string, Entry>()
  /** The latest expiry among live keys evicted for room (epoch ms): see setIfAbsent. */
  private evictedUntil = Number.NEGATIVE_INFINITY
  private evictions = 0
  private readonly revoked = new Map<string, number>()
  private readonly channels = new Map<string, Set<(m: string) => void>>()

  constructor (opts: MemoryStoreOptions) {
    this.backend = opts.standInFor ?? 'memory'
    this.secretBox = opts.secretBox
    this.now = opts.now
    this.maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS
    this.writeFiles = opts.writeFiles ?? true
  }

  private live (key: string): Entry | undefined {
    const e = this.entries.get(key)
    if (e === undefined) return undefined
    if (e.expires <= this.now()) { this.entries.delete(key); return undefined }
    return e
  }

  private put (key: string, value: string, ttlMs: number | undefined, once?: true): void {
    this.entries.delete(key)
    if (this.entries.size >= this.maxKeys) this.makeRoom()
    const expires = ttlMs === undefined ? Number.POSITIVE_INFINITY : this.now() + ttlMs
    this.entries.set(key, once === undefined ? { value, expires } : { value, expires, once })
  }

  private makeRoom (): void {
    const now = this.now()
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k)
    if (this.entries.size < this.maxKeys) return
    // Still full of live keys: evict the tenth that expires soonest, in one sweep rather than one key at a time
    // (a sort of 100 000 expiries every 10 000 inserts: a few µs per insert). Keys without a TTL (the authorization
    // server's signing keys) are never evicted: they are few, and losing one would invalidate every token.
    const expiries: number[] = []
    for (const e of this.entries.values()) if (e.expires !== Number.POSITIVE_INFINITY) expiries.push(e.expires)
    if (expiries.length === 0) return
    const finite = Float64Array.from(expiries).sort()
    const quota = Math.min(finite.length, Math.max(1, Math.floor(this.maxKeys / 10)))
    const cut = finite[quota - 1]
    let atCut = quota - finite.findIndex(x => x === cut) // how many keys expiring exactly at `cut` go
    for (const [k, e] of this.entries) {
      if (e.expires > cut || (e.expires === cut && atCut-- <= 0)) continue
      this.entries.delete(k)
      this.evictions++
      if (e.once && e.expires > this.evictedUntil) this.evictedUntil = e.expires
    }
  }

  async get (key: string): Promise<string | undefined> { return this.live(key)?.value }
  async set (key: string, value: string, ttlMs?: number): Promise<void> { this.put(key, value, ttlMs) }
  async delete (key: string): Promise<void> { this.entries.delete(key) }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.live(key) !== undefined) return false
    // it may have been here and evicted for room: a key expiring no later than an evicted one cannot be told apart
    if (this.now() + ttlMs <= this.evictedUntil) return false
    this.put(key, value, ttlMs, true)
    return true
  }

  async increment (entries: ReadonlyArray<{ key: string, by: number, ttlMs: number }>): Promise<number[]> {
    return entries.map(({ key, by, ttlMs }) => {
      const e = this.live(key)
      if (e === undefined) { this.put(key, String(by), ttlMs); return by }
      const n = Number(e.value) + by
      e.value = String(n)
      return n
    })
  }

  async revoke (id: string, untilMs: number): Promise<void> {
    const prev = this.revoked.get(id)
    if (prev !== undefined && prev >= untilMs) return await this.writing
    this.revoked.set(id, untilMs)
    await this.persist()
  }

  /** Every live revocation (the primary hands them to a worker that starts). */
  revocations (): Map<string, number> {
    const now = this.now()
    for (const [id, until] of this.revoked) if (until <= now) this.revoked.delete(id)
    return new Map(this.revoked)
  }

  private file: string | undefined
  private readonly writeFiles: boolean
  private writing: Promise<void> = Promise.resolve()

  async persistRevocations (file: string): Promise<void> {
    for (const [id, until] of await readRevocationFile(file, this.now())) {
      const prev = this.revoked.get(id)
      if (prev === undefined || prev < until) this.revoked.set(id, until)
    }
    if (!this.writeFiles) return
    this.file = file
    await this.persist()
  }

  /** Serialised whole-set rewrites by the one owner of the set: a later write always carries every earlier revocation. */
  private persist (): Promise<void> {
    const file = this.file
    if (file === undefined) return Promise.resolve()
    const next = this.writing.catch(() => undefined).then(() => writeRevocationFile(file, this.revoked, this.now()))
    this.writing = next
    return next
  }

  isRevoked (id: string): boolean {
    const until = this.revoked.get(id)
    if (until === undefined) return false
    if (until <= this.now()) { this.revoked.delete(id); return false }
    return true
  }

  async publish (channel: string, message: string): Promise<void> {
    for (const h of this.channels.get(channel) ?? []) {
      try { h(message) } catch { /* a subscriber's fault is its own */ }
    }
  }

  subscribe (channel: string, handler: (message: string) => void): () => void {
    let set = this.channels.get(channel)
    if (set === undefined) this.channels.set(channel, set = new Set())
    set.add(handler)
    return () => { set.delete(handler) }
  }

  status (): StoreStatus {
    if (this.evictions === 0) return { backend: this.backend, connected: true }
    return {
      backend: this.backend,
      connected: true,
      evictions: this.evictions,
      detail: `${this.evictions} live keys evicted for room (max_keys ${this.maxKeys}): counters restarted early, and set-if-absent refuses keys expiring before ${Number.isFinite(this.evictedUntil) ? new Date(this.evictedUntil).toISOString() : 'none'}`,
    }
  }
  async close (): Promise<void> { this.channels.clear(); await this.writing.catch(() => undefined) }
}

/**
 * Is `store` this process's own memory (not a worker's channel to the primary, not Redis)? Its operations cost no
 * round trip, so a caller gains nothing by batching them.
 */
export function isInProcessStore (store: Pick<StateStore, 'backend'>): boolean {
  return store instanceof MemoryStore
}
