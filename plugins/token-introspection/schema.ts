import { z } from 'zod'
import { CERTIFICATE_HEADER_FORMATS, dpopSchemaFields, headerRevocationKeys } from '../../src/plugin-api.js'

/** RFC 9110 §5.1 field-name token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

const headerName = z.string().regex(HEADER_NAME, 'must be a valid HTTP header name (RFC 9110 token)')

const scopeList = (d: string) => z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be one RFC 6749 §3.3 scope token (no spaces)')).optional().describe(d)

/** Callista's token-introspection keys, plus what RFC 7662 and RFC 8705 need to be done right. */
export const schema = z.strictObject({
  introspection_endpoint: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .describe('The RFC 7662 introspection endpoint (Keycloak: https://<host>/realms/<realm>/protocol/openid-connect/token/introspect)'),
  introspection_ssl_verify: z.boolean().default(true)
    .describe('Verify the introspection endpoint\'s TLS certificate (against the system CAs and gateway.trusted_certificates)'),
  introspection_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'tls_client_auth']).default('client_secret_basic')
    .describe('How the gateway authenticates to the endpoint (RFC 7662 §2.1, RFC 6749 §2.3.1, RFC 8705 §2.1)'),
  client_id: z.string().min(1).optional()
    .describe('The gateway\'s client_id at the authorization server. Required unless the endpoint is served by the built-in authorization server'),
  client_secret: z.string().min(1).optional()
    .describe('The client secret, for client_secret_basic and client_secret_post'),
  client_cert: z.string().min(1).optional()
    .describe('PEM client certificate for tls_client_auth (mutual TLS to the endpoint), relative to the config file'),
  client_key: z.string().min(1).optional()
    .describe('PEM private key of client_cert'),
  timeout: z.number().int().min(1).max(120_000).default(5000)
    .describe('Milliseconds the whole introspection call may take; beyond it the request is refused with 503'),
  token_header: headerName.default('Authorization')
    .describe('Header carrying the token. Authorization expects "Bearer <token>"; any other header holds the raw token (a "Bearer " prefix is removed)'),
  hide_credentials: z.boolean().default(false)
    .describe('Do not forward token_header upstream (Callista\'s plugin defaults to true; certbound, like Kong, to false)'),
  allow_anonymous: z.boolean().default(false)
    .describe('Callista\'s key, never implemented there: only false is accepted'),
  ttl: z.number().min(0).default(30)
    .describe('Seconds an active introspection result is cached; never beyond the token\'s exp. 0 disables the cache'),
  negative_ttl: z.number().min(0).default(0)
    .describe('Seconds an inactive result is cached (0: inactive tokens are asked about every time)'),
  cache_size: z.number().int().min(1).max(10_000_000).default(10_000)
    .describe('Most introspection results cached (least recently used are evicted)'),
  scope: scopeList('Scopes the token must all carry; otherwise 403 insufficient_scope'),
  scopes: scopeList('Alias of scope (both lists are required when both are given)'),
  certificate_binding: z.enum(['optional', 'strict']).default('optional')
    .describe('RFC 8705 §3: optional checks bound tokens only (cnf."x5t#S256" against the client certificate); strict also refuses a token without cnf'),
  certificate_header: headerName.optional()
    .describe('Header a trusted TLS terminator puts the client certificate in. Read only from trusted_ips; otherwise the TLS session\'s certificate is used'),
  certificate_header_format: z.enum(CERTIFICATE_HEADER_FORMATS).default('url_encoded')
    .describe('url_encoded (URL-encoded PEM, nginx $ssl_client_escaped_cert), base64_encoded (base64 of PEM or DER), rfc9440 (":<base64 DER>:"), xfcc (Envoy x-forwarded-client-cert)'),
  trusted_ips: z.array(z.string().min(1)).default([])
    .describe('Addresses or CIDRs of TLS terminators allowed to send certificate_header (IPv4 and IPv6), and whose X-Forwarded-Proto/-Host/-Port give the URI a DPoP proof\'s htu is checked against'),
  ...headerRevocationKeys,
  custom_claims_forward: z.array(headerName).default([])
    .describe('Claims sent upstream as X-Credential-<Claim> headers (strings as-is, other values as JSON)'),
  ...dpopSchemaFields,
})

export type TokenIntrospectionConfig = z.output<typeof schema>
