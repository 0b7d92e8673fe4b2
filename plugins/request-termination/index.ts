import { definePlugin, GatewayError, type RequestContext } from '../../src/plugin-api.js'
import { schema } from './schema.js'

const REDACTED_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization'])

/** Kong's request-termination: answer from the gateway without calling the upstream (demos, tests, maintenance). */
export default definePlugin({
  name: 'request-termination',
  priority: 2,
  description: 'Answer every request with a fixed response, or echo the request back as JSON',
  schema,
  create (config) {
    const fixed = config.echo
      ? undefined
      : config.body !== undefined
        ? { body: config.body, type: config.content_type ?? 'text/plain' }
        : { body: JSON.stringify({ message: config.message ?? defaultMessage(config.status_code) }), type: 'application/json; charset=utf-8' }
    const trigger = config.trigger?.toLowerCase()
    return {
      access: function requestTerminationAccess (ctx: RequestContext): void {
        if (trigger !== undefined && ctx.headers[trigger] === undefined && !new URLSearchParams(ctx.query).has(trigger)) return
        if (fixed !== undefined) throw new GatewayError('CB_ERR_TERMINATED', { status: config.status_code, body: fixed.body, contentType: fixed.type })
        throw new GatewayError('CB_ERR_TERMINATED', { status: config.status_code, body: JSON.stringify(echo(ctx), null, 2) + '\n', contentType: 'application/json; charset=utf-8' })
      },
    }
  },
})

function defaultMessage (status: number): string {
  return status === 503 ? 'Service unavailable' : status === 404 ? 'Not found' : status < 400 ? 'OK' : 'Request terminated'
}

/**
 * What the upstream would have seen: the request after the chain (stripped and injected headers applied).
 * The bearer token itself is never echoed.
 */
function echo (ctx: RequestContext): Record<string, unknown> {
  const headers: Record<string, string | string[]> = {}
  const raw = ctx.req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase()
    if (k.startsWith('x-credential-')) continue
    headers[k] = REDACTED_HEADERS.has(k) ? '[redacted]' : raw[i + 1]
  }
  for (const [name, value] of ctx.upstreamHeaders) {
    if (value === null) delete headers[name]
    else headers[name] = value
  }
  const cert = ctx.tls?.certificate
  return {
    request: {
      method: ctx.method,
      path: ctx.path,
      query: Object.fromEntries(new URLSearchParams(ctx.query)),
      headers,
      route: ctx.route.name,
    },
    tls: ctx.tls === null ? null : {
      protocol: ctx.tls.protocol,
      resumed: ctx.tls.resumed,
      client_certificate: cert === null || cert === undefined ? null : { subject: cert.subject, issuer: cert.issuer, serial: cert.serialNumber, x5t_s256: cert.x5tS256, verified_by_listener: ctx.tls.verified },
    },
    credential: ctx.credential === undefined ? null : { sub: ctx.credential.sub, client_id: ctx.credential.clientId, scope: ctx.credential.scope, cnf_x5t_s256: ctx.credential.cnfX5tS256, verified_by: ctx.credential.verifiedBy },
  }
}
