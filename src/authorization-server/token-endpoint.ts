import type { RequestContext } from '../pipeline/context.js'
import type { TerminalResponse } from '../pipeline/types.js'
import type { AccessTokens } from './access-tokens.js'
import type { ClientAuthenticator } from './client-auth.js'
import type { ClientActivity } from './client-activity.js'
import type { CompiledClient } from './clients.js'
import type { FormHandler } from './endpoint.js'
import { param, type FormParams } from './form-body.js'
import { OAuthError, oauthJson } from './oauth-error.js'
import { SCOPE_TOKEN } from './schema.js'
import type { TokenEndpointDpop } from './dpop.js'

export interface TokenEndpointOptions {
  readonly auth: ClientAuthenticator
  readonly tokens: AccessTokens
  /** aud of tokens requested without resource/audience. */
  readonly defaultAudience: string
  /** RFC 9449 §5 DPoP-bound tokens. */
  readonly dpop?: TokenEndpointDpop
  /** Counts tokens issued per client for the admin dashboard. */
  readonly activity?: ClientActivity
}

/** The token endpoint (RFC 6749 §3.2), client credentials grant (§4.4). */
export function tokenEndpoint (o: TokenEndpointOptions): FormHandler {
  return async function handleTokenRequest (ctx: RequestContext, params: FormParams): Promise<TerminalResponse> {
    const grantType = param(params, 'grant_type')
    if (grantType === undefined) throw new OAuthError('invalid_request', 'grant_type is required')
    if (grantType !== 'client_credentials') throw new OAuthError('unsupported_grant_type', 'only grant_type=client_credentials is supported')

    const { client, method } = await o.auth.authenticate(ctx.req, params, ctx.tls)
    if (!client.grantTypes.has(grantType)) throw new OAuthError('unauthorized_client', `the client may not use ${grantType}`)
    const scopes = grantedScopes(client, param(params, 'scope'))
    const audience = requestedAudience(client, params, o.defaultAudience)

    // RFC 9449 §5: a proof binds the token to its key (and wins over the certificate: see dpop.ts)
    const jkt = await o.dpop?.bindingFor(ctx.req, client)
    // RFC 8705 §3: bind to the certificate of this TLS session
    const cert = ctx.tls?.certificate ?? null
    if (client.binding === 'required' && cert === null) {
      throw new OAuthError('invalid_request', 'this client\'s access tokens are certificate-bound (RFC 8705 §3): present the client certificate on the TLS connection')
    }
    const x5t = jkt === undefined && client.binding !== 'never' && cert !== null ? cert.x5tS256 : undefined

    const { token, claims } = await o.tokens.issue({ clientId: client.id, scopes, audience, ttl: client.ttl, x5tS256: x5t, jkt })
    o.activity?.issued(client.id)
    ctx.log.info({ client_id: client.id, auth_method: method, outcome: 'issued', scope: claims.scope, aud: claims.aud, bound: x5t !== undefined ? 'x5t#S256' : (jkt !== undefined ? 'jkt' : false), jti: claims.jti, exp: claims.exp }, 'authorization server: access token issued')
    // RFC 6749 §5.1; token_type stays Bearer for certificate-bound tokens (RFC 8705 §3), DPoP for DPoP-bound (RFC 9449 §5)
    const body: Record<string, unknown> = { access_token: token, token_type: jkt === undefined ? 'Bearer' : 'DPoP', expires_in: client.ttl }
    if (claims.scope !== undefined) body.scope = claims.scope
    return oauthJson(200, body)
  }
}

/**
 * RFC 6749 §3.3: no scope → every scope the client may have; otherwise each requested scope must be allowed
 * (a narrower set is fine). Order and duplicates of the request are normalised away.
 */
export function grantedScopes (client: CompiledClient, requested: string | undefined): string[] {
  if (requested === undefined) return [...client.scopes]
  const asked = requested.split(' ').filter(s => s !== '')
  const out = new Set<string>()
  for (const s of asked) {
    if (!SCOPE_TOKEN.test(s)) throw new OAuthError('invalid_scope', 'scope must be space-separated scope tokens (RFC 6749 §3.3)')
    if (!client.scopeSet.has(s)) throw new OAuthError('invalid_scope', `scope "${s}" is not allowed for this client`)
    out.add(s)
  }
  return client.scopes.filter(s => out.has(s))
}

/** RFC 8707 `resource` (absolute URIs, no fragment) and `audience` values, each one allowed for the client. */
export function requestedAudience (client: CompiledClient, params: FormParams, dflt: string): string[] {
  const resources = params.get('resource') ?? []
  const audiences = params.get('audience') ?? []
  for (const r of resources) {
    let u: URL | undefined
    try { u = new URL(r) } catch { /* below */ }
    if (u === undefined || r.includes('#')) throw new OAuthError('invalid_target', 'resource must be an absolute URI without a fragment (RFC 8707 §2)')
  }
  const all = [...new Set([...resources, ...audiences])]
  if (all.length === 0) return [dflt]
  for (const a of all) {
    if (!client.resources.has(a)) throw new OAuthError('invalid_target', `the client may not request a token for ${JSON.stringify(a.length > 200 ? a.slice(0, 200) + '…' : a)}`)
  }
  return all
}
