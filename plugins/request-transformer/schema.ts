import { z } from 'zod'
import { parseTemplate, TemplateError } from './template.js'

/** RFC 9110 §5.1 field-name token. */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Framing and hop-by-hop headers: the gateway owns them (RFC 9110 §7.6.1, RFC 9112 §6). */
export const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'host', 'connection', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive', 'proxy-connection',
])

const list = (d: string) => z.array(z.string()).default([]).describe(d)
const unsupportedBody = z.array(z.string()).optional()
  .describe('Kong\'s body transformation: not supported by certbound (rejected at load when non-empty)')
const unsupportedJsonTypes = z.array(z.string()).optional()
  .describe('Kong\'s JSON body value types: not supported by certbound (rejected at load when non-empty)')

const namesSection = (verb: string) => z.strictObject({
  headers: list(`Header names to ${verb}`),
  querystring: list(`Query parameter names to ${verb}`),
  body: unsupportedBody,
})
const renameSection = z.strictObject({
  headers: list('"old:new" header renames; applied when the old header is present'),
  querystring: list('"old:new" query parameter renames; applied when the old parameter is present'),
  body: unsupportedBody,
})
const valuesSection = (when: string) => z.strictObject({
  headers: list(`"name:value" headers, ${when}; values may hold $(...) templates`),
  querystring: list(`"name:value" query parameters, ${when}; values may hold $(...) templates`),
  body: unsupportedBody,
  json_types: unsupportedJsonTypes,
})

export const requestTransformerSchema = z.strictObject({
  http_method: z.string().regex(/^[A-Z]+$/, 'must be an upper-case HTTP method').optional()
    .describe('Kong\'s method override: not supported yet by certbound (rejected at load)'),
  remove: namesSection('remove').prefault({}).describe('Step 1: remove headers and query parameters'),
  rename: renameSection.prefault({}).describe('Step 2: rename headers and query parameters'),
  replace: valuesSection('set only when already present').extend({
    uri: z.string().optional().describe('Kong\'s upstream URI rewrite: not supported by certbound (rejected at load)'),
  }).prefault({}).describe('Step 3: replace the value of headers and query parameters that are present'),
  add: valuesSection('set only when absent').prefault({}).describe('Step 4: add headers and query parameters that are absent'),
  append: valuesSection('always added (a header gets one more value)').prefault({}).describe('Step 5: append values'),
}).superRefine(function checkRequestTransformer (c, ctx) {
  const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path, message })
  if (c.http_method !== undefined) issue(['http_method'], 'changing the method is not supported by certbound yet')
  if (c.replace.uri !== undefined) issue(['replace', 'uri'], 'URI rewriting is not supported by certbound')
  for (const step of ['remove', 'rename', 'replace', 'add', 'append'] as const) {
    const s = c[step] as { body?: string[], json_types?: string[] }
    if ((s.body?.length ?? 0) > 0) issue([step, 'body'], 'body transformation is not supported')
    if ((s.json_types?.length ?? 0) > 0) issue([step, 'json_types'], 'body transformation is not supported')
  }
  const checkName = (path: Array<string | number>, name: string, isHeader: boolean): boolean => {
    if (name === '') { issue(path, 'the name is empty'); return false }
    if (isHeader && !HEADER_NAME.test(name)) { issue(path, `"${name}" is not a valid header name (RFC 9110 token)`); return false }
    if (isHeader && FORBIDDEN_HEADERS.has(name.toLowerCase())) { issue(path, `"${name}" is managed by the gateway and cannot be transformed`); return false }
    return true
  }
  for (const kind of ['headers', 'querystring'] as const) {
    const isHeader = kind === 'headers'
    c.remove[kind].forEach((n, i) => checkName(['remove', kind, i], n, isHeader))
    c.rename[kind].forEach((entry, i) => {
      const p = ['rename', kind, i]
      const colon = entry.indexOf(':')
      if (colon < 0) { issue(p, `"${entry}" must be "old:new"`); return }
      if (checkName(p, entry.slice(0, colon), isHeader)) checkName(p, entry.slice(colon + 1), isHeader)
    })
    for (const step of ['replace', 'add', 'append'] as const) {
      c[step][kind].forEach((entry, i) => {
        const p = [step, kind, i]
        const colon = entry.indexOf(':')
        if (colon < 0) { issue(p, `"${entry}" must be "name:value"`); return }
        if (!checkName(p, entry.slice(0, colon), isHeader)) return
        const value = entry.slice(colon + 1)
        if (value === '') { issue(p, 'the value is empty: the entry would never be applied'); return }
        // eslint-disable-next-line no-control-regex
        if (/[\x00-\x1f\x7f]/.test(value)) { issue(p, 'the value contains control characters (CR/LF would split the header)'); return }
        try { parseTemplate(value) } catch (e) { if (e instanceof TemplateError) issue(p, e.message); else throw e }
      })
    }
  }
})

export type RequestTransformerConfig = z.output<typeof requestTransformerSchema>
