import { createRequire } from 'node:module'
import { rootCertificates } from 'node:tls'
import type { createClient as CreateClient } from 'redis'
import type { Logger } from 'pino'
import { GatewayError } from '../errors/gateway-error.js'
import { redisConnectionSchema, STORE_DEFAULTS, type RedisConnectionConfig, type RedisConnectionInput } from './schema.js'
import { createSecretBox } from './secret-box.js'
import { readRevocationFile } from './revocation-file.js'
import type { Clock, SecretBox, StateStore, StoreObserver, StoreStatus } from './types.js'

export interface RedisStoreOptions {
  readonly redis: RedisConnectionInput
  readonly now: Clock
  /** gateway.trusted_certificates (PEM), trusted for rediss:// in addition to the system CAs. */
  readonly trustedCa?: readonly string[]
  readonly logger?: Logger
  readonly observer?: StoreObserver
  /** gateway.store.replica_max_age (ms). */
  readonly replicaMaxAgeMs?: number
  /** gateway.store.resync_interval (ms). */
  readonly resyncIntervalMs?: number
  /** ms between health PINGs (latency, connectivity, replica confirmation). */
  readonly healthIntervalMs?: number
  /** gateway.store.secret: enables `secretBox`. */
  readonly secret?: string
}

/**
 * increment: one round trip, atomic. INCRBY (or INCRBYFLOAT), and PEXPIRE only when the key has no expiry yet —
 * a counter's window starts at its first increment and later ones do not extend it (fixed windows, like Kong's).
 * PTTL rather than `PEXPIRE NX` keeps Redis 6 supported.
 */
const INCREMENT_LUA = `
local out = {}
for i = 1, #KEYS do
  local by = ARGV[2 * i - 1]
  local v
  if string.find(by, '[.eE]') then v = tonumber(redis.call('INCRBYFLOAT', KEYS[i], by)) else v = redis.call('INCRBY', KEYS[i], by) end
  if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
  out[i] = tostring(v)
end
return out`

/**
 * revoke: keep the later of two expiries (a revocation is never shortened), drop expired members, and notify every
 * node — in one atomic step, so no node can read the set between the write and the notification.
 */
const REVOKE_LUA = `
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('PUBLISH', KEYS[1], ARGV[2] .. ' ' .. ARGV[1])
return 1`

type Client = ReturnType<typeof CreateClient>

/**
 * node-redis and its modules (~600 files) are loaded when the first Redis store is made, not with this module: a
 * gateway on the memory store never holds them (issue 20's RSS goal). The package is CommonJS, so this stays
 * synchronous.
 */
function redisClient (): typeof CreateClient {
  return (createRequire(import.meta.url)('redis') as { createClient: typeof CreateClient }).createClient
}

/** A Redis URL split for node-redis's socket options (so `ca` can be given alongside TLS). */
function connectionOf (c: RedisConnectionConfig, trustedCa: readonly string[] | undefined) {
  const u = new URL(c.url)
  const tls = u.protocol === 'rediss:'
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = u.port === '' ? 6379 : Number(u.port)
  const database = /^\/\d+$/.test(u.pathname) ? Number(u.pathname.slice(1)) : 0
  const username = c.username ?? (u.username !== '' ? decodeURIComponent(u.username) : undefined)
  const password = c.password ?? (u.password !== '' ? decodeURIComponent(u.password) : undefined)
  const maxDelay = c.reconnect_max_delay
  const reconnectStrategy = (retries: number): number => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay)
  const base = { host, port, connectTimeout: c.connect_timeout, reconnectStrategy }
  const socket = tls
    ? { ...base, tls: true as const, servername: /^[\d.]+$|:/.test(host) ? undefined : host, ca: trustedCa !== undefined && trustedCa.length > 0 ? [...rootCertificates, ...trustedCa] : undefined }
    : base
  return { socket, username, password, database, where: `${u.protocol}//${u.host}${database === 0 ? '' : '/' + database}` }
}

/**
 * The `redis` backend: every node sharing one Redis (node-redis v5). Every command has a timeout and fails fast
 * while disconnected (no offline queue: a decision that needs the store fails closed instead of waiting);
 * reconnection backs off up to reconnect_max_delay, for ever. The revocation set is replicated locally — kept
 * current by pub/sub, reconciled every resync_interval (which re-seeds a Redis that came back empty from what this
 * node holds: revocations are only ever added, so the union is always right) — so `isRevoked` is a map lookup.
 */
export class RedisStore implements StateStore {
  readonly backend = 'redis'
  readonly secretBox: SecretBox | undefined
  private readonly cfg: RedisConnectionConfig
  private readonly client: Client
  private readonly sub: Client
  private readonly prefix: string
  private readonly revKey: string
  private readonly now: Clock
  private readonly log: Logger | undefined
  private readonly observer: StoreObserver | undefined
  private readonly maxAge: number
  private readonly timeout: number
  private readonly where: string
  private readonly replica = new Map<string, number>()
  private readonly channels = new Map<string, Set<(m: string) => void>>()
  private readonly timers: NodeJS.Timeout[] = []
  private readonly shas = new Map<string, string>()
  /** When the replica was last known complete (a resync, or a PING while the subscription has been up since one). */
  private confirmedAt = Number.NEGATIVE_INFINITY
  /** The subscriber connection has been up without a break since the last completed resync. */
  private synced = false
  private subReady = false
  private pingOk = false
  private latencyMs: number | undefined
  private lastError: string | undefined
  private closed = false
  private resyncing: Promise<void> | undefined

  constructor (opts: RedisStoreOptions) {
    this.cfg = redisConnectionSchema.parse(opts.redis)
    this.now = opts.now
    this.log = opts.logger
    this.observer = opts.observer
    this.maxAge = opts.replicaMaxAgeMs ?? STORE_DEFAULTS.replicaMaxAge
    this.timeout = this.cfg.command_timeout
    this.prefix = this.cfg.key_prefix
    this.revKey = this.prefix + 'revocations'
    this.secretBox = opts.secret === undefined ? undefined : createSecretBox(opts.secret)
    const { where, ...conn } = connectionOf(this.cfg, opts.trustedCa)
    this.where = where
    const healthMs = opts.healthIntervalMs ?? STORE_DEFAULTS.healthInterval
    // node-redis's command timeout covers only the wait to be written, not a Redis that stopped answering: a
    // socket idle longer than two health PINGs is declared dead and reconnected, which fails what it had queued
    const createClient = redisClient()
    this.client = createClient({ ...conn, socket: { ...conn.socket, socketTimeout: Math.max(2 * healthMs, 4 * this.timeout) }, disableOfflineQueue: true, commandsQueueMaxLength: MAX_QUEUED })
    this.sub = createClient({ ...conn, disableOfflineQueue: true })
    this.client.on('error', (e: Error) => this.noteError('command connection', e))
    this.sub.on('error', (e: Error) => this.noteError('subscriber connection', e))
    this.client.on('ready', () => { this.log?.info({ redis: this.where }, 'store: connected to redis'); this.lastError = undefined; void this.health() })
    this.sub.on('end', () => { this.subReady = false; this.synced = false })
    this.sub.on('reconnecting', () => { this.subReady = false; this.synced = false })
    this.sub.on('ready', () => {
      this.subReady = true
      // pub/sub delivers at most once: anything published while we were away is only found by a resync
      void this.resync()
    })
    // connect() retries by itself (reconnectStrategy); its first failure must not be an unhandled rejection
    this.client.connect().catch((e: unknown) => this.noteError('command connection', e as Error))
    this.sub.connect().then(
      () => this.sub.subscribe(this.revKey, (m) => this.onRevocationMessage(m)),
    ).catch((e: unknown) => this.noteError('subscriber connection', e as Error))
    const every = (ms: number, f: () => unknown): void => { const t = setInterval(f, ms); t.unref(); this.timers.push(t) }
    every(healthMs, () => { void this.health() })
    every(opts.resyncIntervalMs ?? STORE_DEFAULTS.resyncInterval, () => { void this.resync() })
  }

  /** Resolves once connected and the replica is synced, or after `ms` (the gateway starts either way: readiness says). */
  async started (ms = this.cfg.connect_timeout): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.closed && Date.now() < deadline) {
      if (this.client.isReady && this.synced) return true
      await new Promise(r => setTimeout(r, 20))
    }
    return this.client.isReady && this.synced
  }

  private noteError (what: string, e: Error): void {
    const msg = `${what}: ${e.message || e.name}`
    if (msg !== this.lastError) this.log?.warn({ redis: this.where, err: msg }, 'store: redis unreachable; decisions that need it fail closed until it is back')
    this.lastError = msg
  }

  private key (k: string): string { return this.prefix + 'kv:' + k }

  /** One command, timed and counted; any failure becomes CB_ERR_STORE_UNAVAILABLE (503). */
  private async cmd<T> (op: string, args: string[]): Promise<T> {
    if (this.closed) throw unavailable(op, 'the store is closed')
    const t0 = performance.now()
    try {
      const r = await withDeadline(this.client.sendCommand<T>(args, { timeout: this.timeout }), this.timeout)
      this.observer?.command(this.backend, op, (performance.now() - t0) / 1000, true)
      return r
    } catch (e) {
      this.observer?.command(this.backend, op, (performance.now() - t0) / 1000, false)
      if (e instanceof Error && /NOSCRIPT/.test(e.message)) throw e
      throw unavailable(op, (e as Error).message, e)
    }
  }

  /** EVALSHA, loading the script when Redis does not know it (first use, or a restarted Redis). */
  private async script<T> (op: string, lua: string, keys: string[], args: string[]): Promise<T> {
    let sha = this.shas.get(lua)
    if (sha === undefined) {
      sha = await this.cmd<string>('script_load', ['SCRIPT', 'LOAD', lua])
      this.shas.set(lua, sha)
    }
    try {
      return await this.cmd<T>(op, ['EVALSHA', sha, String(keys.length), ...keys, ...args])
    } catch (e) {
      if (!(e instanceof Error && /NOSCRIPT/.test(e.message))) throw e
      this.shas.delete(lua)
      return await this.cmd<T>(op, ['EVAL', lua, String(keys.length), ...keys, ...args])
    }
  }

  async get (key: string): Promise<string | undefined> {
    const v = await this.cmd<string | null>('get', ['GET', this.key(key)])
    return v ?? undefined
  }

  async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await this.cmd('set', ttlMs === undefined ? ['SET', this.key(key), value] : ['SET', this.key(key), value, 'PX', String(Math.max(1, Math.ceil(ttlMs)))])
  }

  async delete (key: string): Promise<void> { await this.cmd('delete', ['DEL', this.key(key)]) }

  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> {
    const r = await this.cmd<string | null>('set_if_absent', ['SET', this.key(key), value, 'NX', 'PX', String(Math.max(1, Math.ceil(ttlMs)))])
    return r === 'OK'
  }

  async increment (entries: ReadonlyArray<{ readonly key: string, readonly by: number, readonly ttlMs: number }>): Promise<number[]> {
    if (entries.length === 0) return []
    for (const e of entries) if (!Number.isFinite(e.by) || !Number.isFinite(e.ttlMs)) throw new TypeError('increment: by and ttlMs must be finite numbers')
    const r = await this.script<string[]>('increment', INCREMENT_LUA, entries.map(e => this.key(e.key)), entries.flatMap(e => [String(e.by), String(Math.max(1, Math.ceil(e.ttlMs)))]))
    return r.map(Number)
  }

  async revoke (id: string, untilMs: number): Promise<void> {
    await this.script('revoke', REVOKE_LUA, [this.revKey], [id, String(Math.ceil(untilMs)), String(this.now())])
    this.remember(id, untilMs)
  }

  private remember (id: string, until: number): void {
    const prev = this.replica.get(id)
    if (prev === undefined || prev < until) this.replica.set(id, until)
  }

  isRevoked (id: string): boolean | undefined {
    const now = this.now()
    const until = this.replica.get(id)
    if (until !== undefined) {
      if (until > now) return true // a revocation we know of holds, however stale the rest of the replica
      this.replica.delete(id)
    }
    return now - this.confirmedAt <= this.maxAge ? false : undefined
  }

  private onRevocationMessage (m: string): void {
    const sp = m.indexOf(' ')
    const until = Number(m.slice(0, sp))
    if (sp > 0 && Number.isFinite(until)) this.remember(m.slice(sp + 1), until)
  }

  /** Reconcile the replica with Redis both ways; single flight. */
  resync (): Promise<void> {
    this.resyncing ??= this.doResync().finally(() => { this.resyncing = undefined })
    return this.resyncing
  }

  private async doResync (): Promise<void> {
    if (this.closed || !this.subReady) return
    const startedAt = this.now()
    try {
      const flat = await this.cmd<string[]>('resync', ['ZRANGE', this.revKey, String(startedAt), '+inf', 'BYSCORE', 'WITHSCORES'])
      const remote = new Map<string, number>()
      for (let i = 0; i + 1 < flat.length; i += 2) remote.set(flat[i], Number(flat[i + 1]))
      for (const [id, until] of remote) this.remember(id, until)
      const missing: string[] = []
      for (const [id, until] of this.replica) {
        if (until <= startedAt) { this.replica.delete(id); continue }
        const r = remote.get(id)
        if (r === undefined || r < until) missing.push(String(until), id)
      }
      if (missing.length > 0) {
        // Redis lost revocations (restarted without persistence, failover to an empty replica): put ours back
        for (let i = 0; i < missing.length; i += 1000) await this.cmd('reseed', ['ZADD', this.revKey, 'GT', ...missing.slice(i, i + 1000)])
        this.log?.warn({ redis: this.where, revocations: missing.length / 2 }, 'store: redis was missing revocations this node holds; re-seeded them')
      }
      if (this.subReady) { this.synced = true; this.confirmedAt = startedAt }
    } catch (e) {
      this.noteError('resync', e as Error)
    }
  }

  private async health (): Promise<void> {
    if (this.closed) return
    const t0 = performance.now()
    const startedAt = this.now()
    try {
      if (!this.client.isReady) throw new Error(this.lastError ?? 'not connected')
      await this.cmd('ping', ['PING'])
      this.latencyMs = Math.round((performance.now() - t0) * 100) / 100
      this.pingOk = true
      if (this.synced && this.subReady) this.confirmedAt = Math.max(this.confirmedAt, startedAt)
      else if (this.subReady) void this.resync()
    } catch (e) {
      this.pingOk = false
      if (this.client.isReady) this.noteError('health check', e instanceof GatewayError ? new Error(e.detail ?? e.message) : e as Error)
    }
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.cmd('publish', ['PUBLISH', this.prefix + 'ch:' + channel, message])
  }

  subscribe (channel: string, handler: (message: string) => void): () => void {
    let set = this.channels.get(channel)
    if (set === undefined) {
      const handlers = set = new Set()
      this.channels.set(channel, set)
      const deliver = (m: string): void => { for (const h of handlers) { try { h(m) } catch { /* a subscriber's fault is its own */ } } }
      // node-redis re-subscribes after a reconnect; a subscription made while disconnected is sent on connect
      this.sub.subscribe(this.prefix + 'ch:' + channel, deliver).catch((e: unknown) => this.noteError(`subscribe ${channel}`, e as Error))
    }
    set.add(handler)
    return () => {
      set.delete(handler)
      if (set.size === 0 && this.channels.get(channel) === set) {
        this.channels.delete(channel)
        this.sub.unsubscribe(this.prefix + 'ch:' + channel).catch(() => undefined)
      }
    }
  }

  get connected (): boolean { return !this.closed && this.client.isReady && this.subReady && this.pingOk }

  status (): StoreStatus {
    const connected = this.connected
    const stale = this.now() - this.confirmedAt > this.maxAge
    const detail = !connected ? (this.lastError ?? 'connecting') : stale ? 'revocation replica not yet synced' : undefined
    return { backend: this.backend, connected: connected && !stale, latency_ms: this.latencyMs, ...(detail === undefined ? {} : { detail }) }
  }

  /** Import a revocation file's entries (Redis itself is the store of record; the file is not written). */
  async persistRevocations (file: string): Promise<void> {
    const entries = await readRevocationFile(file, this.now())
    for (const [id, until] of entries) this.remember(id, until)
    if (entries.size > 0) {
      this.log?.info({ file, revocations: entries.size }, 'store: revocations from the file are kept in redis from now on')
      await this.resync()
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const t of this.timers) clearInterval(t)
    this.channels.clear()
    await Promise.allSettled([this.client, this.sub].map(c => c.isOpen ? c.close() : Promise.resolve()))
    for (const c of [this.client, this.sub]) { try { c.destroy() } catch { /* already closed */ } }
  }
}

/** Commands waiting on one connection at most; beyond, they fail at once (a hung Redis must not grow memory). */
const MAX_QUEUED = 10_000

function withDeadline<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms) })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

function unavailable (op: string, detail: string, cause?: unknown): GatewayError {
  return new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: `store (redis) ${op}: ${detail}`, cause })
}

/** A Redis-backed StateStore (the factory plugins and tests use; the gateway pools them: see deps.openStore). */
export function createRedisStore (opts: RedisStoreOptions): RedisStore {
  return new RedisStore(opts)
}
