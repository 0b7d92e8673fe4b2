import { PluginConfigError, OnlineRevocationChecker, revocationState, type PluginDeps } from '../../src/plugin-api.js'
import type { MtlsAuthConfig } from './schema.js'

export { issuerIn } from '../../src/plugin-api.js'

/**
 * mtls-auth's online revocation settings (Kong's keys) → the shared online checker. Kong's http_proxy_* /
 * https_proxy_* are honoured: OCSP and CRL requests to http:// (https://) URLs go through that proxy.
 */

function proxyUrl (host: string | undefined, port: number | undefined, key: 'http_proxy' | 'https_proxy'): string | undefined {
  if (host === undefined && port === undefined) return undefined
  if (host === undefined) throw new PluginConfigError([`${key}_port`], `needs ${key}_host: the proxy's address`)
  if (port === undefined) throw new PluginConfigError([`${key}_host`], `needs ${key}_port: the proxy's port`)
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  let url: URL
  try {
    url = new URL(`http://${h}:${port}`)
  } catch {
    throw new PluginConfigError([`${key}_host`], `"${host}" is not a host name or IP address`)
  }
  if (url.hostname === '' || url.pathname !== '/' || url.username !== '') throw new PluginConfigError([`${key}_host`], `"${host}" is not a host name or IP address`)
  return url.origin
}

/** The online checker for this instance, or undefined with revocation_check_mode SKIP. Throws PluginConfigError. */
export function createOnlineChecker (config: MtlsAuthConfig, deps: PluginDeps): OnlineRevocationChecker | undefined {
  const httpProxy = proxyUrl(config.http_proxy_host, config.http_proxy_port, 'http_proxy')
  const httpsProxy = proxyUrl(config.https_proxy_host, config.https_proxy_port, 'https_proxy')
  if (config.revocation_check_mode === 'SKIP') return undefined
  return new OnlineRevocationChecker({
    http: deps.http,
    now: deps.now,
    httpTimeoutMs: config.http_timeout,
    cacheTtlMs: config.cert_cache_ttl,
    httpProxy,
    httpsProxy,
    state: revocationState(deps.stash),
    store: deps.store,
    metrics: deps.revocationMetrics,
    logger: deps.logger,
  })
}
