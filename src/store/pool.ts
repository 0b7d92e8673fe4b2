import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { MemoryStore } from './memory.js'
import { RedisStore } from './redis.js'
import { redisConnectionSchema, type RedisConnectionInput } from './schema.js'
import type { Clock, StateStore, StoreObserver } from './types.js'

export interface StorePoolOptions {
  readonly now: Clock
  readonly logger?: Logger
  readonly observer?: StoreObserver
  /** `certbound validate`: hand out memory stores, connect to nothing. */
  readonly dryRun?: boolean
}

interface Pooled { store: StateStore, refs: number }

/**
 * `deps.openStore`: one Redis-backed StateStore per distinct connection (url, credentials, prefix, timeouts, CAs),
 * shared by every plugin instance that asks for it and kept across reloads — the new config's instances open
 * theirs before the old ones close, so a reload does not reconnect. Each handle's close() releases one reference;
 * the connection closes with the last.
 */
export class StorePool {
  private readonly pool = new Map<string, Pooled>()

  constructor (private readonly o: StorePoolOptions) {}

  open (input: RedisConnectionInput, trustedCa: readonly string[] = []): StateStore {
    const redis = redisConnectionSchema.parse(input)
    const id = createHash('sha256').update(JSON.stringify([redis, trustedCa])).digest('base64url')
    let p = this.pool.get(id)
    if (p === undefined) {
      const store: StateStore = this.o.dryRun === true
        ? new MemoryStore({ now: this.o.now })
        : new RedisStore({ redis, now: this.o.now, trustedCa, logger: this.o.logger?.child({ component: 'store', key_prefix: redis.key_prefix }), observer: this.o.observer })
      p = { store, refs: 0 }
      this.pool.set(id, p)
    }
    p.refs++
    const entry = p
    let released = false
    const s = entry.store
    return Object.freeze({
      backend: s.backend,
      get: (k: string) => s.get(k),
      set: (k: string, v: string, ttl?: number) => s.set(k, v, ttl),
      delete: (k: string) => s.delete(k),
      setIfAbsent: (k: string, v: string, ttl: number) => s.setIfAbsent(k, v, ttl),
      increment: (e: ReadonlyArray<{ key: string, by: number, ttlMs: number }>) => s.increment(e),
      revoke: (id: string, until: number) => s.revoke(id, until),
      isRevoked: (id: string) => s.isRevoked(id),
      publish: (c: string, m: string) => s.publish(c, m),
      subscribe: (c: string, h: (m: string) => void) => s.subscribe(c, h),
      status: () => s.status(),
      close: async (): Promise<void> => {
        if (released) return
        released = true
        if (--entry.refs > 0) return
        if (this.pool.get(id) === entry) this.pool.delete(id)
        await s.close()
      },
    })
  }

  /** Every pooled connection's status (for /status). */
  statuses (): Array<ReturnType<StateStore['status']>> { return [...this.pool.values()].map(p => p.store.status()) }

  async close (): Promise<void> {
    const all = [...this.pool.values()]
    this.pool.clear()
    await Promise.allSettled(all.map(p => p.store.close()))
  }
}
