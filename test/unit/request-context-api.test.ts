/**
 * The typed parts of the plugin API on the request context (issue 17): ctx.upstream (the headers the upstream will
 * see: stripping, then the plugins' mutations), ctx.clientCertificate (write-once), and typed deps.local keys.
 */
import { describe, it, expect } from 'vitest'
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { pino } from 'pino'
import { RequestContext } from '../../src/pipeline/context.js'
import { StripSet, upstreamHeaders } from '../../src/proxy/headers.js'
import { ServiceKey, ServiceMap } from '../../src/pipeline/services.js'
import { localIntrospectionKey, localIssuerKey, type LocalIssuer } from '../../src/pipeline/local-issuer.js'
import type { PeerCertificate } from '../../src/server/peer.js'

function ctxFor (raw: Array<[string, string]>, strip?: readonly string[]): RequestContext {
  const req = new IncomingMessage(new Socket())
  req.method = 'GET'
  req.url = '/'
  req.rawHeaders = raw.flat()
  const headers: Record<string, string> = {}
  for (const [k, v] of raw) headers[k.toLowerCase()] = headers[k.toLowerCase()] === undefined ? v : `${headers[k.toLowerCase()]}, ${v}`
  req.headers = headers
  return new RequestContext({
    id: 'r1', startNs: 0n, req, method: 'GET', path: '/', query: '', remoteAddress: '192.0.2.7',
    route: { name: 'r' } as never, tls: null, listenerTls: false, log: pino({ level: 'silent' }),
    upstreamBase: strip === undefined
      ? undefined
      : () => upstreamHeaders(req, new StripSet(strip), { remoteAddress: '192.0.2.7', proto: 'http', host: 'gw.test', upstreamHost: 'svc.internal', port: 8000, requestId: 'r1', trustForwardedFor: false }),
  })
}

describe('ctx.upstream.get: what the upstream will see', () => {
  it('strips hop-by-hop, Connection-listed, gateway-owned and identity headers (the gateway-wide set) before any mutation', () => {
    const ctx = ctxFor([
      ['Host', 'gw.test'], ['Connection', 'x-private'], ['X-Private', 'p'], ['TE', 'trailers'], ['X-Real-IP', '10.0.0.1'],
      ['X-Consumer-Username', 'admin'], ['X_Consumer_Username', 'admin'], ['X-Credential-Sub', 'root'], ['X-Plain', 'a'],
    ], ['x-consumer-username'])
    expect(ctx.upstream.get('x-private')).toBeUndefined()
    expect(ctx.upstream.get('te')).toBeUndefined()
    expect(ctx.upstream.get('x-consumer-username')).toBeUndefined()
    expect(ctx.upstream.get('x_consumer_username')).toBeUndefined()
    expect(ctx.upstream.get('x-credential-sub')).toBeUndefined()
    expect(ctx.upstream.get('X-Plain')).toBe('a')
    // the gateway's own values, not the client's
    expect(ctx.upstream.get('host')).toBe('svc.internal')
    expect(ctx.upstream.get('x-real-ip')).toBe('192.0.2.7')
    expect(ctx.upstream.get('x-forwarded-for')).toBe('192.0.2.7')
  })

  it('applies the plugins\' mutations so far, in order (set, append, remove), like the handler', () => {
    const ctx = ctxFor([['X-A', '1'], ['X-A', '2'], ['Cookie', 'a=1'], ['Cookie', 'b=2']], [])
    expect(ctx.upstream.get('x-a')).toBe('1, 2')
    expect(ctx.upstream.get('cookie')).toBe('a=1; b=2')
    ctx.appendUpstreamHeader('X-A', '3')
    expect(ctx.upstream.get('x-a')).toBe('1, 2, 3')
    ctx.setUpstreamHeader('x-a', 'only')
    expect(ctx.upstream.get('x-a')).toBe('only')
    ctx.removeUpstreamHeader('x-a')
    expect(ctx.upstream.get('x-a')).toBeUndefined()
    ctx.appendUpstreamHeader('x-a', 'again')
    expect(ctx.upstream.get('x-a')).toBe('again')
    ctx.setUpstreamHeader('x-consumer-username', 'alice')
    expect(ctx.upstream.get('x-consumer-username')).toBe('alice')
  })

  it('without the gateway\'s strip set (a bare context) still hides the built-in identity and certificate headers', () => {
    const ctx = ctxFor([['X-Credential-Sub', 'forged'], ['X-Client-Cert', 'forged'], ['Proxy-Authorization', 'x'], ['X-Ok', 'y']])
    expect(ctx.upstream.get('x-credential-sub')).toBeUndefined()
    expect(ctx.upstream.get('x-client-cert')).toBeUndefined()
    expect(ctx.upstream.get('proxy-authorization')).toBeUndefined()
    expect(ctx.upstream.get('x-ok')).toBe('y')
  })
})

describe('ctx.clientCertificate', () => {
  it('is undefined until a plugin verified one, then write-once', () => {
    const ctx = ctxFor([])
    expect(ctx.clientCertificate).toBeUndefined()
    const first = { certificate: { commonName: 'client1' } as PeerCertificate, chain: [] }
    ctx.clientCertificate = first
    expect(ctx.clientCertificate).toBe(first)
    expect(() => { ctx.clientCertificate = { certificate: { commonName: 'other' } as PeerCertificate, chain: [] } }).toThrow(/write-once/)
    expect(ctx.clientCertificate).toBe(first)
  })
})

describe('deps.local: typed service keys', () => {
  it('keys compare by id (a trailing slash on an issuer does not matter) and carry the service type', () => {
    const issuer = { issuer: 'https://as.test' } as LocalIssuer
    const services = new ServiceMap().set(localIssuerKey('https://as.test/'), issuer)
    const found: LocalIssuer | undefined = services.get(localIssuerKey('https://as.test'))
    expect(found).toBe(issuer)
    expect(services.get(localIntrospectionKey('https://as.test'))).toBeUndefined()
    const merged = new ServiceMap()
    merged.addAll(services)
    expect(merged.get(localIssuerKey('https://as.test'))).toBe(issuer)
    expect(merged.get(new ServiceKey<number>('unknown'))).toBeUndefined()
  })
})
