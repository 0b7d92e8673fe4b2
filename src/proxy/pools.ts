import { rootCertificates } from 'node:tls'
import { Pool } from 'undici'
import type { CompiledService } from '../router/types.js'

/** One keep-alive undici Pool per upstream origin and timeout settings, shared by every route to it. */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>()
  /** Per compiled service: spares building and hashing the key string on every request. */
  private readonly bySvc = new WeakMap<CompiledService, Pool>()
  constructor (private readonly trustedCa: readonly string[]) {}

  get (svc: CompiledService): Pool {
    const known = this.bySvc.get(svc)
    if (known !== undefined && !known.closed && !known.destroyed) return known
    const r = svc.resolved
    const key = `${svc.origin}|${r.connectTimeout}|${r.readTimeout}|${r.writeTimeout}|${r.tlsVerify ? 1 : 0}`
    let p = this.pools.get(key)
    if (p === undefined) {
      p = new Pool(svc.origin, {
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
      this.pools.set(key, p)
    }
    this.bySvc.set(svc, p)
    return p
  }

  /** Wait for in-flight upstream requests, then close every pool. */
  async close (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.allSettled(all.map(p => p.close()))
  }

  /** Close now, failing in-flight requests (after a drain timeout). */
  async destroy (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.allSettled(all.map(p => p.destroy()))
  }
}
