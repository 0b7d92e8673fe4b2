import type { z } from 'zod'
import type { ConfigReporter } from './config-set.js'
import { closest, type PathKey } from './diagnostic.js'

interface Def { type: string, shape?: Record<string, z.ZodType>, innerType?: z.ZodType, element?: z.ZodType, options?: z.ZodType[], in?: z.ZodType, out?: z.ZodType, valueType?: z.ZodType }
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def

/** The keys an object schema at `path` accepts (for "did you mean" hints). */
export function knownKeys (schema: z.ZodType, path: readonly PathKey[]): string[] {
  const found = new Set<string>()
  const visit = (s: z.ZodType | undefined, i: number, depth: number): void => {
    if (s === undefined || depth > 40) return
    const d = defOf(s)
    switch (d.type) {
      case 'optional': case 'default': case 'nullable': case 'readonly': case 'prefault': case 'catch': case 'nonoptional':
        return visit(d.innerType, i, depth + 1)
      case 'pipe': visit(d.in, i, depth + 1); return
      case 'union': for (const o of d.options ?? []) visit(o, i, depth + 1); return
      case 'lazy': return visit((s as unknown as { _zod: { def: { getter(): z.ZodType } } })._zod.def.getter(), i, depth + 1)
      case 'array': if (typeof path[i] === 'number') visit(d.element, i + 1, depth + 1); return
      case 'record': if (i < path.length) visit(d.valueType, i + 1, depth + 1); return
      case 'object':
        if (i === path.length) { for (const k of Object.keys(d.shape ?? {})) found.add(k); return }
        visit(d.shape?.[String(path[i])], i + 1, depth + 1)
    }
  }
  visit(schema, 0, 0)
  return [...found]
}

/**
 * Turn zod issues into positioned diagnostics. `prefix` is where the validated value sits in the file
 * (a plugin's `config` block), `label` names it in messages ("plugin \"mtls-auth\"").
 */
export function reportZodIssues (src: Pick<ConfigReporter, 'report'>, schema: z.ZodType, issues: readonly z.core.$ZodIssue[], prefix: readonly PathKey[], label?: string): void {
  for (const issue of flatten(issues)) {
    const path = [...prefix, ...(issue.path as PathKey[])]
    switch (issue.code) {
      case 'unrecognized_keys': {
        const keys = knownKeys(schema, issue.path as PathKey[])
        for (const k of issue.keys) {
          const hint = closest(k, keys)
          const where = label !== undefined && issue.path.length === 0 ? ` for ${label}` : ''
          src.report(path, 'CB_CFG_UNKNOWN_FIELD', `unknown field "${k}"${where}${hint === undefined ? '' : `; did you mean "${hint}"?`}`, k)
        }
        break
      }
      case 'invalid_value':
        if (issue.input === undefined) src.report(path, 'CB_CFG_REQUIRED', `is required (${issue.values.map(v => String(v)).join(', ')})`)
        else src.report(path, 'CB_CFG_INVALID', `must be one of ${issue.values.map(v => String(v)).join(', ')}`)
        break
      case 'invalid_type':
        if (issue.input === undefined) src.report(path, 'CB_CFG_REQUIRED', `is required (${describeExpected(issue.expected)})`)
        else src.report(path, 'CB_CFG_TYPE', `must be ${describeExpected(issue.expected)}, got ${describeValue(issue.input)}`)
        break
      case 'too_small': case 'too_big':
        src.report(path, 'CB_CFG_RANGE', issue.message.replace(/^Too (small|big): expected /, 'must be ').replace(/^(Array|String) must/, 'must'))
        break
      default:
        src.report(path, 'CB_CFG_INVALID', issue.message)
    }
  }
}

function flatten (issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = []
  for (const i of issues) {
    if (i.code === 'invalid_union' && i.errors.length > 0) {
      // report the branch that got furthest: the one with the deepest issue path
      let best = i.errors[0]
      for (const e of i.errors) if (depth(e) > depth(best)) best = e
      out.push(...flatten(best.map(e => ({ ...e, path: [...i.path, ...e.path] }) as z.core.$ZodIssue)))
    } else out.push(i)
  }
  return out
}
const depth = (es: readonly z.core.$ZodIssue[]): number => Math.max(0, ...es.map(e => e.path.length))

function describeExpected (e: string): string {
  if (e === 'array') return 'a list'
  if (e === 'object') return 'a mapping'
  if (e === 'int') return 'an integer'
  return `a ${e}`
}

function describeValue (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`
  return String(v)
}
