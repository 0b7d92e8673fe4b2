import { z } from 'zod'
import { rootSchema, gatewaySchema, serviceSchema, routeSchema, limitsSchema, listenSchema } from '../config/schema.js'
import { CONFIG_ERRORS, ERRORS } from '../errors/codes.js'
import type { PluginDefinition } from '../pipeline/types.js'
import type { GatewayExtension } from '../extensions/types.js'

interface JsonSchema { type?: string | string[], description?: string, default?: unknown, enum?: unknown[], properties?: Record<string, JsonSchema>, items?: JsonSchema, anyOf?: JsonSchema[], oneOf?: JsonSchema[], required?: string[], const?: unknown, additionalProperties?: unknown, minimum?: number, maximum?: number }

function typeOf (s: JsonSchema): string {
  if (s.enum !== undefined) return s.enum.map(v => `\`${String(v)}\``).join(' \\| ')
  if (s.const !== undefined) return `\`${String(s.const)}\``
  const alts = s.anyOf ?? s.oneOf
  if (alts !== undefined) return alts.map(typeOf).join(' or ')
  if (s.type === 'array') return `list of ${s.items === undefined ? 'any' : typeOf(s.items)}`
  if (Array.isArray(s.type)) return s.type.join(' or ')
  if (s.type === 'object') return 'mapping'
  return s.type ?? 'any'
}

function rows (s: JsonSchema, prefix: string, out: string[], depth = 0): void {
  for (const [k, v] of Object.entries(s.properties ?? {})) {
    const name = prefix === '' ? k : `${prefix}.${k}`
    const dflt = v.default === undefined ? '' : `\`${JSON.stringify(v.default)}\``
    const desc = (v.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')
    out.push(`| \`${name}\` | ${typeOf(v)} | ${dflt} | ${desc} |`)
    const obj = v.properties !== undefined ? v : (v.anyOf ?? []).find(a => a.properties !== undefined)
    if (obj !== undefined && depth < 3) rows(obj, name, out, depth + 1)
    if (v.type === 'array' && v.items?.properties !== undefined && depth < 3) rows(v.items, `${name}[]`, out, depth + 1)
  }
}

function table (schema: z.ZodType, prefix = ''): string {
  const js = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
  const out = ['| key | type | default | description |', '|---|---|---|---|']
  rows(js, prefix, out)
  return out.join('\n')
}

/** The configuration reference and error catalogue, generated from the schemas and codes (STYLE.md rule 8). */
export function generateReference (plugins: ReadonlyMap<string, PluginDefinition>, extensions: readonly GatewayExtension[]): string {
  const parts: string[] = [
    '# certbound configuration reference',
    '',
    'Generated from the schemas by `npm run docs` — do not edit by hand. Every key of `gateway.yml`, with its type,',
    'default and meaning. Unknown keys are errors. Paths are relative to the config file.',
    '',
    '## Top level',
    '',
    table(rootSchema.omit({ gateway: true, services: true, routes: true, plugins: true })),
    '',
    '## `gateway`',
    '',
    table(gatewaySchema.omit({ listen: true, limits: true }), 'gateway'),
    '',
    '### `gateway.listen[]`',
    '',
    table(listenSchema, 'gateway.listen[]'),
    '',
    '### `gateway.limits`',
    '',
    table(limitsSchema, 'gateway.limits'),
    '',
    '## `services[]`',
    '',
    table(serviceSchema.omit({ routes: true, plugins: true }), 'services[]'),
    '',
    '## `services[].routes[]` and `routes[]`',
    '',
    table(routeSchema.omit({ plugins: true }), 'routes[]'),
    '',
    '## Plugins',
    '',
    'Each entry of `plugins:` (top level, or nested in a service or route) has `name`, `config`, and for top-level',
    'entries `route:` / `service:`; `enabled`, `tags`, `protocols`. The chain runs in priority order (higher first),',
    'whatever the YAML order.',
    '',
    '| plugin | priority | what it does |',
    '|---|--:|---|',
    ...[...plugins.values()].sort((a, b) => b.priority - a.priority).map(p => `| [\`${p.name}\`](#${p.name}) | ${p.priority} | ${p.description} |`),
    '',
  ]
  for (const p of [...plugins.values()].sort((a, b) => b.priority - a.priority)) {
    parts.push(`### ${p.name}`, '', p.description, '', table(p.schema, 'config'), '', `See plugins/${p.name}/README.md for examples.`, '')
  }
  for (const e of extensions) {
    parts.push(`## \`${e.section}\``, '', table(e.schema, e.section), '')
  }
  parts.push('## Error codes', '', 'Stable codes: a shipped code never changes meaning. Client-facing messages of authentication errors are generic; the', 'specific reason goes to the log.', '', '| code | status | message |', '|---|--:|---|')
  for (const [code, v] of Object.entries(ERRORS)) parts.push(`| \`${code}\` | ${v.status} | ${v.message} |`)
  parts.push('', '### Configuration codes', '', 'Each problem `certbound validate` (or a refused reload) reports carries file:line:col, the key path and one of:', '', '| code | meaning |', '|---|---|')
  for (const [code, meaning] of Object.entries(CONFIG_ERRORS)) parts.push(`| \`${code}\` | ${meaning.replace(/\|/g, '\\|')} |`)
  parts.push('')
  return parts.join('\n')
}
