import { z } from 'zod'

/** Kong's windows, shortest first (the order limits must not decrease in). */
export const PERIODS = ['second', 'minute', 'hour', 'day', 'month', 'year'] as const
export type Period = typeof PERIODS[number]

/** RFC 9110 §5.1 field-name token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** decK dumps every key, unset ones as `null`: null reads as absent, so a Kong file loads unchanged. */
const limit = (period: Period) => z.number().positive().nullish()
  .describe(`Requests allowed per ${period} (a fixed window aligned to the ${period} in UTC)`)

/** Kong 3.x `redis.*` (the shared Redis schema of 3.6+: Sentinel and Cluster keys are accepted only when unset). */
const redisSchema = z.strictObject({
  host: z.string().min(1).nullish().describe('Redis host for policy redis (the plugin\'s own Redis, instead of gateway.store)'),
  port: z.number().int().min(1).max(65535).nullish().default(6379).describe('Redis port'),
  username: z.string().nullish().describe('Redis ACL user (Redis 6+)'),
  password: z.string().nullish().describe('Redis password; use ${{ env "NAME" }}'),
  database: z.number().int().min(0).nullish().default(0).describe('Redis database number (0 … 15)'),
  ssl: z.boolean().nullish().default(false).describe('TLS to Redis'),
  ssl_verify: z.boolean().nullish().default(false).describe('Verify the Redis certificate (system CAs and gateway.trusted_certificates); with ssl it must be true: unverified TLS is refused'),
  server_name: z.string().nullish().describe('Name checked in the Redis certificate: only the host itself is accepted (the certificate is checked against host)'),
  timeout: z.number().int().min(0).nullish().default(2000).describe('Milliseconds a Redis command may take'),
  connect_timeout: z.number().int().min(0).nullish().describe('Milliseconds to connect (default: timeout)'),
  send_timeout: z.number().int().min(0).nullish().describe('Kong\'s cosocket send timeout; read as the command timeout when set'),
  read_timeout: z.number().int().min(0).nullish().describe('Kong\'s cosocket read timeout; read as the command timeout when set'),
  keepalive_pool_size: z.number().int().min(1).nullish().default(256).describe('Kong\'s cosocket pool; only the default (256) or null is accepted: certbound keeps one multiplexed connection per Redis'),
  keepalive_backlog: z.number().int().min(0).nullish().describe('Kong\'s cosocket backlog; only null is accepted'),
  sentinel_master: z.string().nullish().describe('Redis Sentinel is not supported: only null is accepted'),
  sentinel_role: z.string().nullish().describe('Redis Sentinel is not supported: only null is accepted'),
  sentinel_nodes: z.array(z.unknown()).nullish().describe('Redis Sentinel is not supported: only null is accepted'),
  sentinel_username: z.string().nullish().describe('Redis Sentinel is not supported: only null is accepted'),
  sentinel_password: z.string().nullish().describe('Redis Sentinel is not supported: only null is accepted'),
  cluster_nodes: z.array(z.unknown()).nullish().describe('Redis Cluster is not supported: only null is accepted'),
  cluster_max_redirections: z.number().nullish().describe('Redis Cluster is not supported: accepted only with cluster_nodes unset'),
  connection_is_proxied: z.boolean().nullish().default(false).describe('Only false is accepted'),
})

/** Kong 2.x / early 3.x flat spellings of the `redis.*` keys (Kong 3.6 still reads them). */
const LEGACY_REDIS = {
  redis_host: 'host',
  redis_port: 'port',
  redis_username: 'username',
  redis_password: 'password',
  redis_database: 'database',
  redis_ssl: 'ssl',
  redis_ssl_verify: 'ssl_verify',
  redis_server_name: 'server_name',
  redis_timeout: 'timeout',
} as const

const REDIS_DEFAULTS: Record<string, unknown> = { port: 6379, database: 0, ssl: false, ssl_verify: false, timeout: 2000 }

/** Kong's rate-limiting keys. */
export const schema = z.strictObject({
  second: limit('second'),
  minute: limit('minute'),
  hour: limit('hour'),
  day: limit('day'),
  month: limit('month'),
  year: limit('year'),
  limit_by: z.enum(['consumer', 'credential', 'ip', 'service', 'header', 'path']).nullish().default('consumer')
    .describe('What is counted: consumer (falls back to credential, then ip), credential (the verified token\'s client_id; without a token the verified client certificate\'s x5t#S256), ip (the real client address), service, header (header_name), path (path). No value: the client\'s ip, as Kong'),
  header_name: z.string().regex(HEADER_NAME, 'must be a valid HTTP header name (RFC 9110 token)').nullish()
    .describe('limit_by header: the request header whose value is counted'),
  path: z.string().startsWith('/', 'must start with "/"').nullish()
    .describe('limit_by path: requests to exactly this (normalised) path share one counter; others count by ip, as Kong'),
  policy: z.enum(['local', 'redis', 'cluster']).nullish().default('local')
    .describe('local: the gateway\'s own store (one node, shared by its workers); redis: the plugin\'s redis.* or gateway.store when it is Redis; Kong\'s cluster (its database) is refused'),
  fault_tolerant: z.boolean().nullish().default(true)
    .describe('The store failing lets requests through without limit headers (logged); false answers 500 instead'),
  hide_client_headers: z.boolean().nullish().default(false)
    .describe('Send no RateLimit-* / X-RateLimit-* headers (a 429 still carries Retry-After)'),
  error_code: z.number().int().min(400).max(599).nullish().default(429)
    .describe('Status of the answer when a limit is exceeded'),
  error_message: z.string().nullish().default('API rate limit exceeded')
    .describe('Message of the answer when a limit is exceeded: {"message": error_message}'),
  sync_rate: z.number().nullish().default(-1)
    .describe('Kong\'s counter batching: only -1 (count every request synchronously, which certbound always does) is accepted'),
  redis: redisSchema.nullish().describe('The plugin\'s own Redis for policy redis (Kong 3.x keys)'),
  redis_host: z.string().min(1).nullish().describe('Kong 2.x spelling of redis.host'),
  redis_port: z.number().int().min(1).max(65535).nullish().describe('Kong 2.x spelling of redis.port'),
  redis_username: z.string().nullish().describe('Kong 2.x spelling of redis.username'),
  redis_password: z.string().nullish().describe('Kong 2.x spelling of redis.password'),
  redis_database: z.number().int().min(0).nullish().describe('Kong 2.x spelling of redis.database'),
  redis_ssl: z.boolean().nullish().describe('Kong 2.x spelling of redis.ssl'),
  redis_ssl_verify: z.boolean().nullish().describe('Kong 2.x spelling of redis.ssl_verify'),
  redis_server_name: z.string().nullish().describe('Kong 2.x spelling of redis.server_name'),
  redis_timeout: z.number().int().min(0).nullish().describe('Kong 2.x spelling of redis.timeout'),
}).superRefine(function checkRateLimiting (c, ctx) {
  const given = PERIODS.filter(p => c[p] !== undefined && c[p] !== null)
  if (given.length === 0) ctx.addIssue({ code: 'custom', path: ['minute'], message: 'set at least one limit: second, minute, hour, day, month or year' })
  // Kong's self-check: a longer window cannot allow fewer requests than a shorter one
  for (let i = 0; i < given.length; i++) {
    for (let j = i + 1; j < given.length; j++) {
      if (c[given[j]]! < c[given[i]]!) ctx.addIssue({ code: 'custom', path: [given[j]], message: `the limit for ${given[j]} (${c[given[j]]}) cannot be lower than the limit for ${given[i]} (${c[given[i]]})` })
    }
  }
  if (c.limit_by === 'header' && (c.header_name ?? '') === '') ctx.addIssue({ code: 'custom', path: ['header_name'], message: 'limit_by header needs header_name' })
  if (c.limit_by === 'path' && (c.path ?? '') === '') ctx.addIssue({ code: 'custom', path: ['path'], message: 'limit_by path needs path' })
  if (c.policy === 'cluster') {
    ctx.addIssue({ code: 'custom', path: ['policy'], message: 'policy cluster counts in Kong\'s database, which certbound does not have: use policy redis (with redis.host, or gateway.store.redis) for limits shared by several nodes, or local for one node' })
  }
  if (c.sync_rate !== undefined && c.sync_rate !== null && c.sync_rate !== -1) {
    ctx.addIssue({ code: 'custom', path: ['sync_rate'], message: `sync_rate ${c.sync_rate} would batch counters in memory and let each node exceed the limit between syncs; certbound counts every request in one atomic round trip (sync_rate -1): remove sync_rate or set it to -1` })
  }
  for (const [legacy, key] of Object.entries(LEGACY_REDIS)) {
    const v = (c as Record<string, unknown>)[legacy]
    const nested = (c.redis as Record<string, unknown> | null | undefined)?.[key]
    const dflt = REDIS_DEFAULTS[key]
    if (v !== undefined && v !== null && nested !== undefined && nested !== null && nested !== dflt && nested !== v) {
      ctx.addIssue({ code: 'custom', path: [legacy], message: `${legacy} (${legacy === 'redis_password' ? 'hidden' : JSON.stringify(v)}) and redis.${key} disagree: give one` })
    }
  }
  const r = c.redis
  if (r !== undefined && r !== null) {
    for (const k of ['sentinel_master', 'sentinel_role', 'sentinel_nodes', 'sentinel_username', 'sentinel_password', 'cluster_nodes'] as const) {
      const v = r[k]
      if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) ctx.addIssue({ code: 'custom', path: ['redis', k], message: `Redis ${k.startsWith('sentinel') ? 'Sentinel' : 'Cluster'} is not supported: point redis.host at the primary (or use gateway.store.redis)` })
    }
    if (r.connection_is_proxied === true) ctx.addIssue({ code: 'custom', path: ['redis', 'connection_is_proxied'], message: 'a proxied Redis connection (Envoy, twemproxy) is not supported: only false' })
    if (r.keepalive_pool_size !== undefined && r.keepalive_pool_size !== null && r.keepalive_pool_size !== 256) ctx.addIssue({ code: 'custom', path: ['redis', 'keepalive_pool_size'], message: 'certbound keeps one multiplexed connection per Redis, not a pool: remove keepalive_pool_size (or keep Kong\'s default 256)' })
    if (r.keepalive_backlog !== undefined && r.keepalive_backlog !== null) ctx.addIssue({ code: 'custom', path: ['redis', 'keepalive_backlog'], message: 'certbound keeps one multiplexed connection per Redis, without a backlog: remove keepalive_backlog' })
  }
})

export type RateLimitingConfig = z.output<typeof schema>

/** The plugin's own Redis settings, from `redis.*` or Kong 2.x's `redis_*`; undefined when no host is given. */
export interface RedisSettings {
  readonly host: string
  readonly port: number
  readonly username: string | undefined
  readonly password: string | undefined
  readonly database: number
  readonly ssl: boolean
  readonly sslVerify: boolean
  readonly serverName: string | undefined
  /** Per command (Kong's timeout; send_/read_timeout when set, the larger of the two). */
  readonly timeoutMs: number
  readonly connectTimeoutMs: number
}

export function redisSettings (c: RateLimitingConfig): RedisSettings | undefined {
  const r = c.redis ?? undefined
  const pick = <K extends keyof typeof LEGACY_REDIS>(legacy: K): unknown => {
    const v = c[legacy]
    return v !== undefined && v !== null ? v : r?.[LEGACY_REDIS[legacy]] ?? undefined
  }
  const host = pick('redis_host') as string | undefined
  if (host === undefined) return undefined
  const rw = Math.max(r?.send_timeout ?? 0, r?.read_timeout ?? 0)
  const timeoutMs = rw > 0 ? rw : (pick('redis_timeout') as number | undefined) ?? 2000
  return {
    host,
    port: (pick('redis_port') as number | undefined) ?? 6379,
    username: (pick('redis_username') as string | undefined) || undefined,
    password: (pick('redis_password') as string | undefined) || undefined,
    database: (pick('redis_database') as number | undefined) ?? 0,
    ssl: (pick('redis_ssl') as boolean | undefined) ?? false,
    sslVerify: (pick('redis_ssl_verify') as boolean | undefined) ?? false,
    serverName: (pick('redis_server_name') as string | undefined) || undefined,
    timeoutMs,
    connectTimeoutMs: r?.connect_timeout ?? timeoutMs,
  }
}
