import type { GatewayExtension } from '../extensions/types.js'
import { authorizationServerSchema } from './schema.js'
import { createAuthorizationServer } from './server.js'

/**
 * The built-in OAuth 2.0 authorization server: the top-level `authorization_server:` section.
 * Client credentials (RFC 6749 §4.4) with RFC 8705 mutual-TLS client authentication and certificate-bound
 * JWT access tokens (RFC 9068), RFC 8414 metadata, RFC 7662 introspection, RFC 7009 revocation. Its
 * endpoints are answered on the gateway's listeners before routing; its LocalIssuer service lets the token
 * plugins validate its tokens in process.
 */
export const authorizationServer: GatewayExtension<typeof authorizationServerSchema> = Object.freeze({
  section: 'authorization_server',
  schema: authorizationServerSchema,
  create: createAuthorizationServer,
})

export default authorizationServer

export { authorizationServerSchema, DEFAULTS, type AuthorizationServerConfig, type ClientConfig } from './schema.js'
export { createAuthorizationServer, AuthorizationServerConfigError, type AuthorizationServer } from './server.js'
export { hashSecret, verifySecret } from './secret-hash.js'
export { rotateKey, openKeyStore, type SigningAlg } from './signing-keys.js'
export { rotateSharedKey } from './store-keys.js'
