import { definePlugin, insufficientScope, tokenMissing, type PluginInstance, type RequestContext } from '../../src/plugin-api.js'
import { requireScopesSchema, type RequireScopesConfig } from './schema.js'

/**
 * Authorisation by scope after a token plugin verified the caller (RFC 6750 §3.1): a token without the
 * required scopes is answered 403 insufficient_scope, naming the scope the resource needs.
 */
export default definePlugin({
  name: 'require-scopes',
  priority: 800,
  description: 'Requires the verified access token to carry scopes: all of `scopes`, at least one of `any_of`',
  schema: requireScopesSchema,
  create (config: RequireScopesConfig): PluginInstance {
    const all = Object.freeze([...new Set(config.scopes)])
    const anyOf = Object.freeze([...new Set(config.any_of)])
    const allHint = all.join(' ')
    const anyHint = anyOf.join(' ')

    function firstAbsent (scopes: readonly string[]): string | undefined {
      for (let i = 0; i < all.length; i++) if (!scopes.includes(all[i])) return all[i]
      return undefined
    }
    function hasOneOf (scopes: readonly string[]): boolean {
      if (anyOf.length === 0) return true
      for (let i = 0; i < anyOf.length; i++) if (scopes.includes(anyOf[i])) return true
      return false
    }

    return {
      needsCredential: true,
      access: function requireScopes (ctx: RequestContext): void {
        const c = ctx.credential
        // configuration validation puts a token plugin first; without a credential there is nothing to allow
        if (c === undefined) throw tokenMissing('require-scopes: no verified credential on the request')
        const absent = firstAbsent(c.scopes)
        if (absent !== undefined) throw insufficientScope(allHint, `scope "${absent}" is required; the token has "${c.scope}"`)
        if (!hasOneOf(c.scopes)) throw insufficientScope(anyHint, `one of "${anyHint}" is required; the token has "${c.scope}"`)
      },
    }
  },
})
