import { z } from 'zod'

/** RFC 6749 §3.3 scope-token: printable ASCII except space, double quote and backslash. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be one RFC 6749 scope token (no spaces, quotes or backslashes)')

export const requireScopesSchema = z.strictObject({
  scopes: z.array(scopeToken).default([])
    .describe('Scopes the access token must all carry (AND)'),
  any_of: z.array(scopeToken).default([])
    .describe('Scopes of which the access token must carry at least one (OR); combined with scopes, both must hold'),
}).superRefine(function checkRequireScopes (c, ctx) {
  if (c.scopes.length === 0 && c.any_of.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'give scopes (all required) or any_of (at least one), or both' })
  }
})

export type RequireScopesConfig = z.output<typeof requireScopesSchema>
