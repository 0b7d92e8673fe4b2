import type { Logger } from 'pino'
import { MemoryStore } from './memory.js'
import { RedisStore } from './redis.js'
import { storeBackend, type StoreConfig } from './schema.js'
import type { Clock, StateStore, StoreObserver } from './types.js'

export interface CreateStoreOptions {
  readonly now: Clock
  readonly logger?: Logger
  readonly observer?: StoreObserver
  /** gateway.trusted_certificates (PEM). */
  readonly trustedCa?: readonly string[]
}

/** The store gateway.store asks for (memory in one process; a cluster worker gets an IpcStore instead). */
export function createStore (cfg: StoreConfig | undefined, o: CreateStoreOptions): StateStore {
  if (storeBackend(cfg) === 'memory' || cfg?.redis === undefined) return new MemoryStore({ now: o.now, maxKeys: cfg?.max_keys })
  return new RedisStore({
    redis: cfg.redis,
    now: o.now,
    trustedCa: o.trustedCa,
    logger: o.logger?.child({ component: 'store' }),
    observer: o.observer,
    replicaMaxAgeMs: cfg.replica_max_age,
    resyncIntervalMs: cfg.resync_interval,
    secret: cfg.secret,
  })
}

/** Wait (bounded) until a store that connects somewhere is connected and synced; the gateway starts either way. */
export async function storeStarted (s: StateStore): Promise<void> {
  if (s instanceof RedisStore) await s.started()
}
