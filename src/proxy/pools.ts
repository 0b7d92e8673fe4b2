import { rootCertificates } from 'node:tls'
import { Pool } from 'undici'
import type { CompiledService } from '../router/types.js'
import { ConnectHold, errCode, type ConnectHoldDeps } from './connect-hold.js'
import { systemClock } from '../store/types.js'

/** An origin's pool and its connect-failure hold. */
export interface PoolEntry { readonly pool: Pool, readonly hold: ConnectHold }

/**
 * One keep-alive undici Pool per upstream origin and timeout settings, shared by every route to it, with the
 * origin's connect-failure hold (services[].connect_failure_hold, see ConnectHold).
 */
export class UpstreamPools {
  private readonly pools = new Map<string, PoolEntry>()
  /** Per compiled service: spares building and hashing the key string on every request. */
  private readonly bySvc = new WeakMap<CompiledService, PoolEntry>()
  private readonly holdDeps: ConnectHoldDeps
  constructor (private readonly trustedCa: readonly string[], holdDeps: Partial<ConnectHoldDeps> = {}) {
    this.holdDeps = { now: systemClock, ...holdDeps }
  }

  get (svc: CompiledService): Pool { return this.entry(svc).pool }

  /** The origin's connect-failure hold (shared by the services whose pool this is). */
  hold (svc: CompiledService): ConnectHold { return this.entry(svc).hold }

  /** Pool and hold in one lookup (the proxy's hot path). */
  entry (svc: CompiledService): PoolEntry {
    const known = this.bySvc.get(svc)
    if (known !== undefined && !known.pool.closed && !known.pool.destroyed) return known
    const r = svc.resolved
    const key = `${svc.origin}|${r.connectTimeout}|${r.readTimeout}|${r.writeTimeout}|${r.tlsVerify ? 1 : 0}|${r.connectFailureHold}`
    let e = this.pools.get(key)
    if (e === undefined) {
      const pool = new Pool(svc.origin, {
        connections: 256,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: r.readTimeout,
        bodyTimeout: r.readTimeout,
        connect: {
          timeout: r.connectTimeout,
          rejectUnauthorized: r.tlsVerify,
          ca: r.protocol === 'https' && this.trustedCa.length > 0 ? [...rootCertificates, ...this.trustedCa] : undefined,
        },
      })
      const hold = new ConnectHold(svc.origin, r.connectFailureHold, this.holdDeps)
      pool.on('connect', function onUpstreamConnect () { hold.connected() })
      pool.on('connectionError', function onUpstreamConnectionError (_origin, _targets, err) { hold.connectFailed(errCode(err)) })
      e = { pool, hold }
      this.pools.set(key, e)
    }
    this.bySvc.set(svc, e)
    return e
  }

  /** Wait for in-flight upstream requests, then close every pool. */
  async close (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.allSettled(all.map(e => e.pool.close()))
  }

  /** Close now, failing in-flight requests (after a drain timeout). */
  async destroy (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.allSettled(all.map(e => e.pool.destroy()))
  }
}
