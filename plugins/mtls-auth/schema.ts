import { z } from 'zod'

/** RFC 9110 §5.1 field-name token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Headers a plugin must never set: framing, routing, hop-by-hop and credential fields (RFC 9110 §7.6.1). */
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'host', 'connection', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive',
  'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'authorization', 'cookie',
])

const upstreamHeader = (d: string) => z.string()
  .regex(HEADER_NAME, 'must be a valid HTTP header name (RFC 9110 token)')
  .refine(h => !FORBIDDEN_HEADERS.has(h.toLowerCase()), { error: (i) => `"${String(i.input)}" may not carry certificate data (framing, hop-by-hop or credential header)` })
  .optional()
  .describe(d)

/** Kong's mtls-auth keys plus Callista's upstream certificate headers. */
export const schema = z.strictObject({
  ca_certificates: z.array(z.string().min(1)).min(1).optional()
    .describe('PEM files (relative to the config file) holding the CA certificates a client certificate must chain to (Kong). ' +
      'Verified by the plugin itself, independently of the listener\'s client_ca. A file may hold several certificates. ' +
      'Omitted (Callista\'s plugin has no such key): the certificate must have verified against the listener\'s client_ca'),
  allow_partial_chain: z.boolean().default(false)
    .describe('Accept a chain that ends at any certificate in ca_certificates (an intermediate CA, or the client ' +
      'certificate itself), not only at a self-signed root (OpenSSL X509_V_FLAG_PARTIAL_CHAIN)'),
  subject_dn: z.string().min(1).optional()
    .describe('Regular expression the RFC 4514 subject (most specific RDN first, e.g. "CN=client1,O=Callista Enterprise AB,C=SE") ' +
      'must match as a whole, like Keycloak\'s x509.subjectdn with regex comparison (".*O=Callista Enterprise AB,.*")'),
  revocation_check_mode: z.enum(['SKIP', 'IGNORE_CA_ERROR', 'STRICT']).default('IGNORE_CA_ERROR')
    .describe('SKIP: no revocation check. IGNORE_CA_ERROR: refuse a revoked certificate; accept one whose status cannot ' +
      'be had (responder down or slow, bad response, no CRL) — logged and counted. STRICT: refuse unless crl_files, ' +
      'the OCSP responder of the certificate\'s AIA or its CRL distribution point says it is good'),
  crl_files: z.array(z.string().min(1)).default([])
    .describe('CRL files (PEM or DER, relative to the config file), each signed by a certificate in ca_certificates. ' +
      'Re-read when they change (checked every cert_cache_ttl). Consulted before OCSP and CRL distribution points'),
  cert_cache_ttl: z.number().int().min(1000).default(60_000)
    .describe('Kong: the longest a revocation answer (OCSP, downloaded CRL) is reused, in ms (never past its nextUpdate); ' +
      'also how often crl_files are checked for changes. A changed answer applies to connections already open'),
  error_response_code: z.number().int().min(400).max(599).default(401)
    .describe('Callista\'s key: the HTTP status for a missing or failed certificate (default 401, as Kong)'),

  upstream_cert_header: upstreamHeader('Send the client certificate upstream in this header, as a URL-encoded PEM exactly like nginx\'s $ssl_client_escaped_cert'),
  upstream_cert_fingerprint_header: upstreamHeader('Send the SHA-1 fingerprint of the certificate (lower-case hex, no separators, as nginx\'s $ssl_client_fingerprint)'),
  upstream_cert_serial_header: upstreamHeader('Send the serial number (upper-case hex, as nginx\'s $ssl_client_serial)'),
  upstream_cert_s_dn_header: upstreamHeader('Send the subject DN (RFC 4514, as nginx\'s $ssl_client_s_dn)'),
  upstream_cert_i_dn_header: upstreamHeader('Send the issuer DN (RFC 4514, as nginx\'s $ssl_client_i_dn)'),
  upstream_cert_cn_header: upstreamHeader('Send the subject\'s common name (CN)'),
  upstream_cert_org_header: upstreamHeader('Send the subject\'s organization (O)'),

  // Kong keys accepted so Kong configs load; they configure features certbound does not have (see README).
  skip_consumer_lookup: z.boolean().default(false)
    .describe('Kong: skip mapping the certificate to a consumer. Accepted and ignored: certbound has no consumers and always behaves as true'),
  consumer_by: z.array(z.enum(['username', 'custom_id'])).default(['username', 'custom_id'])
    .describe('Kong: consumer fields matched against the certificate. Accepted and ignored (no consumers)'),
  authenticated_group_by: z.enum(['CN', 'DN']).nullable().default('CN')
    .describe('Kong: certificate field used as the authenticated group for ACLs. Accepted and ignored'),
  cache_ttl: z.number().min(0).default(60)
    .describe('Kong: consumer cache lifetime in seconds. Accepted and ignored (verification is cached per TLS connection)'),
  send_ca_dn: z.boolean().default(false)
    .describe('Kong: send the CA names in the TLS CertificateRequest. Accepted and ignored (the listener decides)'),
  http_timeout: z.number().int().min(1).default(30_000)
    .describe('Kong: the longest one OCSP request or CRL download may take, in ms; past it the status is unavailable'),
  http_proxy_host: z.string().min(1).optional().describe('Kong: HTTP forward proxy (host) for OCSP and CRL requests to http:// URLs; needs http_proxy_port'),
  http_proxy_port: z.number().int().min(1).max(65535).optional().describe('Kong: port of http_proxy_host'),
  https_proxy_host: z.string().min(1).optional().describe('Kong: HTTP forward proxy (host, CONNECT) for OCSP and CRL requests to https:// URLs; needs https_proxy_port'),
  https_proxy_port: z.number().int().min(1).max(65535).optional().describe('Kong: port of https_proxy_host'),
})

export type MtlsAuthConfig = z.output<typeof schema>
