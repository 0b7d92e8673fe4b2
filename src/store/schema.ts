import { z } from 'zod'

/**
 * `gateway.store`: where state that must agree across workers and nodes lives. One source of truth for its
 * defaults (docs/configuration.md is generated from these descriptions).
 */
export const STORE_DEFAULTS = Object.freeze({
  keyPrefix: 'certbound:',
  connectTimeout: 2000,
  commandTimeout: 500,
  reconnectMaxDelay: 2000,
  replicaMaxAge: 10_000,
  resyncInterval: 5000,
  healthInterval: 1000,
})

const ms = (d: string) => z.number().int().min(1).max(600_000).describe(d)

/**
 * A Redis connection. Also what a plugin with its own Redis settings passes to `deps.openStore` (it may embed this
 * schema in its own), so every Redis connection of the gateway is configured, validated and documented alike.
 */
export const redisConnectionSchema = z.strictObject({
  url: z.string().min(1)
    .describe('redis://host:port/db or rediss://host:port/db (TLS, verified against the system CAs and gateway.trusted_certificates). Credentials may be in the URL or in username/password, not both'),
  username: z.string().min(1).optional().describe('ACL user (Redis 6+); write `${{ env "NAME" }}` rather than the value'),
  password: z.string().min(1).optional().describe('Password (AUTH); write `${{ env "NAME" }}` rather than the value'),
  key_prefix: z.string().max(128).regex(/^[\x21-\x7E]*$/, 'printable ASCII without spaces').default(STORE_DEFAULTS.keyPrefix)
    .describe(`Prepended to every key and channel this connection uses, so several gateways (or other applications) can share one Redis (default "${STORE_DEFAULTS.keyPrefix}")`),
  connect_timeout: ms('ms to open a connection (TCP, TLS, AUTH) before it counts as failed').default(STORE_DEFAULTS.connectTimeout),
  command_timeout: ms('ms every command may take; a command past it fails (the decision that needed it fails closed)').default(STORE_DEFAULTS.commandTimeout),
  reconnect_max_delay: ms('Reconnection backs off exponentially from 50 ms up to this many ms between attempts, for ever').default(STORE_DEFAULTS.reconnectMaxDelay),
}).superRefine(function checkRedisUrl (r, ctx) {
  let u: URL | undefined
  try { u = new URL(r.url) } catch { /* below */ }
  if (u === undefined || (u.protocol !== 'redis:' && u.protocol !== 'rediss:')) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0)' })
    return
  }
  if (u.hostname === '') ctx.addIssue({ code: 'custom', path: ['url'], message: 'needs a host' })
  if (u.search !== '' || u.hash !== '') ctx.addIssue({ code: 'custom', path: ['url'], message: 'may not carry a query or fragment: use the keys of gateway.store.redis' })
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d{1,2}$/.test(u.pathname)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'the path is the database number (/0 … /15)' })
  if ((u.username !== '' || u.password !== '') && (r.username !== undefined || r.password !== undefined)) {
    ctx.addIssue({ code: 'custom', path: [r.username !== undefined ? 'username' : 'password'], message: 'credentials are already in url: give them in one place' })
  }
})

export type RedisConnectionConfig = z.output<typeof redisConnectionSchema>
export type RedisConnectionInput = z.input<typeof redisConnectionSchema>

export const storeSchema = z.strictObject({
  backend: z.enum(['memory', 'redis']).optional()
    .describe('memory: this node only (every worker shares the primary\'s state); redis: every node sharing gateway.store.redis. Default: redis when redis is set, else memory'),
  redis: redisConnectionSchema.optional().describe('The Redis every node shares (backend: redis)'),
  secret: z.string().min(32).optional()
    .describe('At least 32 characters (write `${{ env "NAME" }}`): encrypts what must not sit in Redis in the clear (AES-256-GCM; the authorization server\'s generated signing keys). Required with backend redis when the authorization server generates its keys'),
  max_keys: z.number().int().min(1000).max(10_000_000).optional()
    .describe('backend memory: most live keys (rate-limit counters, DPoP jti replay markers, cached values; about 150 bytes each) before those expiring soonest are evicted (default 100000). DPoP replay protection stays sound when it is full: proofs older than what the store still remembers are refused, never accepted. Redis is bounded by its own maxmemory'),
  replica_max_age: ms(`Revocation checks are answered from a local replica kept current by notification; while the shared store cannot confirm it (Redis unreachable), the replica is trusted for at most this many ms, then such checks fail closed (default ${STORE_DEFAULTS.replicaMaxAge})`).default(STORE_DEFAULTS.replicaMaxAge),
  resync_interval: ms(`ms between full reconciliations of the revocation replica with the shared store, which also re-seeds a Redis that came back empty (default ${STORE_DEFAULTS.resyncInterval})`).default(STORE_DEFAULTS.resyncInterval),
}).superRefine(function checkStore (s, ctx) {
  if (s.backend === 'redis' && s.redis === undefined) ctx.addIssue({ code: 'custom', path: ['redis'], message: 'backend redis needs redis.url' })
  if (s.backend === 'memory' && s.redis !== undefined) ctx.addIssue({ code: 'custom', path: ['redis'], message: 'redis is set but backend is memory: remove one (backend defaults to redis when redis is set)' })
  if (s.max_keys !== undefined && storeBackend(s) === 'redis') ctx.addIssue({ code: 'custom', path: ['max_keys'], message: 'bounds the memory backend only: Redis is bounded by its own maxmemory' })
  if (s.resync_interval >= s.replica_max_age) ctx.addIssue({ code: 'custom', path: ['resync_interval'], message: `must be below replica_max_age (${s.replica_max_age} ms), or a healthy replica would go stale between two resyncs` })
})

export type StoreConfig = z.output<typeof storeSchema>

export function storeBackend (s: StoreConfig | undefined): 'memory' | 'redis' {
  return s?.backend ?? (s?.redis !== undefined ? 'redis' : 'memory')
}
