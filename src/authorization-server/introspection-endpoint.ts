import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AccessTokens } from './access-tokens.js'
import type { ClientAuthenticator } from './client-auth.js'
import type { ClientActivity } from './client-activity.js'
import type { FormHandler, RequestInfo } from './endpoint.js'
import { param, type FormParams } from './form-body.js'
import { OAuthError, sendJson } from './oauth-error.js'
import type { RevocationStore } from './revocation-store.js'
import { GatewayError } from '../errors/gateway-error.js'

export interface IntrospectionOptions {
  readonly auth: ClientAuthenticator
  readonly tokens: AccessTokens
}

/**
 * RFC 7662 token introspection. Callers authenticate like at the token endpoint (§2.1: the endpoint MUST
 * require authentication); only clients with `introspection: true` learn anything — for any other caller
 * every token is `{active: false}` (§2.2 lets the server answer differently per caller), and the log says why.
 */
export function introspectionEndpoint (o: IntrospectionOptions): FormHandler {
  return async function handleIntrospection (req: IncomingMessage, res: ServerResponse, info: RequestInfo, params: FormParams): Promise<void> {
    const { client } = await o.auth.authenticate(req, params, info.tls)
    const token = param(params, 'token')
    if (token === undefined) throw new OAuthError('invalid_request', 'token is required')
    let body: Record<string, unknown>
    if (!client.introspection) {
      info.log.warn({ client_id: client.id, outcome: 'not_allowed' }, 'authorization server: introspection by a client without introspection: true; answering active: false')
      body = { active: false }
    } else {
      try {
        body = await o.tokens.introspect(token)
      } catch (e) {
        if (e instanceof GatewayError && e.code === 'CB_ERR_STORE_UNAVAILABLE') throw storeDown(e)
        throw e
      }
      info.log.info({ client_id: client.id, outcome: body.active === true ? 'active' : 'inactive', token_client_id: body.client_id, jti: body.jti }, 'authorization server: token introspected')
    }
    sendJson(req, res, 200, body, { bodyRead: true })
  }
}

export interface RevocationOptions extends IntrospectionOptions {
  readonly revocations: RevocationStore
  /** Counts revocations per client (the token's) for the admin dashboard. */
  readonly activity?: ClientActivity
}

/**
 * RFC 7009 token revocation. A client may revoke the tokens issued to it; a client with `introspection: true`
 * may revoke any. Invalid, expired or unknown tokens get 200 (§2.2): there is nothing left to revoke.
 */
export function revocationEndpoint (o: RevocationOptions): FormHandler {
  return async function handleRevocation (req: IncomingMessage, res: ServerResponse, info: RequestInfo, params: FormParams): Promise<void> {
    const { client } = await o.auth.authenticate(req, params, info.tls)
    const token = param(params, 'token')
    if (token === undefined) throw new OAuthError('invalid_request', 'token is required')
    // token_type_hint is only a hint (§2.1): we issue access tokens only, so it changes nothing
    const claims = await o.tokens.verify(token)
    if (claims === undefined) {
      info.log.info({ client_id: client.id, outcome: 'not_a_live_token' }, 'authorization server: revocation of an invalid or expired token')
    } else {
      // §2.1: the server verifies the token was issued to the client making the request
      if (claims.client_id !== client.id && !client.introspection) {
        throw new OAuthError('unauthorized_client', 'the token was not issued to this client', { detail: `token of client ${claims.client_id}` })
      }
      try {
        await o.revocations.revoke(claims.jti, claims.exp)
      } catch (e) {
        // RFC 7009 §2.2.1: 503 tells the client the token was NOT revoked and to retry
        if (e instanceof GatewayError && e.code === 'CB_ERR_STORE_UNAVAILABLE') throw storeDown(e)
        throw e
      }
      o.activity?.revoked(claims.client_id)
      info.log.info({ client_id: client.id, outcome: 'revoked', token_client_id: claims.client_id, jti: claims.jti }, 'authorization server: token revoked')
    }
    res.writeHead(200, { 'cache-control': 'no-store', pragma: 'no-cache', 'content-length': 0 })
    res.end()
  }
}

function storeDown (e: GatewayError): OAuthError {
  return new OAuthError('temporarily_unavailable', 'the authorization server cannot reach its state store; retry later', { status: 503, detail: e.detail, headers: { 'retry-after': '1' } })
}
