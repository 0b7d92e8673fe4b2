import { hash } from 'node:crypto'
import {
  definePlugin, GatewayError, CidrSet, isInProcessStore, type PluginInstance, type RequestContext,
  type StateStore,
} from '../../src/plugin-api.js'
import { PERIODS, schema, type Period, type RateLimitingConfig } from './schema.js'
import { windowOf, secondsToReset, type Window } from './windows.js'
import { compileIdentifier, serviceOf } from './identifier.js'
import { counterStore } from './counter-store.js'
import { IncrementBatcher } from './batch.js'

interface Limit {
  readonly period: Period
  readonly limit: number
  /** `X-RateLimit-Limit-Minute`: Kong's names, lower-cased like every header the gateway writes. */
  readonly limitHeader: string
  readonly remainingHeader: string
  /** The limit as sent, computed once. */
  readonly limitText: string
  /** The window the last request fell in, with its key prefix: recomputed only when the clock leaves it. */
  current: Window & { readonly prefix: string }
}

/** Identities whose hashes are kept (a pure function's results; emptied when full, so it cannot grow). */
const ID_CACHE_MAX = 10_000
/** Longest identity kept there (scope + a client id, an address or a short header value), so it stays under ~3 MB. */
const ID_CACHE_MAX_LENGTH = 256

/**
 * Whose counters these are, as Kong's (its keys carry the plugin's route_id and service_id): a plugin on a route
 * counts that route, one on a service every route of that service together, by their names, so nodes whose files
 * differ elsewhere still share them. A top-level entry (global, or naming its route or service) is named by its
 * place in the file. The result prefixes the identity (the two are hashed together into the key).
 */
function compileScope (where: string): (ctx: RequestContext) => string {
  if (/^(services\[\d+\]\.)?routes\[\d+\]\.plugins\[\d+\]$/.test(where)) return function routeScope (ctx) { return 'route:' + ctx.route.name + '\n' }
  if (/^services\[\d+\]\.plugins\[\d+\]$/.test(where)) return function serviceScope (ctx) { return 'service:' + (serviceOf(ctx) ?? '') + '\n' }
  const entry = 'entry:' + where + '\n'
  return function entryScope () { return entry }
}

/** One log line per this many ms while the store is failing (with the count of requests let through meanwhile). */
const FAULT_LOG_INTERVAL_MS = 10_000

const NO_PROXIES = new CidrSet([])

/**
 * Kong's rate-limiting: fixed windows (second … year, several at once), counted per consumer, verified credential,
 * client address, header, path or service, in the gateway's store (or Redis, shared by every node).
 *
 * Every window's counter is incremented in one atomic round trip (`store.increment`), and the request is allowed
 * only if no counter went past its limit: concurrent requests, on any worker or node, can never let more than the
 * limit through (Kong reads, then increments in a timer, and lets a burst overshoot). A refused request takes its
 * increments back (a second round trip, on refusals only), so, as in Kong, refused requests do not count: a client
 * hammering a `second` limit does not also spend its `minute`.
 */
export default definePlugin({
  name: 'rate-limiting',
  // after authentication (mtls-auth 1000, token-introspection 910, openid-connect 900), so a credential limit counts
  // verified clients and a refused token costs no counter; before authorisation (require-scopes 800)
  priority: 850,
  description: 'Kong\'s rate-limiting: fixed windows per consumer, verified credential, client address, header, path or service; local or Redis',
  schema,
  create (config: RateLimitingConfig, deps): PluginInstance {
    const limits: Limit[] = []
    for (const period of PERIODS) {
      const n = config[period]
      if (n === undefined || n === null) continue
      limits.push({ period, limit: n, limitHeader: `x-ratelimit-limit-${period}`, remainingHeader: `x-ratelimit-remaining-${period}`, limitText: String(n), current: { start: 0, end: 0, prefix: '' } })
    }
    const identify = compileIdentifier(config, deps.trustedIps ?? NO_PROXIES)
    const counters = counterStore(config, deps)
    // this process's own memory answers at once; a shared store (Redis, the primary over IPC) gets batches
    const store: Pick<StateStore, 'increment'> = isInProcessStore(counters.store) ? counters.store : new IncrementBatcher(counters.store)
    const scopeOf = compileScope(deps.where)
    const faultTolerant = config.fault_tolerant ?? true
    const hide = config.hide_client_headers ?? false
    const errorCode = config.error_code ?? 429
    const errorMessage = config.error_message ?? 'API rate limit exceeded'
    const log = deps.logger
    const now = deps.now
    const ids = new Map<string, string>()
    // never the raw value in a key: a header can be an API key
    function hashed (identity: string): string {
      // a long identity (a client-chosen header value can be kilobytes) is hashed every time, never kept
      if (identity.length > ID_CACHE_MAX_LENGTH) return hash('sha256', identity, 'base64url').slice(0, 22)
      let h = ids.get(identity)
      if (h === undefined) {
        if (ids.size >= ID_CACHE_MAX) ids.clear()
        h = hash('sha256', identity, 'base64url').slice(0, 22)
        ids.set(identity, h)
      }
      return h
    }
    function windowAt (l: Limit, t: number): Window & { readonly prefix: string } {
      let w = l.current
      if (t < w.start || t >= w.end) {
        const nw = windowOf(l.period, t)
        w = l.current = { start: nw.start, end: nw.end, prefix: `rl:${l.period}:${nw.start}:` }
      }
      return w
    }
    let letThrough = 0
    let lastFaultLog = Number.NEGATIVE_INFINITY
    log.debug({ where: deps.where, counts_in: counters.describe, limits: limits.map(l => `${l.period}=${l.limit}`).join(' ') }, 'rate-limiting: ready')

    function storeFailed (ctx: RequestContext, e: unknown, what: string): void {
      letThrough++
      const t = now()
      if (t - lastFaultLog < FAULT_LOG_INTERVAL_MS) return
      lastFaultLog = t
      log.error({ req_id: ctx.id, where: deps.where, err: e instanceof Error ? e.message : String(e), let_through: faultTolerant ? letThrough : 0 },
        faultTolerant ? `rate-limiting: the store failed to ${what}; requests pass without a limit (fault_tolerant)` : `rate-limiting: the store failed to ${what}; requests are refused (fault_tolerant: false)`)
      letThrough = 0
    }

    return {
      access: async function rateLimitingAccess (ctx: RequestContext): Promise<void> {
        const t = now()
        const id = hashed(scopeOf(ctx) + identify(ctx))
        const windows: Window[] = new Array(limits.length)
        const entries = new Array<{ key: string, by: number, ttlMs: number }>(limits.length)
        for (let i = 0; i < limits.length; i++) {
          const w = windowAt(limits[i], t)
          windows[i] = w
          entries[i] = { key: w.prefix + id, by: 1, ttlMs: w.end - t }
        }
        let counts: number[]
        try {
          counts = await store.increment(entries)
        } catch (e) {
          storeFailed(ctx, e, 'count')
          if (faultTolerant) return
          throw new GatewayError('CB_ERR_RATE_LIMIT_STORE', { detail: `rate-limiting: store increment failed: ${e instanceof Error ? e.message : String(e)}`, cause: e })
        }
        let stop = false
        for (let i = 0; i < limits.length; i++) if (counts[i] > limits[i].limit) stop = true
        if (stop) {
          try {
            await store.increment(entries.map(e => ({ key: e.key, by: -1, ttlMs: e.ttlMs })))
          } catch (e) {
            // the refused request stays counted: stricter, never looser
            storeFailed(ctx, e, 'take back a refused request')
          }
        }

        // Kong's headers: per window, and RateLimit-* for the window with the least remaining (the longer on a tie)
        let best = -1
        let bestRemaining = 0
        const headers: Array<[string, string]> | undefined = hide ? undefined : []
        for (let i = 0; i < limits.length; i++) {
          const l = limits[i]
          // a refused request is not counted: a window it did not exceed shows what it had before
          const used = stop && counts[i] <= l.limit ? counts[i] - 1 : counts[i]
          const remaining = Math.max(0, l.limit - used)
          if (best < 0 || remaining <= bestRemaining) { best = i; bestRemaining = remaining }
          if (headers !== undefined) headers.push([l.limitHeader, l.limitText], [l.remainingHeader, String(remaining)])
        }
        const reset = String(secondsToReset(windows[best], t))
        if (headers !== undefined) headers.push(['ratelimit-limit', limits[best].limitText], ['ratelimit-remaining', String(bestRemaining)], ['ratelimit-reset', reset])

        if (stop) {
          const h: Record<string, string> = { 'retry-after': reset }
          if (headers !== undefined) for (const [k, v] of headers) h[k] = v
          throw new GatewayError('CB_ERR_RATE_LIMITED', {
            status: errorCode,
            message: errorMessage,
            headers: h,
            detail: `rate-limiting: ${limits.filter((l, i) => counts[i] > l.limit).map(l => `${l.period} limit ${l.limit}`).join(', ')} exceeded`,
          })
        }
        if (headers !== undefined) for (const [k, v] of headers) ctx.setResponseHeader(k, v)
      },
      close: () => counters.close(),
    }
  },
})
