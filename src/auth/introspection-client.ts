import { STATUS_CODES } from 'node:http'
import type { HttpClient, HttpRequestOptions } from '../http-client/types.js'
import type { LocalIssuer } from '../pipeline/local-issuer.js'
import { GatewayError, invalidToken } from '../errors/index.js'
import { basicAuthorization, formBody } from './form-encode.js'
import { sanitize } from './credential.js'

const MAX_RESPONSE_BYTES = 256 * 1024

export interface IntrospectionClientOptions {
  readonly http: HttpClient
  /** The endpoint; a function because openid-connect discovers it. Undefined: none known yet (503). */
  readonly endpoint: () => string | undefined
  /** The in-process authorization server serving that endpoint, if any: asked directly, no HTTP round trip. */
  readonly local: () => LocalIssuer | undefined
  /**
   * How the gateway authenticates (RFC 7662 §2.1): client_secret_basic / client_secret_post (RFC 6749 §2.3.1),
   * tls_client_auth (RFC 8705 §2.1: client_id in the body, the certificate in `tls`), none (the local issuer).
   */
  readonly authMethod: 'client_secret_basic' | 'client_secret_post' | 'tls_client_auth' | 'none'
  readonly clientId?: string
  readonly clientSecret?: string
  /** token_type_hint (RFC 7662 §2.1). */
  readonly hint: string
  readonly timeoutMs: number
  readonly tls?: HttpRequestOptions['tls']
}

/** A short, log-safe excerpt of an IdP answer. */
function snippet (body: Buffer): string {
  const s = sanitize(body.subarray(0, 300).toString('utf8'))
  return body.length > 300 ? s + '…' : s
}

/**
 * The one RFC 7662 client. Fails closed: unreachable, 5xx or an answer that is not a JSON object is
 * CB_ERR_IDP_UNAVAILABLE (503); a 4xx (some servers refuse to introspect some tokens, or this client) is 401
 * invalid_token with the server's answer in the log. Judging the answer (active, exp, token type) is the caller's.
 */
export class IntrospectionClient {
  private readonly headers: Record<string, string>
  private readonly credentialsInBody: ReadonlyArray<readonly [string, string]>

  constructor (private readonly o: IntrospectionClientOptions) {
    this.headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    const body: Array<readonly [string, string]> = []
    if (o.clientId !== undefined) {
      if (o.authMethod === 'client_secret_basic') this.headers.authorization = basicAuthorization(o.clientId, o.clientSecret ?? '')
      else if (o.authMethod === 'client_secret_post') {
        body.push(['client_id', o.clientId])
        if (o.clientSecret !== undefined) body.push(['client_secret', o.clientSecret])
      } else if (o.authMethod === 'tls_client_auth') body.push(['client_id', o.clientId])
    }
    this.credentialsInBody = body
  }

  async introspect (token: string): Promise<Record<string, unknown>> {
    const local = this.o.local()
    if (local !== undefined) {
      try {
        return await local.introspect(token)
      } catch (err) {
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `built-in introspection failed: ${(err as Error).message}`, cause: err })
      }
    }
    const endpoint = this.o.endpoint()
    if (endpoint === undefined) throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: 'no introspection endpoint is known' })
    const body = formBody([['token', token], ['token_type_hint', this.o.hint], ...this.credentialsInBody])
    let res
    try {
      res = await this.o.http.request(endpoint, { method: 'POST', headers: this.headers, body, timeoutMs: this.o.timeoutMs, maxResponseBytes: MAX_RESPONSE_BYTES, tls: this.o.tls })
    } catch (err) {
      const e = err as Error & { code?: string }
      throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection endpoint ${origin(endpoint)} unreachable: ${e.code ?? e.name}: ${e.message}`, cause: err })
    }
    const answered = `introspection endpoint answered ${res.status} (HTTP ${res.status} ${STATUS_CODES[res.status] ?? ''}): ${snippet(res.body)}`
    if (res.status >= 400 && res.status < 500) throw invalidToken(answered)
    if (res.status < 200 || res.status >= 300) throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: answered })
    let v: unknown
    try { v = JSON.parse(res.body.toString('utf8')) } catch { v = undefined }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `the introspection response is not a JSON object: ${snippet(res.body)}` })
    }
    return v as Record<string, unknown>
  }
}

function origin (u: string): string {
  try { return new URL(u).origin } catch { return '(invalid URL)' }
}
