import { isIP } from 'node:net'
import { PluginConfigError, type PluginDeps, type StateStore, type RedisConnectionInput } from '../../src/plugin-api.js'
import { redisSettings, type RateLimitingConfig, type RedisSettings } from './schema.js'

/** Where an instance counts, and what it must release on close. */
export interface CounterStore {
  readonly store: StateStore
  /** Says where counts go, for the log line at load. */
  readonly describe: string
  /** Close a store the plugin opened itself (its own redis.*); the gateway's store is not the plugin's to close. */
  close(): Promise<void>
}

/** The connection a plugin's own Redis is opened with (gateway.store.redis's keys: src/store/schema.ts). */
export type RedisConnection = RedisConnectionInput

/**
 * The one place `policy` becomes a store (Kong: policies/init.lua).
 * - `local`: the gateway's store. With the default memory backend that is Kong's `local` (one node, shared by
 *   its workers). With `gateway.store.redis` the counts are kept in Redis and so are shared by every node: stricter
 *   than Kong's per-node count, never looser.
 * - `redis`: the plugin's own `redis.*` (Kong's keys) when a host is given, opened through `deps.openStore` (pooled
 *   by connection: instances with the same settings share one, across reloads); else
 *   the gateway's store when it is Redis. Neither: refused at load, never quietly counted per node.
 */
export function counterStore (c: RateLimitingConfig, deps: PluginDeps): CounterStore {
  const shared: CounterStore = { store: deps.store, describe: `gateway.store (${deps.store.backend})`, close: async () => {} }
  if ((c.policy ?? 'local') === 'local') return shared
  const own = redisSettings(c)
  if (own !== undefined) {
    const store = deps.openStore(redisConnection(own))
    return { store, describe: `redis ${own.host}:${own.port}/${own.database}`, close: () => store.close() }
  }
  if (deps.store.backend === 'redis') return shared
  throw new PluginConfigError(['policy'], 'policy redis needs a Redis: set redis.host (this plugin\'s own) or gateway.store.redis (the gateway\'s); for one node use policy local', 'CB_CFG_INVALID')
}

/**
 * Kong's redis.* as a connection. TLS to Redis is verified like every outbound TLS connection of the gateway (system
 * CAs and gateway.trusted_certificates): Kong's default `ssl_verify: false` with `ssl: true` is refused, not obeyed.
 */
export function redisConnection (r: RedisSettings): RedisConnection {
  if (r.ssl && !r.sslVerify) throw new PluginConfigError(['redis', 'ssl_verify'], 'certbound verifies every TLS connection: set ssl_verify: true (add the Redis CA to gateway.trusted_certificates)', 'CB_CFG_INVALID')
  if (r.serverName !== undefined && r.serverName !== r.host) throw new PluginConfigError(['redis', 'server_name'], 'the Redis certificate is checked against redis.host: give the name in host (server_name different from host is not supported)', 'CB_CFG_INVALID')
  if (r.database > 15) throw new PluginConfigError(['redis', 'database'], 'Redis databases are 0 … 15', 'CB_CFG_INVALID')
  const host = isIP(r.host) === 6 ? `[${r.host}]` : r.host
  return {
    url: `${r.ssl ? 'rediss' : 'redis'}://${host}:${r.port}/${r.database}`,
    ...(r.username !== undefined ? { username: r.username } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
    connect_timeout: clampMs(r.connectTimeoutMs),
    command_timeout: clampMs(r.timeoutMs),
  }
}

/** gateway.store.redis timeouts are 1 … 600 000 ms; Kong's 0 (no timeout) becomes the longest. */
function clampMs (ms: number): number {
  return ms <= 0 ? 600_000 : Math.min(600_000, Math.max(1, Math.round(ms)))
}
