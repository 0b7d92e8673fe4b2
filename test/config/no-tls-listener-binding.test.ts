/**
 * Issue 16, "no silent traps": a route whose token plugin refuses every request without a client certificate
 * (RFC 8705 §3 strict binding: token-introspection `certificate_binding: strict`, openid-connect
 * `proof_of_possession_mtls: strict`) in a file with no TLS listener (a Kong file: its listeners are in kong.conf)
 * is a load error naming the plugin's position, as mtls-auth's already is. Where the certificate is not required
 * (optional binding, DPoP also allowed, a certificate forwarded by a trusted proxy) the file loads.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConfigError } from '../../src/config/diagnostic.js'
import { Gateway } from '../../src/gateway.js'

let tmp: string
let seq = 0
beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'certbound-notls-')) })
afterAll(() => { rmSync(tmp, { recursive: true, force: true }) })

const INTROSPECTION = (config: string): string => `_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: https://idp.example/introspect
              client_id: gateway
              client_secret: s3cret
${config}`

const OIDC = (config: string): string => `_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
        plugins:
          - name: openid-connect
            config:
              issuer: https://idp.example
              auth_methods: [bearer]
${config}`

/** Loads the file as `certbound validate` does (nothing started, nothing fetched); the diagnostics, or [] when it loads. */
async function diagnostics (yaml: string): Promise<Array<[number, number, string, string]>> {
  const file = join(tmp, `g${++seq}.yml`)
  writeFileSync(file, yaml)
  try {
    await Gateway.check(file, { dryRun: true })
    return []
  } catch (e) {
    const err = e as ConfigError
    if (err.diagnostics === undefined) throw e
    return err.diagnostics.map(d => [d.line, d.col, d.code, d.path])
  }
}

const AT_PLUGIN: Array<[number, number, string, string]> = [[9, 19, 'CB_CFG_NO_TLS_LISTENER', 'services[0].routes[0].plugins[0].name']]

describe('strict certificate binding with no TLS listener', () => {
  it('token-introspection certificate_binding: strict is a load error at the plugin', async () => {
    expect(await diagnostics(INTROSPECTION('              certificate_binding: strict\n'))).toEqual(AT_PLUGIN)
  })

  it('openid-connect proof_of_possession_mtls: strict is a load error at the plugin', async () => {
    expect(await diagnostics(OIDC('              proof_of_possession_mtls: strict\n'))).toEqual(AT_PLUGIN)
  })

  it('the message says why and what to add', async () => {
    const file = join(tmp, 'msg.yml')
    writeFileSync(file, INTROSPECTION('              certificate_binding: strict\n'))
    const err = await Gateway.check(file, { dryRun: true }).then(() => undefined, (e: unknown) => e as ConfigError)
    expect(err?.diagnostics[0].message).toMatch(/plugin "token-introspection" on route "orders-route" needs the client certificate, but no listener has tls/)
    expect(err?.diagnostics[0].message).toContain('gateway.listen[].tls')
  })

  it('loads where the certificate is not required: optional binding, DPoP also allowed, a trusted proxy\'s header', async () => {
    expect(await diagnostics(INTROSPECTION(''))).toEqual([]) // certificate_binding defaults to optional
    expect(await diagnostics(INTROSPECTION('              certificate_binding: optional\n'))).toEqual([])
    expect(await diagnostics(OIDC('              proof_of_possession_mtls: optional\n'))).toEqual([])
    // RFC 9449: a DPoP-bound token passes a strict-mTLS route without a certificate
    expect(await diagnostics(INTROSPECTION('              certificate_binding: strict\n              proof_of_possession_dpop: optional\n'))).toEqual([])
    expect(await diagnostics(OIDC('              proof_of_possession_mtls: strict\n              proof_of_possession_dpop: optional\n'))).toEqual([])
    expect(await diagnostics(INTROSPECTION('              certificate_binding: strict\n              certificate_header: x-client-cert\n              trusted_ips: [10.0.0.0/8]\n'))).toEqual([])
  })

  it('loads with a TLS listener', async () => {
    const { createTestPki } = await import('../helpers/pki.js')
    const pki = await createTestPki()
    try {
      const listen = `gateway:\n  listen:\n    - address: 127.0.0.1:0\n      tls:\n        cert: ${pki.server.certFile}\n        key: ${pki.server.keyFile}\n        client_ca: ${pki.ca.certFile}\n`
      expect(await diagnostics(INTROSPECTION('              certificate_binding: strict\n').replace('_format_version: "3.0"\n', '_format_version: "3.0"\n' + listen))).toEqual([])
      expect(await diagnostics(OIDC('              proof_of_possession_mtls: strict\n').replace('_format_version: "3.0"\n', '_format_version: "3.0"\n' + listen))).toEqual([])
    } finally { pki.cleanup() }
  })
})
