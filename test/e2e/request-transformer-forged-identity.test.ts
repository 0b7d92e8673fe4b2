/**
 * Strip before set survives a rename (issue 17, "a typed upstream-header view"): request-transformer reads the
 * headers the upstream will see (ctx.upstream), so a client-forged identity header (Kong's X-Consumer-*,
 * X-Credential-*) is gone before a rename could carry it upstream under a name the gateway does not strip. Through
 * the real gateway to a real upstream, with curl.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { curl } from '../helpers/curl.js'

let gw: TestGateway
let up: Upstream

beforeAll(async () => {
  up = await startUpstream()
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: renaming
        paths: [/renaming]
        plugins:
          - name: request-transformer
            config:
              rename:
                headers:
                  - "x-consumer-username:x-user"
                  - "x-credential-sub:x-sub"
                  - "x-consumer-custom-id:x-tenant-id"
                  - "x-plain:x-renamed"
              add:
                headers:
                  - "x-original-host:$(headers.host)"
`)
})
afterAll(async () => { await gw?.close(); await up?.close() })

describe('request-transformer rename: a client-forged identity header is not forwarded under its new name', () => {
  it('X-Consumer-Username, X-Credential-Sub and X-Consumer-Custom-Id are dropped; a plain header is renamed', async () => {
    const r = await curl([
      '-H', 'X-Consumer-Username: admin', '-H', 'X-Credential-Sub: root', '-H', 'X-Consumer-Custom-Id: victim-tenant', '-H', 'X-Plain: kept',
      `${gw.url()}/renaming`,
    ])
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(200)
    const seen = up.requests[up.requests.length - 1].headers
    expect(seen['x-user']).toBeUndefined()
    expect(seen['x-sub']).toBeUndefined()
    expect(seen['x-tenant-id']).toBeUndefined()
    expect(seen['x-consumer-username']).toBeUndefined()
    expect(seen['x-credential-sub']).toBeUndefined()
    expect(seen['x-consumer-custom-id']).toBeUndefined()
    expect(seen['x-renamed']).toBe('kept')
    expect(seen['x-plain']).toBeUndefined()
  })

  it('$(headers.host) is the client\'s Host, as in Kong (the upstream itself gets the service\'s Host)', async () => {
    const r = await curl(['-H', 'Host: api.example.com', `${gw.url()}/renaming`])
    expect(r.status).toBe(200)
    const seen = up.requests[up.requests.length - 1].headers
    expect(seen['x-original-host']).toBe('api.example.com')
    expect(seen.host).not.toBe('api.example.com')
  })
})
