/**
 * The authorization server's endpoints are internal routes of the gateway (one request path): routed, with global
 * plugins and plugins attached by name (`route: authorization_server.token`), a terminal handler in place of the
 * proxy, the log phase, the access log and the request metrics under the route's name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startGateway } from '../helpers/gateway.js'
import { call, gatewayYaml, startAuthorizationServer, type Harness } from './harness.js'
import type { ConfigError } from '../../src/config/diagnostic.js'

let pki: TestPki
let as: Harness
const clients = [{ client_id: 'svc', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'read' }]
const cc = { grant_type: 'client_credentials', client_id: 'svc' }

beforeAll(async () => {
  pki = await createTestPki()
  // request-termination stands in for what operators attach to a token endpoint (rate limiting, IP restriction):
  // it answers from the access phase, before the endpoint's own handler
  as = await startAuthorizationServer(pki, origin => ({ issuer: origin, ca_certificates: pki.ca.certFile, clients }), {
    extra: `plugins:
  - name: request-termination
    route: authorization_server.introspection
    config:
      status_code: 429
      message: slow down
`,
  })
})
afterAll(async () => { await as?.close(); pki?.cleanup() })

async function metric (prefix: string): Promise<number | undefined> {
  const text = await as.gateway.gateway.metrics.registry.metrics()
  const l = text.split('\n').find(x => x.startsWith(prefix + ' '))
  return l === undefined ? undefined : Number(l.slice(prefix.length + 1))
}

describe('authorization server endpoints as internal routes', () => {
  it('a plugin attached by route name runs on that endpoint only', async () => {
    const r = await call(as.port, '/oauth2/introspect', { form: { token: 'x', client_id: 'svc' }, cert: pki.client1 })
    expect(r.status).toBe(429)
    expect(r.json).toEqual({ message: 'slow down' })
    const t = await call(as.port, '/oauth2/token', { form: cc, cert: pki.client1 })
    expect(t.status, t.text).toBe(200)
  })

  it('each endpoint has an access-log line and request metrics under its route name', async () => {
    const before = await metric('certbound_http_requests_total{route="authorization_server.jwks",status="200"}') ?? 0
    const r = await call(as.port, '/oauth2/jwks')
    expect(r.status).toBe(200)
    expect(typeof r.headers['x-request-id']).toBe('string')
    const line = as.logs.find(l => l.msg === 'request' && l.req_id === r.headers['x-request-id'])
    expect(line).toMatchObject({ route: 'authorization_server.jwks', path: '/oauth2/jwks', status: 200, method: 'GET' })
    expect((line?.bytes as number)).toBeGreaterThan(0)
    expect(await metric('certbound_http_requests_total{route="authorization_server.jwks",status="200"}')).toBe(before + 1)
    expect(await metric('certbound_http_requests_total{route="authorization_server.introspection",status="429"}')).toBeGreaterThanOrEqual(1)
  })
})

describe('rate limiting the token endpoint (the operator\'s first wish)', () => {
  it('rate-limiting attached to authorization_server.token: 429 past the limit, Kong\'s headers on every answer', async () => {
    const g = await startAuthorizationServer(pki, origin => ({ issuer: origin, ca_certificates: pki.ca.certFile, clients }), {
      extra: `plugins:
  - name: rate-limiting
    route: authorization_server.token
    config:
      minute: 2
      limit_by: ip
      policy: local
`,
    })
    try {
      const answers = []
      for (let i = 0; i < 3; i++) answers.push(await call(g.port, '/oauth2/token', { form: cc, cert: pki.client1 }))
      expect(answers.map(a => a.status)).toEqual([200, 200, 429])
      expect(answers[0].headers['x-ratelimit-limit-minute']).toBe('2')
      expect(answers[1].headers['x-ratelimit-remaining-minute']).toBe('0')
      expect(typeof answers[2].headers['retry-after']).toBe('string')
      // the other endpoints are not counted
      expect((await call(g.port, '/oauth2/jwks')).headers['x-ratelimit-limit-minute']).toBeUndefined()
    } finally { await g.close() }
  })
})

describe('upgrades', () => {
  it('a WebSocket upgrade to an endpoint is refused (400), logged under the route', async () => {
    const { request } = await import('node:https')
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: as.port, path: '/oauth2/jwks', servername: 'localhost', rejectUnauthorized: false, headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } })
      req.on('upgrade', (r, socket) => { socket.destroy(); resolve(r) })
      req.on('response', (r) => { r.resume(); resolve(r) })
      req.on('error', reject)
      req.end()
    })
    expect(res.statusCode).toBe(400)
    const id = res.headers['x-request-id']
    expect(as.logs.find(l => l.msg === 'request' && l.req_id === id)).toMatchObject({ route: 'authorization_server.jwks', status: 400, err: 'CB_ERR_BAD_REQUEST' })
  })
})

describe('global plugins apply to internal routes too', () => {
  it('a global mtls-auth guards the token endpoint', async () => {
    const g = await startAuthorizationServer(pki, origin => ({ issuer: origin, ca_certificates: pki.ca.certFile, clients }), {
      extra: `plugins:
  - name: mtls-auth
    config:
      ca_certificates: [${pki.ca.certFile}]
`,
    })
    try {
      const none = await call(g.port, '/oauth2/token', { form: cc })
      expect(none.status).toBe(401)
      expect(none.json).toEqual({ message: 'No required TLS certificate was sent' })
      const ok = await call(g.port, '/oauth2/token', { form: cc, cert: pki.client1 })
      expect(ok.status, ok.text).toBe(200)
    } finally { await g.close() }
  })
})

describe('conflicts with user routes are load errors', () => {
  const start = (extra: string) => startGateway(gatewayYaml(pki, 0, { issuer: 'https://localhost:8443', clients: [] }, { extra }))
    .then(async g => { await g.close(); return undefined }, (e: unknown) => e as ConfigError)
  const service = `services:
  - name: up
    url: http://127.0.0.1:9
    routes:
`

  it('a user route with an endpoint path: CB_CFG_CONFLICT at that path', async () => {
    const err = await start(service + `      - name: mine
        paths: [/api, /oauth2/token]
`)
    expect(err?.diagnostics.map(d => `${d.code} ${d.path}`)).toEqual(['CB_CFG_CONFLICT services[0].routes[0].paths[1]'])
    expect(err?.diagnostics[0].message).toMatch(/internal route "authorization_server.token"/)
  })

  it('a wider prefix is not a conflict (the internal route matches exactly and first)', async () => {
    expect(await start(service + `      - name: all
        paths: [/]
`)).toBeUndefined()
  })

  it('a user route named like an internal route: CB_CFG_DUPLICATE', async () => {
    const err = await start(service + `      - name: authorization_server.token
        paths: [/x]
`)
    expect(err?.diagnostics.map(d => `${d.code} ${d.path}`)).toEqual(['CB_CFG_DUPLICATE services[0].routes[0].name'])
  })

  it('a plugin for an internal route that does not exist: CB_CFG_REFERENCE', async () => {
    const err = await start(`plugins:
  - name: request-termination
    route: authorization_server.tokens
`)
    expect(err?.diagnostics.map(d => `${d.code} ${d.path}`)).toEqual(['CB_CFG_REFERENCE plugins[0].route'])
  })
})
