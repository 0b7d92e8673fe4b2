import { Counter, type Registry } from 'prom-client'

/** What the shared tier of a verified-token cache answered (src/auth/shared-token-tier.ts). */
export type SharedTierOutcome = 'hit' | 'miss' | 'get_error' | 'set_error'

/**
 * Verified-token cache metrics: how often the shared tier (gateway.store) spared an IdP call (`hit`), had nothing
 * (`miss`), or failed (`get_error`, `set_error`: the request was verified without it). Created once per gateway on
 * its registry (GatewayMetrics.tokenCache) and handed to plugins as deps.tokenCacheMetrics.
 */
export class TokenCacheMetrics {
  private readonly shared: Counter<'plugin' | 'outcome'>

  constructor (registry: Registry) {
    this.shared = new Counter({ name: 'certbound_token_cache_shared_total', help: 'Lookups and writes of verified-token answers in the shared store, by plugin and outcome (hit: an IdP call spared; miss; get_error, set_error: the store failed and the token was verified without it)', labelNames: ['plugin', 'outcome'], registers: [registry] })
  }

  count (plugin: string, outcome: SharedTierOutcome): void { this.shared.inc({ plugin, outcome }) }
}
