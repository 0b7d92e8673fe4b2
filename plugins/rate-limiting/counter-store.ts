import { PluginConfigError, type PluginDeps } from '../../src/pipeline/types.js'
import type { StateStore } from '../../src/store/types.js'
import { redisSettings, type RateLimitingConfig } from './schema.js'

/** Where an instance counts, and what it must release on close. */
export interface CounterStore {
  readonly store: StateStore
  /** Says where counts go, for the log line at load. */
  readonly describe: string
  /** Close a store the plugin opened itself (its own redis.*); the gateway's store is not the plugin's to close. */
  close(): Promise<void>
}

/**
 * The one place `policy` becomes a store (Kong: policies/init.lua).
 * - `local`: the gateway's store. With the default memory backend that is Kong's `local` (one node, shared by
 *   its workers). With `gateway.store.redis` the counts are kept in Redis and so are shared by every node: stricter
 *   than Kong's per-node count, never looser.
 * - `redis`: the plugin's own `redis.*` (Kong's keys) when a host is given, else the gateway's store when it is
 *   Redis. Neither: refused at load, never quietly counted per node.
 */
export function counterStore (c: RateLimitingConfig, deps: PluginDeps): CounterStore {
  const shared: CounterStore = { store: deps.store, describe: `gateway.store (${deps.store.backend})`, close: async () => {} }
  if ((c.policy ?? 'local') === 'local') return shared
  const own = redisSettings(c)
  if (own !== undefined) {
    // The store's factory for a plugin's own Redis (Kong's redis.* keys) is not in this build: refuse rather than
    // count somewhere the operator did not ask for.
    throw new PluginConfigError(['redis', 'host'], 'policy redis with the plugin\'s own redis.* keys is not supported by this build yet: remove redis.* and configure gateway.store.redis (the gateway\'s shared Redis), which policy redis then uses', 'CB_CFG_INVALID')
  }
  if (deps.store.backend === 'redis') return shared
  throw new PluginConfigError(['policy'], 'policy redis needs a Redis: set redis.host (this plugin\'s own) or gateway.store.redis (the gateway\'s); for one node use policy local', 'CB_CFG_INVALID')
}
