import { rootCertificates } from 'node:tls'
import { Agent, ProxyAgent, request as undiciRequest, fetch as undiciFetch, type Dispatcher } from 'undici'
import type { HttpClient, HttpRequestOptions, HttpResponse, HttpTlsOptions } from './types.js'

export type { HttpClient, HttpRequestOptions, HttpResponse, HttpTlsOptions } from './types.js'

/**
 * Outbound HTTP with one undici Agent per distinct TLS setting (verification on/off, client certificate),
 * so connections to an IdP are pooled and kept alive.
 */
export function createHttpClient (opts: { trustedCa?: string[] } = {}): HttpClient {
  const ca = opts.trustedCa !== undefined && opts.trustedCa.length > 0 ? [...rootCertificates, ...opts.trustedCa] : undefined
  const agents = new Map<string, Agent | ProxyAgent>()

  function agentFor (tls: HttpTlsOptions | undefined, proxy?: string): Dispatcher {
    const reject = tls?.rejectUnauthorized !== false
    const key = `${reject ? 1 : 0}|${tls?.cert === undefined ? '' : String(tls.cert)}|${proxy ?? ''}`
    let a = agents.get(key)
    if (a === undefined) {
      const connect = { ca, rejectUnauthorized: reject, cert: tls?.cert, key: tls?.key, timeout: 10_000 }
      a = proxy === undefined
        ? new Agent({ keepAliveTimeout: 30_000, connections: 64, connect })
        : new ProxyAgent({ uri: proxy, keepAliveTimeout: 30_000, connections: 64, requestTls: connect, proxyTls: { ca, timeout: 10_000 } })
      agents.set(key, a)
    }
    return a
  }

  return {
    async request (url: string, o: HttpRequestOptions = {}): Promise<HttpResponse> {
      const timeout = o.timeoutMs ?? 10_000
      const limit = o.maxResponseBytes ?? 1024 * 1024
      const signal = AbortSignal.timeout(timeout)
      const res = await undiciRequest(url, {
        method: (o.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: o.headers,
        body: o.body,
        dispatcher: agentFor(o.tls, o.proxy),
        signal,
        headersTimeout: timeout,
        bodyTimeout: timeout,
        maxRedirections: 0,
      } as Parameters<typeof undiciRequest>[1])
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > limit) {
          res.body.destroy()
          throw new Error(`response from ${new URL(url).origin} exceeds ${limit} bytes`)
        }
        chunks.push(chunk as Buffer)
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
    },
    fetch (input, init) {
      const { tls, ...rest } = init ?? {}
      return undiciFetch(input, { ...(rest as object), dispatcher: agentFor(tls) }) as unknown as Promise<Response>
    },
    async close () {
      const all = [...agents.values()]
      agents.clear()
      await Promise.allSettled(all.map(a => a.close()))
    },
  }
}
