import { hash } from 'node:crypto'
import type { Logger } from 'pino'
import { isInProcessStore } from '../store/memory.js'
import type { Clock, StateStore } from '../store/types.js'
import type { TokenCacheMetrics } from './token-cache-metrics.js'

/** An IdP's answer about one token, as every worker and node sharing the store may reuse it. */
export interface SharedAnswer {
  /** Epoch ms (deps.now) the IdP gave the answer: a reader with a shorter cache TTL than the writer's stops earlier. */
  readonly at: number
  /** Epoch ms after which nobody may use it: the writer's bound (the token's exp, its cache TTL). */
  readonly until: number
  /** The IdP's answer (an RFC 7662 response): never the token, never a client secret. */
  readonly claims: Readonly<Record<string, unknown>>
}

export interface SharedTierOptions {
  readonly store: StateStore
  readonly now: Clock
  readonly logger: Logger
  readonly metrics?: TokenCacheMetrics
  /** The plugin, for metrics. */
  readonly plugin: string
  /**
   * Everything the IdP's answer depended on (the introspection endpoint, the gateway's client_id there): hashed into
   * every key, so two routes asking different IdPs, or one IdP as different clients, never share an answer. A
   * function because openid-connect discovers its endpoint; undefined: none known (the tier is skipped).
   */
  readonly scope: () => readonly string[] | undefined
  /** How long a lookup or a write may hold a request before the token is verified without the store (ms). */
  readonly waitMs?: number
}

/** A shared store that does not answer within this must not hold a request (it is only a cache). */
const DEFAULT_WAIT_MS = 250
/** After a failure the tier is bypassed this long (deps.now), so an outage costs no wait per request. */
const BACKOFF_MS = 5_000
/** At most one warning per this many ms (deps.now): an outage is one line, not one per request. */
const LOG_EVERY_MS = 60_000
const PREFIX = 'tok:'

/**
 * Why the shared tier cannot be used with `store`, or undefined when it can:
 * - this process's own memory store (no workers): the per-process cache already is the only copy;
 * - Redis without gateway.store.secret: an answer read from the store is trusted like the IdP's, so a value anyone
 *   with write access to Redis could forge would turn Redis access into a way past authentication. With the secret
 *   every value is sealed (AES-256-GCM, the key as AAD: src/store/secret-box.ts), which also keeps the claims
 *   (personal data) out of Redis in the clear. The workers' memory store (IPC) never leaves this node's processes.
 */
export function sharedTierUnavailable (store: StateStore): string | undefined {
  if (isInProcessStore(store)) return 'the store is this process\'s own memory: the per-process cache is the only copy'
  if (store.backend !== 'memory' && store.secretBox === undefined) return `gateway.store.secret is not set: answers in the ${store.backend} store could not be authenticated`
  return undefined
}

/**
 * The second tier of a verified-token cache (Kong's kong.cache L2, through the store seam): IdP answers shared by
 * every worker and node, so each does not ask the IdP again about a token another has asked about. Keys are
 * `tok:` + a scope hash + SHA-256(token), never the token. A store failure is never the client's: a failed lookup
 * is a miss (the token is verified at the IdP), a failed write is ignored; both are counted and logged at most once
 * a minute. Single flight is the caller's (VerifiedTokenCache): this is called once per token per process.
 */
export class SharedTokenTier {
  private scopeParts = ''
  private scopeHash = ''
  private downUntil = Number.NEGATIVE_INFINITY
  private loggedAt = Number.NEGATIVE_INFINITY
  private readonly waitMs: number

  constructor (private readonly o: SharedTierOptions) {
    this.waitMs = o.waitMs ?? DEFAULT_WAIT_MS
  }

  /** The tier for `o.store`, or undefined (with the reason logged once at debug) when it cannot be used. */
  static create (o: SharedTierOptions): SharedTokenTier | undefined {
    const why = sharedTierUnavailable(o.store)
    if (why !== undefined) {
      // an operator who runs Redis expects sharing: say at info why there is none (one process: nothing to say)
      const level = isInProcessStore(o.store) ? 'debug' : 'info'
      o.logger[level]({ plugin: o.plugin }, `verified-token cache: per process only (${why})`)
      return undefined
    }
    return new SharedTokenTier(o)
  }

  /** The store key of `token` (undefined: no scope known yet). */
  keyOf (token: string): string | undefined {
    const parts = this.o.scope()
    if (parts === undefined) return undefined
    const joined = JSON.stringify(parts)
    if (joined !== this.scopeParts) {
      this.scopeParts = joined
      this.scopeHash = hash('sha256', 'certbound token cache v1\0' + joined, 'base64url').slice(0, 16)
    }
    return PREFIX + this.scopeHash + ':' + hash('sha256', token, 'base64url')
  }

  /** A live answer another worker or node stored, or undefined (none, expired on deps.now, unreadable, or the store failed). */
  async get (token: string): Promise<SharedAnswer | undefined> {
    const key = this.keyOf(token)
    if (key === undefined || this.o.now() < this.downUntil) return undefined
    let raw: string | undefined
    try {
      raw = await this.bounded(this.o.store.get(key), 'get')
    } catch (err) {
      this.failed('get', err)
      return undefined
    }
    const a = raw === undefined ? undefined : this.decode(raw, key)
    this.o.metrics?.count(this.o.plugin, a === undefined ? 'miss' : 'hit')
    return a
  }

  /** Share `answer` until `answer.until` (the store's TTL is until - now, on deps.now). Never rejects. */
  async set (token: string, answer: SharedAnswer): Promise<void> {
    const key = this.keyOf(token)
    const ttl = answer.until - this.o.now()
    if (key === undefined || !(ttl > 0) || !Number.isFinite(ttl) || this.o.now() < this.downUntil) return
    // an IdP that echoes the token in its answer must not put it in the store
    const claims: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(answer.claims)) if (v !== token) claims[k] = v
    const json = JSON.stringify({ v: 1, at: answer.at, until: answer.until, claims })
    const box = this.o.store.secretBox
    try {
      await this.bounded(this.o.store.set(key, box === undefined ? json : box.seal(json, key), Math.ceil(ttl)), 'set')
    } catch (err) {
      this.failed('set', err)
    }
  }

  private decode (raw: string, key: string): SharedAnswer | undefined {
    const box = this.o.store.secretBox
    const json = box === undefined ? raw : box.open(raw, key)
    if (json === undefined) return undefined // not sealed with this gateway.store.secret: never trusted
    let v: unknown
    try { v = JSON.parse(json) } catch { return undefined }
    if (v === null || typeof v !== 'object') return undefined
    const { v: version, at, until, claims } = v as Record<string, unknown>
    if (version !== 1 || typeof at !== 'number' || typeof until !== 'number' || claims === null || typeof claims !== 'object' || Array.isArray(claims)) return undefined
    // the store's own TTL runs on its clock; the bound is on ours (deps.now)
    if (until <= this.o.now()) return undefined
    return { at, until, claims: claims as Record<string, unknown> }
  }

  private bounded<T> (p: Promise<T>, op: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      p,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.waitMs} ms (${op})`)), this.waitMs)
        timer.unref()
      }),
    ]).finally(() => clearTimeout(timer))
  }

  private failed (op: 'get' | 'set', err: unknown): void {
    const now = this.o.now()
    this.downUntil = now + BACKOFF_MS
    this.o.metrics?.count(this.o.plugin, op === 'get' ? 'get_error' : 'set_error')
    if (now - this.loggedAt < LOG_EVERY_MS) return
    this.loggedAt = now
    const detail = (err as { detail?: unknown }).detail
    this.o.logger.warn({ plugin: this.o.plugin, op, backend: this.o.store.backend, err: typeof detail === 'string' ? detail : (err as Error).message },
      `verified-token cache: the shared store failed; tokens are verified at the IdP without it for ${BACKOFF_MS / 1000} s (logged at most once a minute)`)
  }
}
