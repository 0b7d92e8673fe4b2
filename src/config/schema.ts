import { z } from 'zod'
import { storeSchema } from '../store/schema.js'
import { adminDashboardSchema } from './admin-dashboard.js'

/** Shared field helpers. Every field has a description: docs/ is generated from these schemas. */
export const duration = (d: string) => z.number().int().min(0).describe(d)
const nameRe = /^[A-Za-z0-9._~-]+$/
export const entityName = z.string().regex(nameRe, 'must contain only letters, digits and . _ ~ -')
const ref = z.union([z.string(), z.strictObject({ name: z.string(), id: z.string().optional() })])

/**
 * TLS 1.3's suites, then TLS 1.2's AEAD suites with forward secrecy (Mozilla "intermediate" without DHE). Node's own
 * default ends in HIGH, which lets CBC suites with SHA-1 MACs (ECDHE-ECDSA-AES128-SHA...) through on TLS 1.2.
 */
export const DEFAULT_TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

export const tlsListenSchema = z.strictObject({
  cert: z.string().describe('Server certificate chain (PEM), relative to the config file'),
  key: z.string().describe('Server private key (PEM)'),
  client_ca: z.union([z.string(), z.array(z.string()).min(1)]).optional().describe('CA certificates client certificates are verified against'),
  client_certificate: z.enum(['none', 'request', 'require']).default('none')
    .describe('none: do not ask; request: ask, accept any (plugins decide); require: handshake fails without a certificate that verifies against client_ca'),
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Oldest TLS version accepted (TLS 1.0/1.1 are never accepted)'),
  ciphers: z.string().default(DEFAULT_TLS_CIPHERS)
    .describe('OpenSSL cipher list, TLS 1.3 suite names included (default: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only; no CBC, SHA-1, RC4 or NULL suites)'),
})

export const listenSchema = z.strictObject({
  address: z.string().describe('host:port to listen on; port 0 picks a free port'),
  tls: tlsListenSchema.optional().describe('TLS settings; omit for plain HTTP'),
})

/** gateway.limits: every default here is the documented one (README "Operations"). */
export const limitsSchema = z.strictObject({
  max_header_size: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024)
    .describe('Bytes of request line and headers accepted; beyond it: 431 and the connection is closed'),
  max_body_size: z.number().int().min(0).default(0)
    .describe('Bytes of request body accepted (0 = unlimited; bodies are streamed, never buffered whole). Beyond it: ' +
      '413 and the connection is closed — at once for a larger Content-Length, as soon as the limit is passed for a chunked body'),
  header_timeout: z.number().int().min(1).default(10_000)
    .describe('ms from the first byte of a request to the end of its headers (the slowloris guard): ' +
      'beyond it 408 and the connection is closed. At most request_timeout'),
  max_header_count: z.number().int().min(16).max(10_000).default(2000)
    .describe('Request header fields accepted (each counted, duplicates too); beyond it: 431 and the connection is closed. ' +
      'Never silently truncated: a header past the limit is not ignored, the request is refused'),
  handshake_timeout: z.number().int().min(1).default(10_000)
    .describe('ms a TLS listener gives a new connection to complete its handshake; beyond it the connection is closed ' +
      '(no answer can be written before a handshake). Half-open connections cost a descriptor each until then'),
  max_handshakes_in_progress: z.number().int().min(1).max(1_000_000).default(1024)
    .describe('TLS handshakes in progress at once per listener; a connection beyond it is closed at once and counted in ' +
      'certbound_tls_handshakes_refused_total (completed connections are not counted)'),
  max_handshakes_per_address: z.number().int().min(1).max(1_000_000).default(256)
    .describe('TLS handshakes in progress at once from one client IP address, per listener, so that one source cannot take ' +
      'all of max_handshakes_in_progress; beyond it a new connection from that address is closed at once (reason ' +
      '"too_many_from_address"). Raise it when many clients reach the gateway through one NAT address'),
  request_timeout: duration('ms from the first byte of a request to the end of its body (0 = no limit): ' +
    'beyond it 408 (if no response has started) and the connection is closed. Bounds slow uploads too').default(60_000),
  keepalive_timeout: duration('ms an idle keep-alive connection stays open between requests (advertised as Keep-Alive: timeout=N; ' +
    'node closes 1 s later, so that the client closes first; 0 = no idle timeout)').default(60_000),
  drain_timeout: duration('SIGTERM/SIGINT: ms in-flight requests and WebSocket tunnels get to finish before their connections are closed. ' +
    'Reload: ms the old config\'s plugin instances wait for the requests and tunnels that started on them before closing (a reload ' +
    'never cuts a plain request; its upstream pool closes when the request ends; tunnels still open then are closed)').default(10_000),
}).superRefine((l, ctx) => {
  // node refuses headersTimeout > requestTimeout; say so with the config position instead of failing to listen
  if (l.request_timeout > 0 && l.header_timeout > l.request_timeout) {
    ctx.addIssue({ code: 'custom', path: ['header_timeout'], message: `must be at most request_timeout (${l.request_timeout})` })
  }
})

export const pluginEntrySchema = z.strictObject({
  name: z.string().describe('The plugin name (kebab-case)'),
  config: z.record(z.string(), z.unknown()).nullish().describe('The plugin\'s own settings, validated by its schema'),
  route: ref.optional().describe('Top-level plugins: the route it applies to'),
  service: ref.optional().describe('Top-level plugins: the service it applies to'),
  enabled: z.boolean().default(true),
  id: z.string().optional(),
  instance_name: z.string().optional(),
  protocols: z.array(z.enum(['http', 'https', 'grpc', 'grpcs'])).optional(),
  tags: z.array(z.string()).optional(),
})

export const routeSchema = z.strictObject({
  name: entityName.optional(),
  id: z.string().optional(),
  paths: z.array(z.string().min(1)).optional().describe('Prefix paths, or regex paths starting with "~"'),
  methods: z.array(z.string().regex(/^[A-Z]+$/, 'must be an upper-case HTTP method')).optional(),
  hosts: z.array(z.string().min(1)).optional().describe('Host names; "*.example.com" or "example.*" wildcards'),
  headers: z.record(z.string(), z.array(z.string())).optional().describe('Header values that must match'),
  protocols: z.array(z.enum(['http', 'https'])).default(['http', 'https']),
  strip_path: z.boolean().default(true),
  preserve_host: z.boolean().default(false),
  regex_priority: z.number().int().default(0),
  path_handling: z.enum(['v0', 'v1']).default('v0'),
  https_redirect_status_code: z.number().int().optional(),
  request_buffering: z.boolean().optional(),
  response_buffering: z.boolean().optional(),
  service: ref.optional().describe('Top-level routes: the service they belong to'),
  plugins: z.array(pluginEntrySchema).optional(),
  tags: z.array(z.string()).optional(),
})

export const serviceSchema = z.strictObject({
  name: entityName,
  id: z.string().optional(),
  url: z.string().optional().describe('Upstream URL; or protocol/host/port/path'),
  protocol: z.enum(['http', 'https']).optional(),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  path: z.string().optional(),
  connect_timeout: duration('ms to connect to the upstream').default(60_000),
  read_timeout: duration('ms between two reads from the upstream').default(60_000),
  write_timeout: duration('ms between two writes to the upstream').default(60_000),
  retries: z.number().int().min(0).max(32767).default(5).describe('Times a request is tried again after its connection failed before ' +
    'anything was sent, or (idempotent requests without a body) was reset; Kong\'s key and default. A connection that is ' +
    'refused, unreachable or times out puts the upstream on hold (connect_failure_hold): no retry is made to it within the hold'),
  connect_failure_hold: duration('(certbound) ms during which, after a connection to the upstream failed (refused, unreachable, ' +
    'DNS failure, connect_timeout), its requests are answered 502 at once without a connection attempt, like nginx\'s ' +
    'fail_timeout; then one request tries again, and the first connection that succeeds ends the hold. 0: every request ' +
    'tries to connect, with its retries').default(1000),
  tls_verify: z.boolean().optional().describe('Verify an https upstream\'s certificate (default true)'),
  enabled: z.boolean().default(true),
  routes: z.array(routeSchema).optional(),
  plugins: z.array(pluginEntrySchema).optional(),
  tags: z.array(z.string()).optional(),
})

/** Kong's consumer entity: who a request is, once an authentication plugin mapped it (mtls-auth, openid-connect). */
export const consumerSchema = z.strictObject({
  username: z.string().min(1).optional().describe('Unique name; mtls-auth `consumer_by: [username]` matches it against the certificate\'s CN and SAN DNS names'),
  custom_id: z.string().min(1).optional().describe('Unique id from another system; `consumer_by: [custom_id]` matches it'),
  id: z.string().optional().describe('Kong\'s UUID; sent upstream as X-Consumer-ID (default: the username, else custom_id)'),
  tags: z.array(z.string()).optional(),
  acls: z.array(z.strictObject({
    group: z.string().min(1).describe('An acl group this consumer belongs to'),
    id: z.string().optional(),
    tags: z.array(z.string()).optional(),
  })).optional().describe('The consumer\'s acl groups (the acl plugin\'s allow/deny; X-Consumer-Groups upstream)'),
})

export const gatewaySchema = z.strictObject({
  listen: z.array(listenSchema).min(1).default([{ address: '127.0.0.1:8000', tls: undefined }]),
  admin_listen: z.string().optional().describe('host:port of the admin listener (/status, /metrics, POST /config, the dashboard at /)'),
  admin_allow: z.array(z.string()).default(['127.0.0.0/8', '::1/128']).describe('CIDRs allowed to POST /config and to see the dashboard (GET /, GET /api/summary)'),
  admin_dashboard: adminDashboardSchema.prefault({}).describe('The admin dashboard (GET /, GET /api/summary on admin_listen)'),
  trusted_certificates: z.union([z.string(), z.array(z.string())]).optional().describe('Extra CAs for outbound TLS (IdPs, upstreams)'),
  trusted_ips: z.array(z.string()).default([]).describe('Proxies whose X-Forwarded-For is kept (the real peer is appended)'),
  workers: z.number().int().min(0).max(64).default(0).describe('0: one process; N: a primary and N worker processes on the same listeners (the kernel spreads new connections; NODE_CLUSTER_SCHED_POLICY=rr in the environment makes the primary hand them out in turn)'),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  access_log: z.boolean().default(true).describe('One JSON line per request'),
  access_log_buffer: z.number().int().min(64 * 1024).max(1024 * 1024 * 1024).default(8 * 1024 * 1024)
    .describe('Bytes of access-log (and other info/debug) lines that may wait for a slow stdout reader; beyond it lines are ' +
      'dropped and counted (certbound_log_lines_dropped_total, and a warning at most every 10 s). Warnings, errors and ' +
      'lifecycle lines (start, stop, reloads) are never queued behind them: they are written at once'),
  limits: limitsSchema.prefault({}),
  store: storeSchema.prefault({}).describe('Shared state (revocations, generated signing keys, replay and rate-limit counters): memory (this node) or redis (every node)'),
})

export const rootSchema = z.strictObject({
  _format_version: z.union([z.literal('3.0'), z.literal('2.1'), z.literal('1.1')]).describe('decK format version'),
  _transform: z.boolean().optional(),
  _workspace: z.string().optional(),
  _info: z.unknown().optional(),
  gateway: gatewaySchema.prefault({}),
  services: z.array(serviceSchema).default([]),
  routes: z.array(routeSchema).default([]),
  plugins: z.array(pluginEntrySchema).default([]),
  consumers: z.array(consumerSchema).default([]).describe('Kong consumers (username, custom_id, acls)'),
  authorization_server: z.record(z.string(), z.unknown()).optional().describe('The built-in authorization server (see docs)'),
})

export type RootConfig = z.output<typeof rootSchema>
export type ServiceConfig = z.output<typeof serviceSchema>
export type RouteConfig = z.output<typeof routeSchema>
export type ConsumerConfig = z.output<typeof consumerSchema>
export type PluginEntry = z.output<typeof pluginEntrySchema>
export type ListenConfig = z.output<typeof listenSchema>
export type LimitsConfig = z.output<typeof limitsSchema>
export type GatewaySettings = z.output<typeof gatewaySchema>
