import { definePlugin, PluginConfigError, sanitize, StateKey, type PluginInstance, type RequestContext } from '../../src/plugin-api.js'
import { requestTransformerSchema, type RequestTransformerConfig } from './schema.js'
import { compileTemplate, renderTemplate, TemplateError, type CompiledTemplate, type TemplateEnv } from './template.js'

/** The incoming query string, parsed at most once per request and only when a step needs it. */
const INCOMING_QUERY = new StateKey<URLSearchParams>('request-transformer.incoming-query')

type Step = (ctx: RequestContext) => void
type Kind = 'headers' | 'querystring'

function split (entry: string): [string, string] {
  const c = entry.indexOf(':')
  return [entry.slice(0, c), entry.slice(c + 1)]
}

function incomingQuery (ctx: RequestContext): URLSearchParams {
  let q = ctx.get(INCOMING_QUERY)
  if (q === undefined) {
    q = new URLSearchParams(ctx.query)
    ctx.set(INCOMING_QUERY, q)
  }
  return q
}

/** The values of a query parameter as they stand: the incoming ones with every recorded change applied. */
function queryValues (ctx: RequestContext, name: string): string[] {
  let vals = ctx.query === '' ? [] : incomingQuery(ctx).getAll(name)
  const muts = ctx.upstreamQuery
  for (let i = 0; i < muts.length; i++) {
    const m = muts[i]
    if (m[0] !== name) continue
    if (m[1] === null) vals = []
    else if (m[2]) vals.push(m[1])
    else vals = [m[1]]
  }
  return vals
}

/**
 * Kong's request-transformer for headers and query parameters: remove, rename, replace, add (only if absent),
 * append — headers first, then the query string, each in that order. Everything is parsed at load: a request
 * runs a flat list of precompiled steps, and templates render from precompiled parts.
 */
export default definePlugin({
  name: 'request-transformer',
  priority: 700,
  description: 'Removes, renames, replaces, adds and appends upstream headers and query parameters, with $(...) templates',
  schema: requestTransformerSchema,
  create (config: RequestTransformerConfig): PluginInstance {
    // headers whose value comes from the credential or the client certificate are identity headers: the gateway
    // strips the client's copies everywhere (identityHeaders below), and ctx.upstream already shows them stripped,
    // so neither "absent" nor a rename sees a client-sent copy of any plugin's identity header
    const identity = new Set<string>()
    const templates = new Map<string, CompiledTemplate>()
    let needsCredential = false
    let readsClientCert = false
    const env: TemplateEnv = {
      // Kong's $(headers.host) is the client's Host (X-Original-Host: $(headers.host) is the usual use); every other
      // header is read as the upstream would see it, so a stripped identity header reads as absent
      header: function currentHeader (ctx, name) { return name === 'host' ? ctx.headers.host : ctx.upstream.get(name) },
      query: function currentQuery (ctx, name) { return queryValues(ctx, name)[0] },
    }
    const template = (path: Array<string | number>, value: string): CompiledTemplate => {
      let t = templates.get(value)
      if (t === undefined) {
        try {
          t = compileTemplate(value, env)
        } catch (e) {
          if (e instanceof TemplateError) throw new PluginConfigError(path, e.message)
          throw e
        }
        templates.set(value, t)
      }
      if (t.readsCredential) needsCredential = true
      if (t.readsClientCert) readsClientCert = true
      return t
    }

    const steps: Step[] = []
    for (const kind of ['headers', 'querystring'] as const) {
      const h = kind === 'headers'
      for (const raw of config.remove[kind]) steps.push(h ? removeHeader(raw.toLowerCase()) : removeQuery(raw))
      for (const entry of config.rename[kind]) {
        const [from, to] = split(entry)
        steps.push(h ? renameHeader(from.toLowerCase(), to.toLowerCase()) : renameQuery(from, to))
      }
      for (const step of ['replace', 'add', 'append'] as const) {
        config[step][kind].forEach((entry, i) => {
          const [rawName, value] = split(entry)
          const name = h ? rawName.toLowerCase() : rawName
          const t = template([step, kind, i], value)
          if (h && (t.readsCredential || t.readsClientCert)) identity.add(name)
          steps.push(valueStep(step, kind, name, t))
        })
      }
    }
    const run = Object.freeze(steps)

    return {
      needsCredential,
      // a template that reads the client certificate needs the handshake to ask for one (never to require it)
      requestClientCertificate: readsClientCert,
      identityHeaders: Object.freeze([...identity]),
      access: function requestTransformer (ctx: RequestContext): void {
        for (let i = 0; i < run.length; i++) run[i](ctx)
      },
    }

    function removeHeader (name: string): Step {
      return function removeHeaderStep (ctx) { ctx.removeUpstreamHeader(name) }
    }
    function removeQuery (name: string): Step {
      return function removeQueryStep (ctx) { ctx.removeUpstreamQuery(name) }
    }
    function renameHeader (from: string, to: string): Step {
      return function renameHeaderStep (ctx) {
        const v = env.header(ctx, from)
        if (v === undefined || from === to) return
        ctx.removeUpstreamHeader(from)
        ctx.setUpstreamHeader(to, v)
      }
    }
    function renameQuery (from: string, to: string): Step {
      return function renameQueryStep (ctx) {
        const vals = queryValues(ctx, from)
        if (vals.length === 0 || from === to) return
        ctx.removeUpstreamQuery(from)
        ctx.removeUpstreamQuery(to)
        for (const v of vals) ctx.appendUpstreamQuery(to, v)
      }
    }
    function valueStep (step: 'replace' | 'add' | 'append', kind: Kind, name: string, t: CompiledTemplate): Step {
      if (kind === 'headers') {
        switch (step) {
          case 'replace': return function replaceHeaderStep (ctx) {
            if (env.header(ctx, name) === undefined) return
            const v = renderTemplate(t, ctx)
            if (v !== undefined && v !== '') ctx.setUpstreamHeader(name, sanitize(v))
          }
          case 'add': return function addHeaderStep (ctx) {
            if (env.header(ctx, name) !== undefined) return
            const v = renderTemplate(t, ctx)
            if (v !== undefined && v !== '') ctx.setUpstreamHeader(name, sanitize(v))
          }
          case 'append': return function appendHeaderStep (ctx) {
            const v = renderTemplate(t, ctx)
            if (v !== undefined && v !== '') ctx.appendUpstreamHeader(name, sanitize(v))
          }
        }
      }
      switch (step) {
        case 'replace': return function replaceQueryStep (ctx) {
          if (queryValues(ctx, name).length === 0) return
          const v = renderTemplate(t, ctx)
          if (v !== undefined && v !== '') ctx.setUpstreamQuery(name, sanitize(v))
        }
        case 'add': return function addQueryStep (ctx) {
          if (queryValues(ctx, name).length > 0) return
          const v = renderTemplate(t, ctx)
          if (v !== undefined && v !== '') ctx.setUpstreamQuery(name, sanitize(v))
        }
        case 'append': return function appendQueryStep (ctx) {
          const v = renderTemplate(t, ctx)
          if (v !== undefined && v !== '') ctx.appendUpstreamQuery(name, sanitize(v))
        }
      }
    }
  },
})
