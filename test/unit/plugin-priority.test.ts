/**
 * The plugin chain order (STYLE.md: "a test pins the order"): priorities are unique, higher runs first, and the YAML
 * order changes nothing. A new plugin, or a changed priority, must be placed here on purpose.
 */
import { describe, expect, it } from 'vitest'
import { loadPlugins } from '../../src/plugins-registry.js'
import { loadConfigText } from '../../src/config/validate.js'

describe('plugin priority order', () => {
  it('is pinned: certificate, then token, consumer groups, rate limits, scopes, header injection, termination', async () => {
    const plugins = await loadPlugins()
    const order = [...plugins.values()].sort((a, b) => b.priority - a.priority).map(p => [p.name, p.priority])
    expect(order).toEqual([
      ['mtls-auth', 1000],
      ['tls-handshake-modifier', 997],
      ['token-introspection', 910],
      ['openid-connect', 900],
      ['acl', 860],
      ['rate-limiting', 850],
      ['require-scopes', 800],
      ['request-transformer', 700],
      ['request-termination', 2],
    ])
  })

  it('a route\'s chain runs in priority order whatever the YAML order, global plugins included', async () => {
    const cfg = loadConfigText('/tmp/gateway.yml', `_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/]
        plugins:
          - name: request-termination
          - name: request-transformer
            config: { add: { headers: ["x-a:b"] } }
plugins:
  - name: tls-handshake-modifier
`, { plugins: await loadPlugins() })
    expect(cfg.routes[0].plugins.map(p => p.def.name)).toEqual(['tls-handshake-modifier', 'request-transformer', 'request-termination'])
  })
})
