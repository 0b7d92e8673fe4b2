/**
 * A minimal real authorization server for plugin tests: HTTPS on 127.0.0.1:0 serving a discovery document,
 * a JWKS and (optionally) an introspection endpoint, counting every request; it signs tokens with jose.
 * It can be stopped and restarted on the same port to test fail-closed behaviour.
 */
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose'

export interface SigningKey { kid: string, alg: string, privateKey: CryptoKey, publicKey: CryptoKey, jwk: JWK }

export interface SignOptions {
  key?: SigningKey
  /** Header overrides merged over { alg, kid, typ: 'at+jwt' }; a value of undefined removes the field. */
  header?: Record<string, unknown>
  /** Claims merged over the defaults (iss, aud, sub, client_id, scope, iat, exp, jti); undefined removes. */
  claims?: Record<string, unknown>
}

export interface IntrospectionAnswer { status: number, body: unknown }

export interface TestIssuer {
  readonly issuer: string
  readonly port: number
  /** Requests served, by path. */
  readonly hits: Map<string, number>
  /** Bodies and headers of introspection requests. */
  readonly introspections: Array<{ body: string, authorization: string | undefined }>
  /** Keys published in the JWKS (mutable: replace to rotate). */
  published: SigningKey[]
  /** Which discovery documents are served. */
  discovery: 'openid' | 'oauth' | 'both'
  /** Answer for introspection requests; default: 404. */
  introspect: ((token: string) => IntrospectionAnswer) | undefined
  newKey (alg?: 'ES256' | 'RS256' | 'PS256' | 'EdDSA'): Promise<SigningKey>
  sign (o?: SignOptions): Promise<string>
  /** Sign exactly the given header and claims with an ES256 key, bypassing jose's own checks (e.g. crit). */
  signRaw (header: Record<string, unknown>, claims: Record<string, unknown>, key?: SigningKey): Promise<string>
  stop (): Promise<void>
  start (): Promise<void>
}

export const AUDIENCE = 'https://api.example.test'

export async function startIssuer (tls: { cert: string, key: string }): Promise<TestIssuer> {
  const hits = new Map<string, number>()
  const sockets = new Set<Socket>()
  let port = 0
  let server: Server | undefined
  const first = await newKey('ES256')

  async function newKey (alg: 'ES256' | 'RS256' | 'PS256' | 'EdDSA' = 'ES256'): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
    const kid = randomUUID()
    const jwk = { ...await exportJWK(publicKey), kid, alg, use: 'sig' }
    return { kid, alg, privateKey, publicKey, jwk }
  }

  const self: TestIssuer = {
    get issuer () { return `https://127.0.0.1:${port}` },
    get port () { return port },
    hits,
    introspections: [],
    published: [first],
    discovery: 'openid',
    introspect: undefined,
    newKey,
    async sign (o: SignOptions = {}): Promise<string> {
      const key = o.key ?? self.published[0]
      const now = Math.floor(Date.now() / 1000)
      const claims: Record<string, unknown> = {
        iss: self.issuer, aud: AUDIENCE, sub: 'client1-service-account', client_id: 'client1', scope: 'system-access',
        iat: now, exp: now + 300, jti: randomUUID(), ...o.claims,
      }
      const header: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...o.header }
      for (const m of [claims, header]) for (const k of Object.keys(m)) if (m[k] === undefined) delete m[k]
      return new SignJWT(claims as JWTPayload).setProtectedHeader(header as { alg: string }).sign(key.privateKey)
    },
    async signRaw (header, claims, key = self.published[0]) {
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
      const input = `${enc(header)}.${enc(claims)}`
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, new TextEncoder().encode(input))
      return `${input}.${Buffer.from(sig).toString('base64url')}`
    },
    async stop () {
      if (server === undefined) return
      const s = server
      server = undefined
      for (const sock of sockets) sock.destroy()
      await new Promise<void>(r => s.close(() => r()))
    },
    async start () {
      if (server !== undefined) return
      server = createServer({ cert: tls.cert, key: tls.key }, handle)
      server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
      await new Promise<void>((r, j) => { server!.once('error', j); server!.listen(port, '127.0.0.1', () => r()) })
      port = (server.address() as AddressInfo).port
    },
  }

  function json (res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  function metadata (): Record<string, unknown> {
    return {
      issuer: self.issuer,
      jwks_uri: `${self.issuer}/jwks`,
      token_endpoint: `${self.issuer}/token`,
      introspection_endpoint: `${self.issuer}/introspect`,
      tls_client_certificate_bound_access_tokens: true,
    }
  }

  function handle (req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    hits.set(path, (hits.get(path) ?? 0) + 1)
    if (path === '/.well-known/openid-configuration' && self.discovery !== 'oauth') return json(res, 200, metadata())
    if (path === '/.well-known/oauth-authorization-server' && self.discovery !== 'openid') return json(res, 200, metadata())
    if (path === '/jwks') return json(res, 200, { keys: self.published.map(k => k.jwk) })
    if (path === '/introspect' && req.method === 'POST') {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => { body += c })
      req.on('end', () => {
        self.introspections.push({ body, authorization: req.headers.authorization })
        const token = new URLSearchParams(body).get('token') ?? ''
        const a = self.introspect?.(token) ?? { status: 404, body: { error: 'not_found' } }
        json(res, a.status, a.body)
      })
      return
    }
    json(res, 404, { error: 'not_found' })
  }

  await self.start()
  return self
}
