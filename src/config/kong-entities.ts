import type { ConfigReporter } from './config-set.js'

/**
 * Kong entities certbound does not implement, with the reason: a decK file that has them is refused with that
 * reason instead of an anonymous "unknown field" (or, worse, the key being accepted and ignored).
 */
export const REFUSED_ENTITIES: Readonly<Record<string, string>> = {
  upstreams: 'load balancing over targets is not implemented: point the service\'s url (or host/port) at one upstream, or at a load balancer',
  targets: 'targets belong to upstreams, which are not implemented',
  certificates: 'listener certificates are files: gateway.listen[].tls.cert/key',
  snis: 'one certificate per listener: gateway.listen[].tls.cert/key (use several listeners for several names)',
  ca_certificates: 'CA certificates are files: gateway.listen[].tls.client_ca, mtls-auth ca_certificates (paths), gateway.trusted_certificates',
  consumer_groups: 'consumer groups are not implemented: use consumers[].acls and the acl plugin',
  vaults: 'vaults are not implemented: use decK\'s ${{ env "NAME" }}',
  keys: 'the keys entity is not implemented: signing keys are files (authorization_server.signing_keys)',
  key_sets: 'the key_sets entity is not implemented',
  partials: 'plugin partials are not implemented',
  workspaces: 'workspaces are Kong Enterprise\'s; certbound has one',
}

/** Consumer credentials certbound cannot check, with the reason. */
export const REFUSED_CONSUMER_KEYS: Readonly<Record<string, string>> = {
  keyauth_credentials: 'key-auth is not implemented: certbound authenticates with client certificates and bound tokens',
  basicauth_credentials: 'basic-auth is not implemented: certbound authenticates with client certificates and bound tokens',
  hmacauth_credentials: 'hmac-auth is not implemented',
  jwt_secrets: 'the jwt plugin is not implemented: use openid-connect (consumer_claim + consumer_by maps a token to a consumer)',
  oauth2_credentials: 'the oauth2 plugin is not implemented: use the built-in authorization_server',
  mtls_auth_credentials: 'mtls_auth_credentials are not implemented: mtls-auth maps a certificate with consumer_by (username or custom_id against CN and SAN DNS names)',
  groups: 'consumer groups are not implemented: use acls',
  plugins: 'plugins scoped to a consumer are not implemented',
}

/**
 * Report the Kong keys certbound refuses and return the document without them, so that the schema does not
 * report them a second time as unknown fields. The input is not modified.
 */
export function refuseKongEntities (src: ConfigReporter, doc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(doc)) {
    const reason = REFUSED_ENTITIES[k]
    if (reason === undefined) { out[k] = v; continue }
    if (Array.isArray(v)) v.forEach((_e, i) => src.report([k, i], 'CB_CFG_UNSUPPORTED', `Kong's ${k} entity is not supported: ${reason}`))
    else src.report([], 'CB_CFG_UNSUPPORTED', `Kong's ${k} entity is not supported: ${reason}`, k)
  }
  if (Array.isArray(out.consumers)) {
    out.consumers = out.consumers.map((c: unknown, i) => {
      if (c === null || typeof c !== 'object' || Array.isArray(c)) return c
      const kept: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(c as Record<string, unknown>)) {
        const why = REFUSED_CONSUMER_KEYS[k]
        if (why === undefined) kept[k] = v
        else src.report(['consumers', i], 'CB_CFG_UNSUPPORTED', `${k} is not supported: ${why}`, k)
      }
      return kept
    })
  }
  return out
}
