import { claimHeaderValue, sanitize, type PeerCertificate, type RequestContext } from '../../src/plugin-api.js'

/**
 * Kong's `$(...)` templates, restricted to plain lookups (no Lua): `$(root.name)` or `$(root["name"])`.
 * Parsed and validated at load ({@link parseTemplate}, from the schema), compiled into literal strings and
 * getter functions at create ({@link compileTemplate}); rendering a request is a loop over the parts.
 */

export const TEMPLATE_ROOTS = ['credential', 'client_cert', 'headers', 'query_params', 'route'] as const
export type TemplateRoot = typeof TEMPLATE_ROOTS[number]

/** client_cert fields. All but x5t_s256 need a verified certificate (a self-signed one names whoever it likes). */
export const CLIENT_CERT_FIELDS = ['subject', 'issuer', 'serial', 'cn', 'o', 'x5t_s256'] as const
type ClientCertField = typeof CLIENT_CERT_FIELDS[number]
const ROUTE_FIELDS = ['name'] as const

export interface TemplateExpr { readonly root: TemplateRoot, readonly name: string, readonly source: string }
export type TemplatePiece = string | TemplateExpr

export class TemplateError extends Error {
  constructor (message: string) { super(message); this.name = 'TemplateError' }
}

const EXPR = /^([a-z_]+)(?:\.(.+)|\[\s*(["'])(.+)\3\s*\])$/

/** Split a value into literal text and lookups; throws TemplateError with a message for the config report. */
export function parseTemplate (value: string): TemplatePiece[] {
  const out: TemplatePiece[] = []
  let i = 0
  while (i < value.length) {
    const start = value.indexOf('$(', i)
    if (start < 0) { out.push(value.slice(i)); break }
    if (start > i) out.push(value.slice(i, start))
    const end = value.indexOf(')', start + 2)
    if (end < 0) throw new TemplateError(`unterminated template "${value.slice(start)}": expected ")"`)
    const source = value.slice(start, end + 1)
    out.push(parseExpr(value.slice(start + 2, end).trim(), source))
    i = end + 1
  }
  return out
}

function parseExpr (expr: string, source: string): TemplateExpr {
  const m = EXPR.exec(expr)
  if (m === null) throw new TemplateError(`template ${source} is not a lookup: use $(root.name) with root one of ${TEMPLATE_ROOTS.join(', ')}`)
  const root = m[1]
  const name = m[2] ?? m[4]
  if (!(TEMPLATE_ROOTS as readonly string[]).includes(root)) {
    const kong = root === 'uri_captures' || root === 'shared' ? ` (Kong's ${root} is not supported)` : ''
    throw new TemplateError(`unknown template root "${root}" in ${source}${kong}; supported: ${TEMPLATE_ROOTS.join(', ')}`)
  }
  if (root === 'client_cert' && !(CLIENT_CERT_FIELDS as readonly string[]).includes(name)) {
    throw new TemplateError(`unknown client_cert field "${name}" in ${source}; supported: ${CLIENT_CERT_FIELDS.join(', ')}`)
  }
  if (root === 'route' && !(ROUTE_FIELDS as readonly string[]).includes(name)) {
    throw new TemplateError(`unknown route field "${name}" in ${source}; supported: ${ROUTE_FIELDS.join(', ')}`)
  }
  if (root === 'headers' && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) throw new TemplateError(`"${name}" in ${source} is not a header name`)
  return { root: root as TemplateRoot, name: root === 'headers' ? name.toLowerCase() : name, source }
}

export type Getter = (ctx: RequestContext) => string | undefined

/** How the instance reads the request as it stands (earlier plugins' and steps' changes applied). */
export interface TemplateEnv {
  header (ctx: RequestContext, lowerName: string): string | undefined
  query (ctx: RequestContext, name: string): string | undefined
}

export interface CompiledTemplate {
  /** The whole value when it has no lookups (rendering is then free). */
  readonly literal: string | undefined
  readonly parts: ReadonlyArray<string | Getter>
  readonly readsCredential: boolean
  readonly readsClientCert: boolean
}

/** The certificate of the request: mtls-auth's verified one, else the TLS session's. */
function certificateOf (ctx: RequestContext, requireVerified: boolean): PeerCertificate | null {
  const v = ctx.clientCertificate
  if (v !== undefined) return v.certificate
  const tls = ctx.tls
  if (tls === null || (requireVerified && !tls.verified)) return null
  return tls.certificate
}

function certGetter (field: ClientCertField): Getter {
  switch (field) {
    case 'subject': return function certSubject (ctx) { return certificateOf(ctx, true)?.subject }
    case 'issuer': return function certIssuer (ctx) { return certificateOf(ctx, true)?.issuer }
    case 'serial': return function certSerial (ctx) { return certificateOf(ctx, true)?.serialNumber }
    case 'cn': return function certCn (ctx) { return certificateOf(ctx, true)?.commonName }
    case 'o': return function certO (ctx) { return certificateOf(ctx, true)?.organization }
    // the handshake proved possession of the key: the thumbprint is meaningful even unverified (RFC 8705 §2.2)
    case 'x5t_s256': return function certThumbprint (ctx) { return certificateOf(ctx, false)?.x5tS256 }
  }
}

function credentialGetter (name: string): Getter {
  switch (name) {
    case 'client_id': return function credentialClientId (ctx) { return ctx.credential?.clientId }
    case 'sub': return function credentialSub (ctx) { return ctx.credential?.sub }
    case 'scope': return function credentialScope (ctx) { return ctx.credential?.scope }
    case 'token_type': return function credentialTokenType (ctx) { return ctx.credential?.tokenType }
  }
  const path = name.split('.')
  if (path.length === 1) {
    return function credentialClaim (ctx) {
      const c = ctx.credential
      return c === undefined ? undefined : claimHeaderValue(c.claims[name])
    }
  }
  return function credentialNestedClaim (ctx) {
    let v: unknown = ctx.credential?.claims
    for (let i = 0; i < path.length && v !== undefined; i++) {
      v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[path[i]] : undefined
    }
    return claimHeaderValue(v)
  }
}

function getterFor (e: TemplateExpr, env: TemplateEnv): Getter {
  switch (e.root) {
    case 'credential': return credentialGetter(e.name)
    case 'client_cert': return certGetter(e.name as ClientCertField)
    case 'headers': { const n = e.name; return function headerValue (ctx) { return env.header(ctx, n) } }
    case 'query_params': { const n = e.name; return function queryValue (ctx) { return env.query(ctx, n) } }
    case 'route': return function routeName (ctx) { return ctx.route.name }
  }
}

export function compileTemplate (value: string, env: TemplateEnv): CompiledTemplate {
  const pieces = parseTemplate(value)
  if (pieces.every(p => typeof p === 'string')) {
    return { literal: value, parts: [value], readsCredential: false, readsClientCert: false }
  }
  return {
    literal: undefined,
    parts: Object.freeze(pieces.map(p => typeof p === 'string' ? p : getterFor(p, env))),
    readsCredential: pieces.some(p => typeof p !== 'string' && p.root === 'credential'),
    readsClientCert: pieces.some(p => typeof p !== 'string' && p.root === 'client_cert'),
  }
}

/**
 * Render for one request. A lookup that yields nothing (or '') makes the whole value undefined: the entry is
 * skipped, as Kong skips a header whose template is empty, rather than sending a half-filled value. Control
 * characters are removed from what lookups yield (a query parameter can carry %0D%0A, a claim or a certificate
 * subject anything): a rendered value never splits a header. Literal parts were checked at load.
 */
export function renderTemplate (t: CompiledTemplate, ctx: RequestContext): string | undefined {
  if (t.literal !== undefined) return t.literal
  const parts = t.parts
  let out = ''
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]
    if (typeof p === 'string') { out += p; continue }
    const v = p(ctx)
    const clean = v === undefined ? '' : sanitize(v)
    if (clean === '') return undefined
    out += clean
  }
  return out
}
