import type { z } from 'zod'

type Nested = Record<string, (v: unknown) => unknown[]>

/** Entries kept after losing keys their schema refused: checks that depend on the lost keys skip them. */
export const salvaged = new WeakSet<object>()

/**
 * After a schema failure (already reported), the part of an entry that does parse: refused keys are dropped (their
 * defaults apply) and nested lists are salvaged entry by entry. A route with a typo in `paths` still gets its
 * plugins checked, so one run reports the typo and the plugin's problems together. Undefined when even a required
 * key (a service's `name`) is refused.
 */
export function salvageEntity<S extends z.ZodType> (schema: S, raw: unknown, nested: Nested = {}): z.output<S> | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined
  const work: Record<string, unknown> = { ...(raw as Record<string, unknown>) }
  const lists: Record<string, unknown[]> = {}
  for (const [k, f] of Object.entries(nested)) {
    if (!(k in work)) continue
    lists[k] = f(work[k])
    delete work[k]
  }
  let lost = false
  // each round drops every key an issue names; a handful of rounds covers refinements that only run once the shape is right
  for (let round = 0; round < 6; round++) {
    const r = schema.safeParse(work)
    if (r.success) {
      const out = { ...(r.data as Record<string, unknown>), ...lists }
      if (lost) salvaged.add(out)
      return out as z.output<S>
    }
    let removed = false
    for (const issue of r.error.issues) {
      if (issue.code === 'unrecognized_keys' && issue.path.length === 0) {
        for (const k of issue.keys) { if (k in work) { delete work[k]; removed = true } }
      } else if (typeof issue.path[0] === 'string' && issue.path[0] in work) {
        delete work[issue.path[0]]
        removed = true
      }
    }
    if (!removed) return undefined
    lost = true
  }
  return undefined
}

/**
 * A list's entries that parse (or salvage) on their own. Refused entries stay holes: sparse arrays keep indexes
 * pointing at the right YAML items, and forEach skips them (they were reported).
 */
export function salvageList<S extends z.ZodType> (schema: S, v: unknown, nested: Nested = {}): Array<z.output<S>> {
  const out: Array<z.output<S>> = []
  if (Array.isArray(v)) v.forEach((x: unknown, i) => { const e = salvageEntity(schema, x, nested); if (e !== undefined) out[i] = e })
  return out
}
