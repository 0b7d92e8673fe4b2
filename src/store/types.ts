/**
 * The one seam for state that must agree across workers and nodes (Kong's kong.cache + cluster events; undici's
 * Dispatcher: one interface, several implementations). Plugins and the authorization server get it as
 * `deps.store`; nothing that must agree across processes lives in a module-level cache.
 *
 * Keys are chosen by the caller and namespaced by it (`dpop:jti:…`, `rl:…`, `as:revoked:…`); a backend adds its
 * own prefix (`gateway.store.redis.key_prefix`). Never put a raw token, secret or key in a key or a value: hash it.
 * All TTLs are milliseconds; all times come from the store's clock (`deps.now`), so tests drive them.
 */
export interface StateStore {
  /** `memory` or `redis`. */
  readonly backend: string
  /** The value stored under `key`, or undefined (absent or expired). */
  get(key: string): Promise<string | undefined>
  /** Store `value` under `key`, replacing any value; it expires after `ttlMs` (omitted: never). */
  set(key: string, value: string, ttlMs?: number): Promise<void>
  delete(key: string): Promise<void>
  /**
   * Store `value` under `key` only if no live value is there (replay detection: a DPoP `jti`). True when this call
   * stored it. Atomic across every worker and node sharing the store.
   */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>
  /**
   * Add each `by` to its counter and return the new values, in order, in one round trip. A counter is created at 0
   * with the entry's `ttlMs` on first increment and is not extended by later ones (fixed windows, like Kong's).
   */
  increment(entries: ReadonlyArray<{ readonly key: string, readonly by: number, readonly ttlMs: number }>): Promise<number[]>
  /** The revocation set: `id` (a hash, never a raw token) is revoked until `untilMs` (epoch ms, e.g. the token's exp). */
  revoke(id: string, untilMs: number): Promise<void>
  /**
   * Is `id` revoked? Answered synchronously from the local replica, kept current by change notification; a backend
   * whose replica may be stale beyond its documented bound answers `undefined` (the caller fails closed).
   */
  isRevoked(id: string): boolean | undefined
  /** Change notification: deliver `message` to every subscriber of `channel` on every worker and node. */
  publish(channel: string, message: string): Promise<void>
  /** Subscribe to `channel`; returns the unsubscribe function. Handlers never throw into the store. */
  subscribe(channel: string, handler: (message: string) => void): () => void
  /** For /status, /status/ready and the dashboard. */
  status(): StoreStatus
  close(): Promise<void>
  /**
   * Encrypts values that must not sit in a shared store in the clear (a generated private key), when the backend
   * needs it (redis, with gateway.store.secret). Absent: the backend's values never leave this node's processes.
   */
  readonly secretBox?: SecretBox
  /**
   * memory backend: keep the revocation set in this JSON file as well, loaded now and rewritten after each revoke by
   * the one process that owns the set (the primary with gateway.workers), so a restart keeps revocations and
   * workers never overwrite each other's. Other backends persist on their own and only import the file's entries.
   */
  persistRevocations?(file: string): Promise<void>
}

/** Authenticated encryption of store values (AES-256-GCM); `aad` binds a value to its key. */
export interface SecretBox {
  seal(plaintext: string, aad: string): string
  /** The plaintext, or undefined when the value was not sealed by this secret for this `aad`. */
  open(sealed: string, aad: string): string | undefined
}

/** Told of every round trip to a shared store (metrics: certbound_store_*). */
export interface StoreObserver {
  command(backend: string, op: string, seconds: number, ok: boolean): void
}

export interface StoreStatus {
  readonly backend: string
  readonly connected: boolean
  /** Last measured round trip to the shared store, in ms (absent for memory). */
  readonly latency_ms?: number
  /** Why it is not connected, or that the revocation replica is stale (absent when all is well). */
  readonly detail?: string
  /** memory: live keys evicted for room since start (gateway.store.max_keys), when any were. */
  readonly evictions?: number
}

/** Time as a dependency (jose's `currentDate`): epoch milliseconds. Tests pass a clock they move. */
export type Clock = () => number

export const systemClock: Clock = () => Date.now()
