import {
  PluginConfigError, GatewayError, AUTHENTICATED_GROUPS, findConsumer, setConsumer, type PluginDeps,
  type RequestContext, type PeerCertificate,
} from '../../src/plugin-api.js'
import type { MtlsAuthConfig } from './schema.js'

/** Maps a verified certificate to a Kong consumer (or to authenticated groups), per request. */
export type CertificateMapper = (ctx: RequestContext, cert: PeerCertificate, status: number) => void

/**
 * Kong mtls-auth's consumer mapping. Without skip_consumer_lookup, the certificate's names (its subject CN, then
 * its SAN DNS names) are matched against each `consumer_by` field in order; no match is a 401, as in Kong. With
 * skip_consumer_lookup, any verified certificate passes and `authenticated_group_by` (CN or DN) names the group
 * the acl plugin checks.
 *
 * Callista's mtls-auth has no consumers: a config with no `consumers:` that does not set skip_consumer_lookup
 * behaves as it (no lookup). Setting `skip_consumer_lookup: false` with no consumers is refused at load, since
 * every request would then be refused.
 */
export function createCertificateMapper (config: MtlsAuthConfig, deps: PluginDeps): CertificateMapper {
  const dir = deps.consumers
  const hasConsumers = dir !== undefined && dir.size > 0
  const lookup = config.skip_consumer_lookup === false || (config.skip_consumer_lookup === undefined && hasConsumers)
  if (lookup) {
    if (!hasConsumers) throw new PluginConfigError(['skip_consumer_lookup'], 'false needs consumers: (none are configured): every certificate would be refused')
    if (config.consumer_by.length === 0) throw new PluginConfigError(['consumer_by'], 'is empty: without mtls_auth_credentials (not supported) no certificate could map to a consumer; set skip_consumer_lookup: true instead')
    const by = config.consumer_by
    return function mapCertificateToConsumer (ctx, cert, status) {
      const names = cert.commonName === undefined ? [...cert.subjectAltNames.dns] : [cert.commonName, ...cert.subjectAltNames.dns]
      const consumer = findConsumer(dir!, by, names)
      if (consumer === undefined) {
        throw new GatewayError('CB_ERR_CERT_INVALID', { status, detail: `no consumer's ${by.join(' or ')} matches the certificate's CN or SAN DNS names (${names.join(', ') || 'none'})` })
      }
      setConsumer(ctx, consumer)
    }
  }
  const groupBy = config.authenticated_group_by
  if (groupBy === null) return () => undefined
  // one frozen list per TLS connection's certificate (PeerCertificate objects live as long as the connection)
  const groupsOf = new WeakMap<PeerCertificate, readonly string[]>()
  return function certificateGroups (ctx, cert) {
    let groups = groupsOf.get(cert)
    if (groups === undefined) {
      const group = groupBy === 'DN' ? cert.subject : cert.commonName
      groups = Object.freeze(group === undefined || group === '' ? [] : [group])
      groupsOf.set(cert, groups)
    }
    if (groups.length > 0 && ctx.get(AUTHENTICATED_GROUPS) === undefined) ctx.set(AUTHENTICATED_GROUPS, groups)
  }
}
