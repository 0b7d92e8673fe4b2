import { definePlugin, type PluginInstance } from '../../src/plugin-api.js'
import { schema } from './schema.js'

/**
 * Kong's tls-handshake-modifier. The TLS handshake happens before routing, so the plugin cannot act per request:
 * its presence on any route makes TLS listeners configured with `client_certificate: none` request (never
 * require) a client certificate. Later plugins (openid-connect with proof_of_possession_mtls, token-introspection)
 * then find it in the TLS session. It verifies nothing itself.
 */
export default definePlugin({
  name: 'tls-handshake-modifier',
  priority: 997,
  description: 'Makes the TLS handshake request (not require) a client certificate, for plugins that bind tokens to it',
  schema,
  create (): PluginInstance {
    return Object.freeze({ requestClientCertificate: true })
  },
})
