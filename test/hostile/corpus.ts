/**
 * Hostile requests against one gateway running the full chain (mtls-auth + openid-connect strict PoP +
 * require-scopes + request-transformer), as data: what to send, what must come back, and whether the upstream may
 * see anything. corpus.test.ts iterates it; the fixtures it needs (tokens, keys, ports) are built there.
 *
 * Routes of the gateway under test (see corpus.test.ts):
 * - `/api`   the full chain against the real IdP (oidc-provider), on both listeners
 * - `/local` the same chain against a small issuer whose signing key the test holds, so tokens with hostile claims
 *            (cnf of the wrong type, JSON bombs, crit) can be signed by a *trusted* key
 * - `/open`  no plugins: a request that parses reaches the upstream, so "nothing reached it" means something
 * Listeners: `tls` (client_certificate: request) and `plain`. gateway.trusted_ips is 127.0.0.2/32;
 * gateway.limits: max_header_size 8192, max_body_size 1024, max_header_count 100.
 */
import { createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto'
import type { TestCert, TestPki } from '../helpers/pki.js'
import { rawRequest } from './wire.js'

export const AUDIENCE = 'https://api.example.test'
export const MAX_HEADER_SIZE = 8192
export const MAX_BODY_SIZE = 1024
/** gateway.limits.max_header_count of the corpus gateway (default 2000; lower here so it fits max_header_size). */
export const MAX_HEADER_COUNT = 100
export const TRUSTED_PEER = '127.0.0.2'
/** Every spoofed value carries this marker: it must never reach the upstream. */
export const SPOOF = 'SPOOFED'

/** What the cases need at run time. */
export interface Fixtures {
  readonly pki: TestPki
  readonly tlsPort: number
  readonly plainPort: number
  /** The real IdP: issuer, current kid, its public signing key (PEM and JWK). */
  readonly idp: { readonly issuer: string, readonly kid: string, readonly publicKeyPem: string, readonly publicJwk: Record<string, unknown> }
  /** IdP-issued JWTs bound to client1 / client2 (scope system-access), and one for client1 without that scope. */
  readonly tokens: { readonly client1: string, readonly client2: string, readonly client1OtherScope: string }
  /** A loopback server that must never be called (jku/x5u targets); serves the attacker's JWKS and certificate. */
  readonly attacker: { readonly url: string, readonly kid: string, readonly privateKey: KeyObject, readonly publicJwk: Record<string, unknown>, readonly certPem: string }
  /** The /local issuer: its identifier and a signer with its trusted key (header/claims merged over defaults). */
  readonly local: {
    readonly issuer: string
    sign (claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>
    /** The same, but the header is signed as given (no library checks: an unknown crit goes through). */
    signRaw (claims: Record<string, unknown>, header: Record<string, unknown>): Promise<string>
  }
}

export type ClientCertName = 'client1' | 'client2' | 'otherClient' | 'expiredClient' | 'notYetValidClient' | 'revokedClient' | 'selfSigned'
export type ListenerName = 'tls' | 'plain'

export interface TlsTweaks {
  readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'
  readonly ciphers?: string
}

/** How a case is sent. */
export type Send =
  /** Raw bytes on one connection (TLS when listener is 'tls'). */
  | { readonly kind: 'raw', readonly listener: ListenerName, readonly cert?: ClientCertName, readonly from?: string, readonly tls?: TlsTweaks, readonly chunks: ReadonlyArray<string | Buffer>, readonly pauseMs?: number, /** plain TCP to the TLS listener's port */ readonly noTls?: boolean }
  /** The real curl against `path` on the listener (cert/key/cacert added by the runner). */
  | { readonly kind: 'curl', readonly listener: ListenerName, readonly cert?: ClientCertName, readonly path: string, readonly args: readonly string[] }
  /** TLS 1.2 handshake with `cert` (or none), then the client asks to renegotiate, then `request` on the same connection. */
  | { readonly kind: 'renegotiate', readonly cert?: ClientCertName, readonly request: Buffer }
  /** Handshake with `first` and take its session; resume it on a new connection configured with `second`; send `request` there. */
  | { readonly kind: 'resume', readonly version: 'TLSv1.2' | 'TLSv1.3', readonly first: ClientCertName | null, readonly second: ClientCertName, readonly request: Buffer }

/** A header expectation: exact value, pattern, must be absent (null), or computed from the fixtures. */
export type HeaderExpectation = string | RegExp | null | ((f: Fixtures) => string | RegExp | null)

export interface Expectation {
  /** HTTP status of the (first) response; null = no HTTP response at all (handshake refused, connection dropped). */
  readonly status: number | null | ReadonlyArray<number | null>
  /** The server closed the connection on its own (the request did not ask for it). */
  readonly closed?: boolean
  /** Number of responses on the connection (default 1 when status is a number): a smuggled request shows as 2. */
  readonly responses?: number
  readonly headers?: Readonly<Record<string, HeaderExpectation>>
  /** JSON body subset, or a pattern over the body text. */
  readonly body?: Readonly<Record<string, unknown>> | RegExp
  /** Upstream request headers (the last request the upstream received). */
  readonly upstream?: Readonly<Record<string, HeaderExpectation>>
  /** Path and query the upstream received. */
  readonly upstreamUrl?: string
  /** Answered within this many ms (default 5000). */
  readonly withinMs?: number
}

export interface HostileCase {
  readonly name: string
  readonly group: 'framing' | 'smuggling' | 'target' | 'limits' | 'authorization' | 'jose' | 'claims' | 'tls' | 'certificates' | 'spoofing' | 'control'
  readonly send: (f: Fixtures) => Send | Promise<Send>
  readonly expect: Expectation
  /** Whether the upstream may see the request at all (false: not even its head). */
  readonly expectUpstreamHit: boolean
}

// ---------------------------------------------------------------------------------------------------------------
// Builders

const b64url = (s: string | Buffer): string => Buffer.from(s).toString('base64url')
const now = (): number => Math.floor(Date.now() / 1000)

/** A compact JWS with exactly this header and payload text, signed as `how` says (no library checks in the way). */
export function forgeJws (header: Record<string, unknown>, payload: Record<string, unknown> | string, how: { es256: KeyObject } | { hmac: Buffer | string } | 'none'): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(typeof payload === 'string' ? payload : JSON.stringify(payload))}`
  if (how === 'none') return `${input}.`
  if ('hmac' in how) return `${input}.${createHmac('sha256', how.hmac).update(input).digest('base64url')}`
  return `${input}.${cryptoSign('sha256', Buffer.from(input), { key: how.es256, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
}

/** Claims an attacker would want the gateway to believe: the IdP's issuer, client1's binding, the right scope. */
function wishfulClaims (f: Fixtures, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: f.idp.issuer, aud: AUDIENCE, client_id: 'client1', sub: 'client1', scope: 'system-access',
    iat: now(), exp: now() + 300, jti: `forged-${Math.random()}`, cnf: { 'x5t#S256': f.pki.thumbprint(f.pki.client1) }, ...extra,
  }
}

/** The attacker's ES256 signature over `header` + `claims`; kid and typ default to the attacker's. */
function attackerToken (f: Fixtures, header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}): string {
  return forgeJws({ alg: 'ES256', typ: 'at+jwt', kid: f.attacker.kid, ...header }, wishfulClaims(f, claims), { es256: f.attacker.privateKey })
}

/** A /local token signed by the trusted local key, bound to client1 unless the claims say otherwise. */
function localToken (f: Fixtures, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return f.local.sign({ cnf: { 'x5t#S256': f.pki.thumbprint(f.pki.client1) }, ...claims }, header)
}

const bearer = (t: string): [string, string] => ['Authorization', `Bearer ${t}`]

function get (path: string, headers: ReadonlyArray<readonly [string, string]> = []): Buffer {
  return rawRequest('GET', path, headers)
}

/** A raw request on a listener, with client1's certificate on TLS unless told otherwise. */
function raw (chunks: Buffer | string | ReadonlyArray<string | Buffer>, o: { listener?: ListenerName, cert?: ClientCertName | null, from?: string, tls?: TlsTweaks, pauseMs?: number } = {}): Send {
  const listener = o.listener ?? 'tls'
  const cert = o.cert === null ? undefined : (o.cert ?? (listener === 'tls' ? 'client1' : undefined))
  return { kind: 'raw', listener, cert, from: o.from, tls: o.tls, pauseMs: o.pauseMs, chunks: Array.isArray(chunks) ? chunks : [chunks as string | Buffer] }
}

const JSON_CT = { 'content-type': /^application\/json/ }
const BAD_REQUEST = { status: 400, closed: true, responses: 1 } as const
const NO_CERT = { status: 401, body: { message: 'No required TLS certificate was sent' } } as const
const CERT_INVALID = { status: 401, body: { message: 'TLS certificate failed verification' } } as const
const INVALID_TOKEN = {
  status: 401,
  headers: { 'www-authenticate': 'Bearer realm="certbound", error="invalid_token", error_description="The access token is invalid"', ...JSON_CT },
  body: { message: 'The access token is invalid' },
} as const

/** Smuggling framings: every one is a 400 on a closed connection, on both listeners, and nothing reaches the upstream. */
const SMUGGLING: ReadonlyArray<readonly [name: string, bytes: string, nodeAnswers?: true]> = [
  ['Content-Length with Transfer-Encoding (CL.TE), a second request smuggled in the body',
    'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /open/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['Transfer-Encoding before Content-Length (TE.CL)',
    'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2c\r\nGET /open/smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n'],
  ['two differing Content-Length headers',
    'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 44\r\n\r\nhelloGET /open/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['two identical Content-Length headers', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello'],
  ['a Content-Length list ("5, 5")', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello'],
  ['a signed Content-Length (+5)', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello'],
  ['a negative Content-Length', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n'],
  ['obs-fold (a header continued on the next line)', 'GET /open/a HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n'],
  ['obs-fold hiding Transfer-Encoding', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nX-Pad: x\r\n Transfer-Encoding: chunked\r\n\r\nhello'],
  ['whitespace before the colon ("Transfer-Encoding : chunked")', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello'],
  ['Transfer-Encoding: chunked, gzip (chunked not last)', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding: identity', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity\r\n\r\nhello'],
  ['Transfer-Encoding: xchunked', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
  ['two Transfer-Encoding: chunked headers', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['a chunk size that is not hex', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
  ['a chunk size that overflows 64 bits', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n'],
  ['a negative chunk size', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n'],
  ['chunk data longer than its size (no CRLF after it)', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n'],
  ['a control character in a chunk extension', 'POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\x01\r\nhello\r\n0\r\n\r\n'],
  ['bare LF line endings', 'GET /open/a HTTP/1.1\nHost: localhost\n\n'],
  ['a bare CR inside the head', 'GET /open/a HTTP/1.1\r\nHost: localhost\rX-Injected: 1\r\n\r\n'],
  ['a NUL byte in a header value', 'GET /open/a HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\x00b\r\n\r\n'],
  ['a header line starting with whitespace', 'GET /open/a HTTP/1.1\r\n Host: localhost\r\n\r\n'],
  ['two Host headers (RFC 9112 §3.2)', 'GET /open/a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n'],
  // node answers this one itself (requireHostHeader), with an empty body
  ['no Host header on HTTP/1.1', 'GET /open/a HTTP/1.1\r\nX-A: b\r\n\r\n', true],
  ['HTTP/0.9-style request line (no version)', 'GET /open/a\r\n\r\n'],
  ['an unsupported HTTP version (HTTP/1.2)', 'GET /open/a HTTP/1.2\r\nHost: localhost\r\n\r\n'],
  ['HTTP/2.0 in an HTTP/1 request line', 'GET /open/a HTTP/2.0\r\nHost: localhost\r\n\r\n'],
]

const INVALID_TARGETS: ReadonlyArray<readonly [name: string, requestLine: string]> = [
  ['a method with a separator character', 'G(T /open/a HTTP/1.1'],
  ['an unknown method', 'FOO /open/a HTTP/1.1'],
  ['a lower-case method', 'get /open/a HTTP/1.1'],
  ['a space inside the path', 'GET /open/a b HTTP/1.1'],
  ['a target without a leading slash', 'GET open/a HTTP/1.1'],
]

/** Headers a client might forge to pass as someone; all are identity headers the gateway strips or owns. */
function spoofedHeaders (): Array<[string, string]> {
  return [
    ['X-Credential-Sub', `${SPOOF}-admin`], ['X-Credential-Client-Id', `${SPOOF}-client`], ['X-Credential-Scope', `${SPOOF} admin`],
    ['x-credential-whatever', SPOOF], ['X-Client-Cert', SPOOF], ['X-SSL-Client-S-DN', `CN=${SPOOF}`],
    ['X-Authenticated-Sub', SPOOF], ['X-Consumer-Id', SPOOF], ['X-Client-Subject', SPOOF],
    ['X-Forwarded-Client-Cert', `Cert="${SPOOF}"`], ['Client-Cert', `:${SPOOF}:`], ['X-SSL-Client-Cert', SPOOF],
    // underscores: CGI, WSGI, Rack and PHP map X_Credential_Sub and X-Credential-Sub to the same variable
    ['X_Credential_Sub', SPOOF], ['X_Client_Cert', SPOOF], ['X_Forwarded_Proto', SPOOF],
    ['X-Forwarded-Proto', SPOOF], ['X-Forwarded-Host', SPOOF], ['X-Forwarded-Port', SPOOF], ['X-Forwarded-Prefix', SPOOF],
    ['X-Real-IP', SPOOF], ['Forwarded', `for=${SPOOF}`], ['X-Forwarded-For', `${SPOOF}`],
    ['X-Request-Id', `${SPOOF} <not a request id>`],
  ]
}

/** Upstream expectations after spoofedHeaders(): identity headers are the gateway's (or absent), X-Forwarded-* its own. */
function gatewayOwned (listener: ListenerName, authenticated: boolean, xff: HeaderExpectation = '127.0.0.1'): Record<string, HeaderExpectation> {
  return {
    'x-forwarded-proto': listener === 'tls' ? 'https' : 'http',
    'x-forwarded-host': 'localhost',
    'x-forwarded-port': f => String(listener === 'tls' ? f.tlsPort : f.plainPort),
    'x-forwarded-for': xff,
    'x-real-ip': typeof xff === 'string' ? xff.split(', ').pop()! : '127.0.0.1',
    'x-forwarded-prefix': null,
    forwarded: null,
    'x-request-id': /^[0-9a-f-]{36}$/,
    'x-credential-whatever': null,
    'x-forwarded-client-cert': null,
    'client-cert': null,
    'x-ssl-client-cert': null,
    'x_credential_sub': null,
    'x_client_cert': null,
    'x_forwarded_proto': null,
    ...(authenticated
      ? {
          'x-credential-client-id': 'client1',
          'x-credential-scope': /system-access/,
          'x-consumer-id': 'client1',
          'x-client-subject': 'CN=client1,O=Example Org',
          'x-ssl-client-s-dn': 'CN=client1,O=Example Org',
          'x-client-cert': f => encodeURIComponentLikeNginx(f.pki.client1.certPem),
        }
      : {
          'x-credential-sub': null, 'x-credential-client-id': null, 'x-credential-scope': null, 'x-client-cert': null,
          'x-ssl-client-s-dn': null, 'x-authenticated-sub': null, 'x-consumer-id': null, 'x-client-subject': null,
        }),
  }
}

/** nginx's $ssl_client_escaped_cert, computed independently of src/ (an oracle). */
function encodeURIComponentLikeNginx (pem: string): string {
  return encodeURIComponent(pem).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

function deepArray (depth: number): string { return '['.repeat(depth) + ']'.repeat(depth) }

function payloadText (claims: Record<string, unknown>, extraJson: string): string {
  const base = JSON.stringify(claims)
  return `${base.slice(0, -1)},${extraJson}}`
}

// ---------------------------------------------------------------------------------------------------------------
// The corpus

export const corpus: readonly HostileCase[] = [
  // --- controls: the setup works, so a refusal below means something --------------------------------------------
  {
    name: 'control: client1 with its bound token on /api → 200 and the injected identity headers',
    group: 'control',
    send: f => raw(get('/api/ok', [bearer(f.tokens.client1)])),
    expect: { status: 200, upstream: { 'x-credential-client-id': 'client1', 'x-consumer-id': 'client1', 'x-client-subject': 'CN=client1,O=Example Org' } },
    expectUpstreamHit: true,
  },
  {
    name: 'control: /open on the plain listener → 200',
    group: 'control',
    send: () => raw(get('/open/ok'), { listener: 'plain' }),
    expect: { status: 200, upstreamUrl: '/ok' },
    expectUpstreamHit: true,
  },
  {
    name: 'control: a /local token with a well-formed cnf for client1 → 200',
    group: 'control',
    send: async f => raw(get('/local/ok', [bearer(await localToken(f))])),
    expect: { status: 200, upstream: { 'x-credential-client-id': 'client1' } },
    expectUpstreamHit: true,
  },

  // --- request smuggling and framing: 400, connection closed, nothing upstream -----------------------------------
  ...(['tls', 'plain'] as const).flatMap((listener): HostileCase[] => SMUGGLING.map(([name, bytes, nodeAnswers]) => ({
    name: `${listener}: ${name} → 400, closed`,
    group: 'smuggling',
    send: () => raw(bytes, { listener }),
    expect: nodeAnswers === true ? BAD_REQUEST : { ...BAD_REQUEST, headers: JSON_CT, body: { message: 'Bad request' } },
    expectUpstreamHit: false,
  }))),
  {
    name: 'tls: a bad chunk size arriving after the head (a later packet) → 400, closed, nothing upstream',
    group: 'smuggling',
    send: () => raw(['POST /open/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', 'zz\r\nhello\r\n0\r\n\r\n'], { pauseMs: 50 }),
    expect: { status: 400, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: Upgrade: h2c (h2c smuggling past the route) → 400, nothing upstream',
    group: 'smuggling',
    send: () => raw(rawRequest('GET', '/open/a', [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']])),
    expect: { status: 400, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a WebSocket upgrade to /api without a token → 401, nothing upstream',
    group: 'smuggling',
    send: () => raw(rawRequest('GET', '/api/ws', [['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13']])),
    expect: { status: 401, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'plain: CONNECT (a tunnel request) → 405, closed, nothing upstream',
    group: 'framing',
    // certbound is no forward proxy: a CONNECT gets a clear answer and the connection is closed
    send: () => raw('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', { listener: 'plain' }),
    expect: { status: 405, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'plain: TLS bytes (a ClientHello) on the plain listener → 400, closed',
    group: 'framing',
    send: () => raw(Buffer.from('16030100c4010000c00303', 'hex'), { listener: 'plain' }),
    expect: { status: 400, closed: true },
    expectUpstreamHit: false,
  },

  // --- invalid methods and targets -------------------------------------------------------------------------------
  ...INVALID_TARGETS.map(([name, line]): HostileCase => ({
    name: `tls: ${name} → 400, closed`,
    group: 'target',
    send: () => raw(`${line}\r\nHost: localhost\r\n\r\n`),
    expect: BAD_REQUEST,
    expectUpstreamHit: false,
  })),
  ...([
    ['the asterisk form', '*'],
    ['an encoded NUL in the path', '/open/a%00b'],
    ['a backslash in the path', '/open/a\\..\\..\\api'],
    ['a truncated escape', '/open/a%2'],
    ['a non-hex escape', '/open/a%zz'],
  ] as const).map(([name, target]): HostileCase => ({
    name: `tls: ${name} → 400 invalid path`,
    group: 'target',
    send: () => raw(get(target)),
    expect: { status: 400, body: { message: 'Bad request: invalid path' } },
    expectUpstreamHit: false,
  })),
  ...([
    ['dot segments out of /open into /api', '/open/../api/x'],
    ['encoded dot segments (%2e%2e) into /api', '/open/%2e%2E/api/x'],
    ['an encoded unreserved letter (/%61pi)', '/%61pi/x'],
    ['a dot segment followed by an encoded slash-free path', '/open/./../api'],
  ] as const).map(([name, target]): HostileCase => ({
    name: `tls: ${name}, without a token → routed to /api, 401`,
    group: 'target',
    send: () => raw(get(target)),
    expect: { status: 401, headers: { 'www-authenticate': 'Bearer realm="certbound"' } },
    expectUpstreamHit: false,
  })),
  {
    name: 'tls: an encoded slash (/api%2F..%2Fopen) is not a separator: stays under /api, 401',
    group: 'target',
    send: () => raw(get('/api%2F..%2Fopen/x')),
    expect: { status: [401, 404] },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: an absolute-form target naming another host is routed by path; the upstream gets origin-form',
    group: 'target',
    send: () => raw(get('http://evil.example/open/abs?q=1')),
    expect: { status: 200, upstreamUrl: '/abs?q=1', upstream: { host: /^127\.0\.0\.1:\d+$/ } },
    expectUpstreamHit: true,
  },

  // --- limits ----------------------------------------------------------------------------------------------------
  {
    name: `tls: a request head over max_header_size (${MAX_HEADER_SIZE}) → 431, closed`,
    group: 'limits',
    send: () => raw(get('/open/a', [['X-Big', 'a'.repeat(MAX_HEADER_SIZE)]]), { cert: 'client1' }),
    expect: { status: 431, closed: true, body: { message: 'Request header fields too large' } },
    expectUpstreamHit: false,
  },
  {
    name: 'plain: 3000 small headers (over the size limit) → 431',
    group: 'limits',
    send: () => raw(get('/open/a', Array.from({ length: 3000 }, (_, i) => [`x-h${i}`, 'v'] as [string, string])), { listener: 'plain' }),
    expect: { status: 431, closed: true },
    expectUpstreamHit: false,
  },
  {
    // issue 12: node kept the first 2000 headers and dropped the rest, so a second Authorization past them was
    // never seen (200 where two Authorization headers are a documented 400)
    name: `tls: a second Authorization after max_header_count (${MAX_HEADER_COUNT}) fields → 431, not judged on a truncated head`,
    group: 'limits',
    send: () => raw(get('/open/a', [
      bearer('first'), ...Array.from({ length: MAX_HEADER_COUNT }, (_, i) => [`x-h${i % 10}`, 'v'] as [string, string]), bearer('second'),
    ])),
    expect: { status: 431, closed: true, body: { message: 'Request header fields too large' } },
    expectUpstreamHit: false,
  },
  {
    name: `plain: exactly max_header_count (${MAX_HEADER_COUNT}) header fields → accepted`,
    group: 'limits',
    send: () => raw(get('/open/a', Array.from({ length: MAX_HEADER_COUNT - 2 /* + Host, Connection */ }, (_, i) => [`x-h${i % 10}`, 'v'] as [string, string])), { listener: 'plain' }),
    expect: { status: 200 },
    expectUpstreamHit: true,
  },
  {
    name: 'plain: a request target longer than max_header_size → 431',
    group: 'limits',
    send: () => raw(get('/open/' + 'a'.repeat(MAX_HEADER_SIZE + 100)), { listener: 'plain' }),
    expect: { status: 431, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a 100 kB token → refused cleanly (431: the head is over the limit)',
    group: 'limits',
    send: () => raw(get('/api/a', [bearer('a'.repeat(100 * 1024))])),
    expect: { status: [401, 431], closed: true },
    expectUpstreamHit: false,
  },
  {
    name: `plain: Content-Length over max_body_size (${MAX_BODY_SIZE}) on /open → 413 before anything is sent upstream`,
    group: 'limits',
    send: () => raw(rawRequest('POST', '/open/upload', [['Content-Length', String(MAX_BODY_SIZE + 1)]], 'x'.repeat(MAX_BODY_SIZE + 1)), { listener: 'plain' }),
    expect: { status: 413, body: { message: 'Request body too large' } },
    expectUpstreamHit: false,
  },
  {
    name: 'plain: a body within max_body_size on /open → 200, the whole body upstream',
    group: 'limits',
    send: () => raw(rawRequest('POST', '/open/upload', [['Content-Length', String(MAX_BODY_SIZE)]], 'x'.repeat(MAX_BODY_SIZE)), { listener: 'plain' }),
    expect: { status: 200 },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: a body over max_body_size on /api without a token → 401 (auth first, the body is never forwarded)',
    group: 'limits',
    send: () => raw(rawRequest('POST', '/api/upload', [['Content-Length', String(MAX_BODY_SIZE * 4)]], 'x'.repeat(MAX_BODY_SIZE * 4))),
    expect: { status: 401 },
    expectUpstreamHit: false,
  },

  // --- Authorization header (RFC 6750) ---------------------------------------------------------------------------
  {
    name: 'tls: two identical Authorization headers → 400 invalid_request',
    group: 'authorization',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1), bearer(f.tokens.client1)])),
    expect: { status: 400, headers: { 'www-authenticate': /^Bearer realm="certbound", error="invalid_request"/ }, body: { message: 'More than one access token was sent' } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: two different Authorization headers (valid first) → 400 invalid_request',
    group: 'authorization',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1), bearer(f.tokens.client2)])),
    expect: { status: 400, headers: { 'www-authenticate': /error="invalid_request"/ } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: Authorization and authorization (case variants) → 400 invalid_request',
    group: 'authorization',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1), ['authorization', 'Bearer x']])),
    expect: { status: 400, headers: { 'www-authenticate': /error="invalid_request"/ } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: no Authorization → 401 Bearer realm without an error code',
    group: 'authorization',
    send: () => raw(get('/api/a')),
    expect: { status: 401, headers: { 'www-authenticate': 'Bearer realm="certbound"' }, body: { message: 'Unauthorized' } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a Basic credential instead of a Bearer token → 401',
    group: 'authorization',
    send: () => raw(get('/api/a', [['Authorization', 'Basic YWRtaW46YWRtaW4=']])),
    expect: { status: 401, headers: { 'www-authenticate': /^Bearer realm="certbound"/ } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: "Bearer" with an empty token → 401',
    group: 'authorization',
    send: () => raw(get('/api/a', [['Authorization', 'Bearer ']])),
    expect: { status: 401 },
    expectUpstreamHit: false,
  },
  ...([
    ['characters outside b64token', 'abc$%^&*(){}'],
    ['an embedded space', 'eyJhbGciOiJFUzI1NiJ9 .e30.sig'],
    ['UTF-8 bytes', Buffer.from('tökén', 'utf8').toString('latin1')],
    ['padding in the middle', 'ab==cd'],
    ['only dots', '...'],
    ['a JWT with an empty signature', 'eyJhbGciOiJFUzI1NiJ9.e30.'],
    ['a JWT of garbage segments', 'e30.e30.e30'],
    ['a JWT whose header is not JSON', `${b64url('not json')}.${b64url('{}')}.sig`],
    ['a JWT whose header is a JSON array', `${b64url('[]')}.${b64url('{}')}.sig`],
    ['a JWS with five segments (JWE-shaped)', 'a.b.c.d.e'],
    ['a 6 kB token (under the header limit)', 'A'.repeat(6 * 1024)],
  ] as const).map(([name, token]): HostileCase => ({
    name: `tls: a non-base64url / malformed token (${name}) → 401 invalid_token`,
    group: 'authorization',
    send: () => raw(get('/api/a', [['Authorization', `Bearer ${token}`]])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  })),
  {
    name: 'tls: the token in the query string (RFC 6750 §2.3 is not supported) → 401 without an error code',
    group: 'authorization',
    send: f => raw(get(`/api/a?access_token=${f.tokens.client1}`)),
    expect: { status: 401, headers: { 'www-authenticate': 'Bearer realm="certbound"' } },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a token with the wrong scope → 403 insufficient_scope',
    group: 'authorization',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1OtherScope)])),
    expect: { status: 403, headers: { 'www-authenticate': /error="insufficient_scope", .*scope="system-access"/ } },
    expectUpstreamHit: false,
  },

  // --- JOSE attacks: all signed by keys the gateway must not trust ------------------------------------------------
  {
    name: 'tls: alg none → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'none', typ: 'at+jwt' }, wishfulClaims(f), 'none'))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: alg "None" with the IdP kid and a kept signature segment → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'None', kid: f.idp.kid, typ: 'at+jwt' }, wishfulClaims(f), 'none') + 'c2ln')])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: alg HS256 "signed" with the IdP public key PEM (algorithm confusion) → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'HS256', kid: f.idp.kid, typ: 'at+jwt' }, wishfulClaims(f), { hmac: f.idp.publicKeyPem }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: alg HS256 "signed" with the IdP public JWK JSON → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'HS256', kid: f.idp.kid, typ: 'at+jwt' }, wishfulClaims(f), { hmac: JSON.stringify(f.idp.publicJwk) }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: jku pointing to the attacker (attacker key, attacker kid) → 401, the attacker is never called',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { jku: `${f.attacker.url}/jwks.json` }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: jku pointing to the attacker with the IdP kid → 401, the attacker is never called',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { jku: `${f.attacker.url}/jwks.json`, kid: f.idp.kid }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: x5u pointing to the attacker → 401, the attacker is never called',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { x5u: `${f.attacker.url}/cert.pem` }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: an embedded jwk header (the attacker public key) → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { jwk: f.attacker.publicJwk, kid: undefined }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: an embedded x5c header (the attacker certificate) → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { x5c: [f.attacker.certPem.replace(/-----[^-]+-----|\s/g, '')], kid: undefined }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a kid with a path traversal → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { kid: '../../../../../../dev/null' }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a kid that is an object → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { kid: { $ne: null } }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: an unknown crit header (attacker-signed) → 401',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(attackerToken(f, { crit: ['urn:x:must-understand'], 'urn:x:must-understand': true }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: the IdP token with its payload swapped for a forged one → 401',
    group: 'jose',
    send: f => {
      const [h, , s] = f.tokens.client2.split('.')
      return raw(get('/api/a', [bearer(`${h}.${b64url(JSON.stringify(wishfulClaims(f)))}.${s}`)]))
    },
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a JSON bomb (2000-deep nesting) in the claims, attacker-signed → 401 quickly',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'ES256', typ: 'at+jwt', kid: f.attacker.kid }, payloadText(wishfulClaims(f), `"bomb":${deepArray(2000)}`), { es256: f.attacker.privateKey }))])),
    expect: { ...INVALID_TOKEN, withinMs: 1000 },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a huge array (1500 entries) in the claims, attacker-signed with the IdP kid → 401 quickly',
    group: 'jose',
    send: f => raw(get('/api/a', [bearer(forgeJws({ alg: 'ES256', typ: 'at+jwt', kid: f.idp.kid }, payloadText(wishfulClaims(f), `"aud2":[${'0,'.repeat(1499)}0]`), { es256: f.attacker.privateKey }))])),
    expect: { ...INVALID_TOKEN, withinMs: 1000 },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: a deeply nested protected header, attacker-signed → 401 quickly',
    group: 'jose',
    send: f => {
      const header = `{"alg":"ES256","kid":"${f.attacker.kid}","x":${deepArray(1500)}}`
      const input = `${b64url(header)}.${b64url(JSON.stringify(wishfulClaims(f)))}`
      return raw(get('/api/a', [bearer(`${input}.${cryptoSign('sha256', Buffer.from(input), { key: f.attacker.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`)]))
    },
    expect: { ...INVALID_TOKEN, withinMs: 1000 },
    expectUpstreamHit: false,
  },

  // --- hostile claims signed by a TRUSTED key (/local) ------------------------------------------------------------
  ...([
    ['a string', 'x5t'],
    ['an array', [{ 'x5t#S256': 'thumb' }]],
    ['a number', 42],
    ['null', null],
    ['true', true],
    ['an object whose x5t#S256 is a number', { 'x5t#S256': 1 }],
    ['an object whose x5t#S256 is an array', { 'x5t#S256': ['a'] }],
    ['an object whose x5t#S256 is padded base64url', 'PADDED'],
    ['an object whose x5t#S256 is 2000-deep nesting', 'DEEP'],
  ] as const).map(([name, cnf]): HostileCase => ({
    name: `tls: /local, cnf of the wrong type (${name}), trusted signature → 401 invalid_token`,
    group: 'claims',
    send: async f => {
      const thumb = f.pki.thumbprint(f.pki.client1)
      const value = cnf === 'PADDED' ? { 'x5t#S256': `${thumb}=` } : cnf === 'DEEP' ? { 'x5t#S256': JSON.parse(deepArray(2000)) as unknown } : cnf
      return raw(get('/local/a', [bearer(await localToken(f, { cnf: value }))]))
    },
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  })),
  {
    name: 'tls: /local, a crit header the gateway does not understand, trusted signature → 401 (RFC 7515 §4.1.11)',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await f.local.signRaw({ cnf: { 'x5t#S256': f.pki.thumbprint(f.pki.client1) } }, { crit: ['urn:x:policy'], 'urn:x:policy': 1 }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: /local, exp as a string → 401',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { exp: String(now() + 300) }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: /local, iss as an array → 401',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { iss: [f.local.issuer] }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: /local, aud as a number → 401',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { aud: 1 }))])),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: /local, scope as an object → 403 (no usable scope), no crash',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { scope: { $gt: '' } }))])),
    expect: { status: 403 },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: /local, a 2000-deep JSON bomb in an unused claim, trusted signature → 200, no crash',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { bomb: JSON.parse(deepArray(2000)) as unknown }))])),
    expect: { status: 200, withinMs: 1000, upstream: { 'x-credential-client-id': 'client1' } },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: /local, aud as a 500-entry array containing the audience → 200, no crash',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { aud: [...Array.from({ length: 499 }, (_, i) => `a${i}`), AUDIENCE] }))])),
    expect: { status: 200, withinMs: 1000 },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: /local, CR/LF and NUL in claims that become upstream headers are removed (no header injection)',
    group: 'claims',
    send: async f => raw(get('/local/a', [bearer(await localToken(f, { sub: 'svc\r\nX-Injected: 1', client_id: 'client1\u0000x' }))])),
    expect: { status: 200, upstream: { 'x-injected': null, 'x-credential-sub': 'svcX-Injected: 1', 'x-credential-client-id': 'client1x' } },
    expectUpstreamHit: true,
  },

  // --- TLS ------------------------------------------------------------------------------------------------------
  ...([
    ['TLS 1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }],
    ['TLS 1.1', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }],
    ['TLS 1.2 with only CBC/SHA-1 suites (ECDHE-ECDSA-AES128-SHA)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA' }],
    ['TLS 1.2 with only CBC/SHA-2 suites (ECDHE-ECDSA-AES128-SHA256)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384' }],
    ['TLS 1.2 with only NULL encryption (ECDHE-ECDSA-NULL-SHA)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0' }],
    ['TLS 1.2 with only anonymous key exchange (aNULL)', { maxVersion: 'TLSv1.2', ciphers: 'aNULL:@SECLEVEL=0' }],
  ] as const).map(([name, tls]): HostileCase => ({
    name: `tls: ${name} → handshake refused`,
    group: 'tls',
    send: () => raw(get('/open/a'), { tls }),
    expect: { status: null, closed: true },
    expectUpstreamHit: false,
  })),
  ...([
    ['TLS 1.0', ['--tlsv1.0', '--tls-max', '1.0', '--ciphers', 'DEFAULT@SECLEVEL=0']],
    ['TLS 1.1', ['--tlsv1.1', '--tls-max', '1.1', '--ciphers', 'DEFAULT@SECLEVEL=0']],
    ['TLS 1.2 --ciphers ECDHE-ECDSA-AES256-SHA (CBC/SHA-1)', ['--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-AES256-SHA']],
    ['TLS 1.2 --ciphers RC4-SHA', ['--tls-max', '1.2', '--ciphers', 'RC4-SHA:ECDHE-ECDSA-RC4-SHA']],
  ] as const).map(([name, args]): HostileCase => ({
    name: `curl: ${name} → handshake refused`,
    group: 'tls',
    send: () => ({ kind: 'curl', listener: 'tls', cert: 'client1', path: '/open/a', args }),
    expect: { status: null },
    expectUpstreamHit: false,
  })),
  {
    name: 'curl: TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256 (control) → 200',
    group: 'tls',
    send: () => ({ kind: 'curl', listener: 'tls', cert: 'client1', path: '/open/a', args: ['--tls-max', '1.2', '--ciphers', 'ECDHE-ECDSA-AES128-GCM-SHA256'] }),
    expect: { status: 200 },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: TLS 1.2 renegotiation requested by a client without a certificate → no_renegotiation alert, connection closed',
    group: 'tls',
    send: f => ({ kind: 'renegotiate', request: get('/api/a', [bearer(f.tokens.client1)]) }),
    expect: { status: null, closed: true },
    expectUpstreamHit: false,
  },
  {
    name: 'tls: TLS 1.2 renegotiation requested by client2 → no_renegotiation alert, connection closed (nothing sent on it)',
    group: 'tls',
    send: f => ({ kind: 'renegotiate', cert: 'client2', request: get('/api/a', [bearer(f.tokens.client1)]) }),
    expect: { status: null, closed: true },
    expectUpstreamHit: false,
  },
  ...(['TLSv1.2', 'TLSv1.3'] as const).flatMap((version): HostileCase[] => [
    {
      name: `tls: ${version} resumption of client1's session by a client configured with client2 → identity is client1 (client1 token: 200)`,
      group: 'tls',
      send: f => ({ kind: 'resume', version, first: 'client1', second: 'client2', request: get('/api/resumed', [bearer(f.tokens.client1)]) }),
      expect: { status: 200, upstream: { 'x-ssl-client-s-dn': 'CN=client1,O=Example Org', 'x-client-cert': f => encodeURIComponentLikeNginx(f.pki.client1.certPem) } },
      expectUpstreamHit: true,
    },
    {
      name: `tls: ${version} resumption of client1's session by client2 with client2's token → 401 (the session is client1's)`,
      group: 'tls',
      send: f => ({ kind: 'resume', version, first: 'client1', second: 'client2', request: get('/api/resumed', [bearer(f.tokens.client2)]) }),
      expect: INVALID_TOKEN,
      expectUpstreamHit: false,
    },
    {
      name: `tls: ${version} resumption of a certificate-less session by client1 → still no certificate (401)`,
      group: 'tls',
      send: f => ({ kind: 'resume', version, first: null, second: 'client1', request: get('/api/resumed', [bearer(f.tokens.client1)]) }),
      expect: NO_CERT,
      expectUpstreamHit: false,
    },
  ]),
  {
    name: 'tls: plain HTTP bytes on the TLS listener → no HTTP answer, closed',
    group: 'tls',
    send: () => ({ kind: 'raw', listener: 'tls', noTls: true, chunks: [get('/open/a')] }),
    expect: { status: [null, 400], closed: true },
    expectUpstreamHit: false,
  },

  // --- client certificates (mtls-auth) ---------------------------------------------------------------------------
  ...([
    ['a revoked certificate (crl_files)', 'revokedClient', CERT_INVALID],
    ['an expired certificate', 'expiredClient', CERT_INVALID],
    ['a not-yet-valid certificate', 'notYetValidClient', CERT_INVALID],
    ['a look-alike from another CA (same subject as client1)', 'otherClient', CERT_INVALID],
    ['a self-signed certificate', 'selfSigned', CERT_INVALID],
  ] as const).map(([name, cert, expect]): HostileCase => ({
    name: `tls: ${name} with client1's token → 401 from mtls-auth`,
    group: 'certificates',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1)]), { cert }),
    expect,
    expectUpstreamHit: false,
  })),
  {
    name: 'tls: no client certificate → 401 No required TLS certificate was sent',
    group: 'certificates',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1)]), { cert: null }),
    expect: NO_CERT,
    expectUpstreamHit: false,
  },
  {
    name: 'plain: /api on the plain listener with a valid token → 401 No required TLS certificate was sent',
    group: 'certificates',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1)]), { listener: 'plain' }),
    expect: NO_CERT,
    expectUpstreamHit: false,
  },
  {
    name: 'plain: /api with client1\'s certificate forged in X-Client-Cert from an untrusted peer → 401',
    group: 'certificates',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1), ['X-Client-Cert', encodeURIComponentLikeNginx(f.pki.client1.certPem)]]), { listener: 'plain' }),
    expect: NO_CERT,
    expectUpstreamHit: false,
  },
  {
    name: 'tls: client1\'s token on client2\'s TLS session → 401 (RFC 8705 §3)',
    group: 'certificates',
    send: f => raw(get('/api/a', [bearer(f.tokens.client1)]), { cert: 'client2' }),
    expect: INVALID_TOKEN,
    expectUpstreamHit: false,
  },

  // --- spoofed identity headers on every route -------------------------------------------------------------------
  ...(['tls', 'plain'] as const).map((listener): HostileCase => ({
    name: `${listener}: /open (no plugins), spoofed identity and X-Forwarded-* headers → stripped or the gateway's own`,
    group: 'spoofing',
    send: () => raw(get('/open/spoof', spoofedHeaders()), { listener }),
    expect: { status: 200, upstream: gatewayOwned(listener, false) },
    expectUpstreamHit: true,
  })),
  {
    name: 'tls: /api with a valid token, spoofed identity and X-Forwarded-* headers → the gateway\'s values only',
    group: 'spoofing',
    send: f => raw(get('/api/spoof', [bearer(f.tokens.client1), ...spoofedHeaders()])),
    expect: { status: 200, upstream: gatewayOwned('tls', true) },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: /local with a valid token, spoofed identity headers → the gateway\'s values only',
    group: 'spoofing',
    send: async f => raw(get('/local/spoof', [bearer(await localToken(f)), ...spoofedHeaders()])),
    expect: { status: 200, upstream: { ...gatewayOwned('tls', true), 'x-ssl-client-s-dn': null, 'x-client-cert': null, 'x-consumer-id': null, 'x-client-subject': null } },
    expectUpstreamHit: true,
  },
  {
    name: 'plain: from a trusted proxy (gateway.trusted_ips), the client\'s X-Forwarded-For is kept with the real peer appended last',
    group: 'spoofing',
    send: () => raw(get('/open/xff', [['X-Forwarded-For', '203.0.113.7'], ['X-Forwarded-For', '198.51.100.1'], ['X-Forwarded-Proto', SPOOF]]), { listener: 'plain', from: TRUSTED_PEER }),
    expect: { status: 200, upstream: { 'x-forwarded-for': `203.0.113.7, 198.51.100.1, ${TRUSTED_PEER}`, 'x-forwarded-proto': 'http', 'x-real-ip': TRUSTED_PEER } },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: from a trusted proxy, identity headers are still stripped (trusted_ips only vouches for X-Forwarded-For)',
    group: 'spoofing',
    send: () => raw(get('/open/xff', [['X-Forwarded-For', '203.0.113.7'], ...spoofedHeaders().filter(([k]) => k !== 'X-Forwarded-For')]), { from: TRUSTED_PEER }),
    expect: { status: 200, upstream: gatewayOwned('tls', false, `203.0.113.7, ${TRUSTED_PEER}`) },
    expectUpstreamHit: true,
  },
  {
    name: 'plain: from an untrusted peer, the client\'s X-Forwarded-For is replaced by the peer',
    group: 'spoofing',
    send: () => raw(get('/open/xff', [['X-Forwarded-For', '203.0.113.7'], ['x_forwarded_for', '203.0.113.8']]), { listener: 'plain' }),
    expect: { status: 200, upstream: { 'x-forwarded-for': '127.0.0.1', x_forwarded_for: null } },
    expectUpstreamHit: true,
  },
  {
    name: 'tls: hop-by-hop trick: Connection lists X-Forwarded-For and X-Credential-Sub (they stay the gateway\'s)',
    group: 'spoofing',
    send: f => raw(get('/api/hop', [bearer(f.tokens.client1), ['Connection', 'close, X-Forwarded-For, X-Credential-Client-Id, X-Consumer-Id']])),
    expect: { status: 200, upstream: { 'x-forwarded-for': '127.0.0.1', 'x-credential-client-id': 'client1', 'x-consumer-id': 'client1' } },
    expectUpstreamHit: true,
  },
]

/** The certificate files of a named client. */
export function clientCert (pki: TestPki, name: ClientCertName): TestCert {
  return pki[name]
}
