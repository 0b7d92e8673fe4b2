import type { HttpClient, HttpTlsOptions } from '../../src/http-client/types.js'
import { GatewayError, invalidToken } from '../../src/errors/index.js'
import type { IdpState } from './idp.js'

export interface IntrospectionOptions {
  readonly http: HttpClient
  readonly clientId: string | undefined
  readonly clientSecret: string | undefined
  readonly authMethod: 'client_secret_basic' | 'client_secret_post'
  readonly hint: string
  readonly timeoutMs: number
  readonly tls: HttpTlsOptions | undefined
}

/** RFC 6749 Appendix B: application/x-www-form-urlencoded, as required for client_secret_basic (§2.3.1). */
function formEncode (s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

/**
 * An RFC 7662 client: POSTs the token (properly form-encoded) to the issuer's introspection endpoint, or asks
 * the in-process issuer. Fails closed: unreachable, 5xx or a malformed answer is CB_ERR_IDP_UNAVAILABLE (503);
 * a 4xx (some IdPs refuse to introspect some tokens) is 401 invalid_token with the IdP's answer in the log.
 */
export class IntrospectionClient {
  private readonly headers: Record<string, string>
  private readonly credentialsInBody: string

  constructor (private readonly o: IntrospectionOptions, private readonly idp: IdpState) {
    this.headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    this.credentialsInBody = ''
    if (o.clientId !== undefined) {
      if (o.authMethod === 'client_secret_basic') {
        this.headers.authorization = 'Basic ' + Buffer.from(formEncode(o.clientId) + ':' + formEncode(o.clientSecret ?? '')).toString('base64')
      } else {
        this.credentialsInBody = '&client_id=' + formEncode(o.clientId) + (o.clientSecret === undefined ? '' : '&client_secret=' + formEncode(o.clientSecret))
      }
    }
  }

  async introspect (token: string): Promise<Record<string, unknown>> {
    const local = this.idp.localIssuer()
    if (local !== undefined) {
      try {
        return await local.introspect(token)
      } catch (err) {
        throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `local issuer introspection failed: ${(err as Error).message}`, cause: err })
      }
    }
    const endpoint = this.idp.introspectionEndpoint
    if (endpoint === undefined) throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: 'no introspection endpoint is known' })
    const body = 'token=' + formEncode(token) + '&token_type_hint=' + formEncode(this.o.hint) + this.credentialsInBody
    let res
    try {
      res = await this.o.http.request(endpoint, { method: 'POST', headers: this.headers, body, timeoutMs: this.o.timeoutMs, maxResponseBytes: 256 * 1024, tls: this.o.tls })
    } catch (err) {
      throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection at ${endpoint} failed: ${(err as Error).message}`, cause: err })
    }
    if (res.status >= 400 && res.status < 500) {
      throw invalidToken(`introspection endpoint answered HTTP ${res.status}: ${res.body.toString('utf8', 0, Math.min(res.body.length, 300))}`)
    }
    if (res.status !== 200) throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: `introspection endpoint answered HTTP ${res.status}` })
    let v: unknown
    try { v = JSON.parse(res.body.toString('utf8')) } catch { v = undefined }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new GatewayError('CB_ERR_IDP_UNAVAILABLE', { detail: 'the introspection response is not a JSON object' })
    }
    return v as Record<string, unknown>
  }
}
