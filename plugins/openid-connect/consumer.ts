import {
  PluginConfigError, GatewayError, findConsumer, setConsumer, type PluginDeps, type PluginInstance,
  type RequestContext, type ConsumerBy,
} from '../../src/plugin-api.js'

export interface ConsumerClaimConfig {
  readonly consumer_claim?: readonly string[] | undefined
  readonly consumer_by: ReadonlyArray<ConsumerBy>
  readonly consumer_optional: boolean
}

/** The claim at `path` (Kong: several names are a path into nested objects) as the strings it holds. */
function claimValues (claims: Readonly<Record<string, unknown>>, path: readonly string[]): string[] {
  let v: unknown = claims
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return []
    v = (v as Record<string, unknown>)[k]
  }
  const list = Array.isArray(v) ? v : [v]
  return list.flatMap(x => typeof x === 'string' && x !== '' ? [x] : typeof x === 'number' ? [String(x)] : [])
}

/**
 * Kong openid-connect's consumer mapping: after the token is verified, the value of `consumer_claim` names a
 * consumer by each of `consumer_by` in order. No match: 403, unless `consumer_optional`. A separate wrapper so
 * the token core does not know about consumers.
 */
export function withConsumerMapping (inst: PluginInstance, config: ConsumerClaimConfig, deps: PluginDeps): PluginInstance {
  const path = config.consumer_claim
  if (path === undefined) return inst
  const dir = deps.consumers
  if ((dir === undefined || dir.size === 0) && !config.consumer_optional) {
    throw new PluginConfigError(['consumer_claim'], 'needs consumers: (none are configured): every token would be refused; add consumers or set consumer_optional: true')
  }
  const original = inst.access!.bind(inst)
  const by = config.consumer_by
  function mapClaimToConsumer (ctx: RequestContext): void {
    const c = ctx.credential
    if (c === undefined) return
    const values = claimValues(c.claims, path!)
    const consumer = dir === undefined ? undefined : findConsumer(dir, by, values)
    if (consumer !== undefined) { setConsumer(ctx, consumer); return }
    if (config.consumer_optional) return
    throw new GatewayError('CB_ERR_CONSUMER_NOT_FOUND', { detail: `openid-connect: claim ${path!.join('.')} (${values.join(', ') || 'absent'}) names no consumer by ${by.join(' or ')}` })
  }
  // an own property shadowing the class's method: every other member (state, timers, close) stays the instance's
  ;(inst as { access: NonNullable<PluginInstance['access']> }).access = function openidConnectConsumerAccess (ctx: RequestContext): void | Promise<void> {
    const r = original(ctx)
    if (r instanceof Promise) return r.then(() => mapClaimToConsumer(ctx))
    mapClaimToConsumer(ctx)
  }
  return inst
}
