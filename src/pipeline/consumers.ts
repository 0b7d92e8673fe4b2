import { StateKey, type Consumer, type RequestContext } from './context.js'

/** The config's `consumers:`, looked up by the keys Kong's plugins map with (`consumer_by`). */
export interface ConsumerDirectory {
  readonly size: number
  byUsername(username: string): Consumer | undefined
  byCustomId(customId: string): Consumer | undefined
  byId(id: string): Consumer | undefined
}

/** Kong's `consumer_by` values, tried in the order given. */
export type ConsumerBy = 'username' | 'custom_id' | 'id'

export function createConsumerDirectory (consumers: readonly Consumer[]): ConsumerDirectory {
  const byUsername = new Map<string, Consumer>()
  const byCustomId = new Map<string, Consumer>()
  const byId = new Map<string, Consumer>()
  for (const c of consumers) {
    if (c.username !== undefined) byUsername.set(c.username, c)
    if (c.customId !== undefined) byCustomId.set(c.customId, c)
    byId.set(c.id, c)
  }
  return Object.freeze({
    size: consumers.length,
    byUsername: (u: string) => byUsername.get(u),
    byCustomId: (c: string) => byCustomId.get(c),
    byId: (i: string) => byId.get(i),
  })
}

/** The first consumer any of `values` names, by each of `by` in order (Kong: consumer_by order wins over value order). */
export function findConsumer (dir: ConsumerDirectory, by: readonly ConsumerBy[], values: readonly string[]): Consumer | undefined {
  for (const b of by) {
    for (const v of values) {
      const c = b === 'username' ? dir.byUsername(v) : b === 'custom_id' ? dir.byCustomId(v) : dir.byId(v)
      if (c !== undefined) return c
    }
  }
  return undefined
}

/**
 * Headers Kong sends upstream for a mapped consumer. Stripped from every client request on every route (a client
 * must not pose as a consumer), set only by the plugin that mapped one.
 */
export const CONSUMER_HEADERS = ['x-consumer-id', 'x-consumer-username', 'x-consumer-custom-id', 'x-consumer-groups', 'x-authenticated-groups', 'x-anonymous-consumer'] as const

/**
 * Map the request to `consumer` (write-once: the first authentication plugin that maps one wins, as in Kong where
 * a later plugin with a different consumer is a configuration mistake) and tell the upstream, as Kong does.
 */
export function setConsumer (ctx: RequestContext, consumer: Consumer): void {
  if (ctx.consumer !== undefined) return
  ctx.consumer = consumer
  ctx.setUpstreamHeader('x-consumer-id', consumer.id)
  if (consumer.username !== undefined) ctx.setUpstreamHeader('x-consumer-username', consumer.username)
  if (consumer.customId !== undefined) ctx.setUpstreamHeader('x-consumer-custom-id', consumer.customId)
}

/**
 * Kong's authenticated groups: groups an authentication plugin established without a consumer (mtls-auth with
 * skip_consumer_lookup and authenticated_group_by). The acl plugin checks them when no consumer was mapped.
 */
export const AUTHENTICATED_GROUPS = new StateKey<readonly string[]>('authenticated_groups')
