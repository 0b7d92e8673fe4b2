/**
 * mtls-auth and token-introspection config problems found at load, through the real loader: every problem at
 * once, each with file:line:col and the key path (STYLE.md "Configuration errors").
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { ConfigError } from '../../../src/config/diagnostic.js'
import { startGateway } from '../../helpers/gateway.js'
import { createTestPki, type TestPki } from '../../helpers/pki.js'

let pki: TestPki
beforeAll(async () => { pki = await createTestPki() })
afterAll(() => pki.cleanup())

describe('config diagnostics for mtls-auth and token-introspection', () => {
  it('reports an unreadable CA file, STRICT without ca_certificates and a bad trusted_ips entry together, with positions', async () => {
    const yaml = `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
services:
  - name: s
    url: http://127.0.0.1:1
    routes:
      - name: r1
        paths: [/a]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates:
                - ${pki.ca.certFile}
                - missing-ca.pem
      - name: r2
        paths: [/b]
        plugins:
          - name: mtls-auth
            config:
              revocation_check_mode: STRICT
      - name: r3
        paths: [/c]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: https://127.0.0.1:1/introspect
              client_id: gw
              client_secret: s
              trusted_ips: [10.0.0.0/8, not-an-ip]
              introspection_url: https://typo
`
    const err = await startGateway(yaml).then(async (g) => { await g.close(); return undefined }, (e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    const text = (err as Error).message
    expect(text).toContain('services[0].routes[2].plugins[0].config.introspection_url')
    // the create-time problems are reported only once the schema problems are fixed; fix the typo and look again
    const err2 = await startGateway(yaml.replace('              introspection_url: https://typo\n', '')).then(async (g) => { await g.close(); return undefined }, (e: unknown) => e)
    const text2 = (err2 as Error).message
    expect(text2).toMatch(/gateway\.yml:16:\d+ +CB_CFG_FILE +services\[0\]\.routes\[0\]\.plugins\[0\]\.config\.ca_certificates\[1\]/)
    expect(text2).toMatch(/services\[0\]\.routes\[1\]\.plugins\[0\]\.config\.revocation_check_mode/)
    expect(text2).toMatch(/services\[0\]\.routes\[2\]\.plugins\[0\]\.config\.trusted_ips\[1\]/)
  })
})
