import type { ConfigReporter } from './config-set.js'
import type { ConsumerConfig } from './schema.js'
import type { Consumer } from '../pipeline/context.js'
import { salvaged } from './salvage.js'

/** A consumer as requests see it (frozen), and where it is in the config. */
export interface ResolvedConsumer extends Consumer {
  readonly path: readonly (string | number)[]
}

/**
 * Kong's rules for consumers: at least one of username and custom_id; username, custom_id and id each unique
 * (across every file). Holes (entries the schema refused) are skipped: they were reported.
 */
export function resolveConsumers (src: ConfigReporter, list: readonly ConsumerConfig[]): ResolvedConsumer[] {
  const out: ResolvedConsumer[] = []
  const seen = { username: new Map<string, number>(), custom_id: new Map<string, number>(), id: new Map<string, number>() }
  list.forEach((c, i) => {
    const p = ['consumers', i]
    // a consumer whose custom_id was refused (reported) is not also missing one
    if (c.username === undefined && c.custom_id === undefined && !salvaged.has(c)) { src.report(p, 'CB_CFG_REQUIRED', 'a consumer needs username or custom_id (or both)'); return }
    let dup = false
    for (const k of ['username', 'custom_id', 'id'] as const) {
      const v = c[k]
      if (v === undefined) continue
      const prev = seen[k].get(v)
      if (prev !== undefined) { src.report([...p, k], 'CB_CFG_DUPLICATE', `consumer ${k} "${v}" is already used by ${src.describe(['consumers', prev])}`); dup = true } else seen[k].set(v, i)
    }
    if (dup) return
    const groups = [...new Set((c.acls ?? []).map(a => a.group))]
    out.push(Object.freeze({
      id: c.id ?? c.username ?? c.custom_id!,
      username: c.username,
      customId: c.custom_id,
      groups: Object.freeze(groups),
      path: p,
    }))
    if (c.username === undefined && c.custom_id === undefined) out.pop()
  })
  return out
}
