import { clientAddress, type RequestContext, type CidrSet } from '../../src/plugin-api.js'
import type { RateLimitingConfig } from './schema.js'

/**
 * What a request is counted under, as `kind:value` (the kinds keep a client_id "10.0.0.1" apart from the address
 * 10.0.0.1). Kong's `get_identifier`: the chosen key, and when the request has no value for it, the client's address.
 */
export type Identify = (ctx: RequestContext) => string

export function compileIdentifier (c: RateLimitingConfig, trusted: CidrSet): Identify {
  const ip = (ctx: RequestContext): string => 'ip:' + clientAddress(ctx.remoteAddress, headerValue(ctx, 'x-forwarded-for'), trusted)
  switch (c.limit_by ?? 'consumer') {
    case 'ip':
      return ip
    case 'consumer':
      // Kong: the consumer, else the credential, else the address
      return function byConsumer (ctx) {
        const consumer = ctx.consumer?.id
        return consumer !== undefined ? 'consumer:' + consumer : credentialOf(ctx) ?? ip(ctx)
      }
    case 'credential':
      return function byCredential (ctx) { return credentialOf(ctx) ?? ip(ctx) }
    case 'service':
      // an internal route (the authorization server's endpoints) has no service: the address, as Kong
      return function byService (ctx) { const s = serviceOf(ctx); return s === undefined ? ip(ctx) : 'service:' + s }
    case 'header': {
      const name = c.header_name!.toLowerCase()
      return function byHeader (ctx) {
        const v = headerValue(ctx, name)
        return v === undefined || v === '' ? ip(ctx) : 'header:' + v
      }
    }
    case 'path': {
      const path = c.path!
      // Kong compares the request path with `path` exactly; ours is the normalised path (dot segments removed,
      // unreserved characters decoded), so /a/../limited and /%6Cimited count as /limited
      return function byPath (ctx) { return ctx.path === path ? 'path:' + path : ip(ctx) }
    }
  }
}

/**
 * The verified caller: the token's client_id (RFC 9068 §2.2, RFC 7662 §2.2) when a token plugin verified one,
 * else the SHA-256 thumbprint of a client certificate that was verified (by the listener's client_ca or by
 * mtls-auth). An unverified certificate does not count as an identity: a client could mint one per request.
 */
function credentialOf (ctx: RequestContext): string | undefined {
  const id = ctx.credential?.clientId
  if (id !== undefined && id !== '') return 'client:' + id
  const verified = ctx.clientCertificate
  if (verified !== undefined) return 'cert:' + verified.certificate.x5tS256
  const tls = ctx.tls
  if (tls !== null && tls.verified && tls.certificate !== null) return 'cert:' + tls.certificate.x5tS256
  return undefined
}

/** The route's service name; undefined for a route answered by the gateway itself. */
export function serviceOf (ctx: RequestContext): string | undefined {
  return (ctx.route.service as { readonly name: string } | undefined)?.name
}

/** One header's value; repeated headers are joined by node (", "), so a client cannot pick which one counts. */
function headerValue (ctx: RequestContext, name: string): string | undefined {
  const v = ctx.headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}
