/**
 * A real third-party authorization server for the test suite: node-oidc-provider, in-process, over HTTPS with
 * mutual TLS, issuing RFC 8705 certificate-bound access tokens with the client-credentials grant.
 *
 * JWT access tokens follow RFC 9068 (`typ: at+jwt`, ES256); opaque ones are introspectable (RFC 7662) and carry
 * `cnf` in the introspection response. State (signing keys, tokens, revocations) lives outside the Provider so
 * it survives {@link Idp.stop}/{@link Idp.start} and {@link Idp.rotateKeys}.
 */
import { randomBytes, X509Certificate } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'

import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose'
import { Agent, request } from 'undici'

/** A client statically registered at the IdP (RFC 7591 metadata names). */
export interface IdpClient {
  client_id: string
  token_endpoint_auth_method: 'tls_client_auth' | 'self_signed_tls_client_auth' | 'client_secret_basic' | 'client_secret_post'
  client_secret?: string
  /** RFC 8705 §2.1.2, RFC 4514 form, most specific RDN first: `CN=client1,O=Example Org`. */
  tls_client_auth_subject_dn?: string
  /** For self_signed_tls_client_auth (RFC 8705 §2.2): the registered certificate, published as `x5c` in the client's jwks. */
  certificatePem?: string
  /** Scopes the client may request, space-separated. */
  scope?: string
  /** RFC 8705 §3.4; defaults to true for the two TLS methods, false otherwise. */
  tls_client_certificate_bound_access_tokens?: boolean
}

export interface IdpOptions {
  /** HTTPS server identity, issued for localhost / 127.0.0.1. */
  serverCertPem: string
  serverKeyPem: string
  /** The CA that tls_client_auth client certificates chain to. */
  clientCaPem: string
  clients: IdpClient[]
  /** Default access token format; `jwt` (RFC 9068, ES256) unless told otherwise. */
  accessTokenFormat?: 'jwt' | 'opaque'
  /** The default resource indicator (RFC 8707), used as `aud`; `https://api.example.test` unless told otherwise. */
  audience?: string
  /** Access token lifetime in seconds; 300 unless told otherwise. */
  accessTokenTtl?: number
  /** 0 (ephemeral) unless told otherwise; always bound to 127.0.0.1. */
  port?: number
}

export interface TokenRequest {
  clientId: string
  /** Client certificate and key presented in the TLS handshake (RFC 8705 §2). */
  certPem?: string
  keyPem?: string
  /** Sent as client_secret_basic, or in the body when the client is registered as client_secret_post. */
  secret?: string
  scope?: string
  /** Overrides {@link IdpOptions.accessTokenFormat} for this token only. */
  format?: 'jwt' | 'opaque'
  /** RFC 8707 resource indicator; becomes the token's `aud`. Defaults to {@link IdpOptions.audience}. */
  resource?: string
  /** RFC 9449 §5: a DPoP proof for the token endpoint (htm POST, htu {@link Idp.tokenEndpoint}); the token gets cnf.jkt. */
  dpop?: string
}

export interface TokenResponse {
  access_token: string
  token_type: string
  expires_in: number
  scope?: string
}

export interface Idp {
  /** `https://127.0.0.1:PORT`; unchanged across stop()/start() and rotateKeys(). */
  readonly issuer: string
  readonly port: number
  readonly tokenEndpoint: string
  readonly introspectionEndpoint: string
  readonly revocationEndpoint: string
  readonly jwksUri: string
  readonly discoveryEndpoint: string
  /** `kid` of the key that signs new JWT access tokens. */
  readonly currentKid: string
  /** Client-credentials grant; rejects with {@link IdpTokenError} on an OAuth error response. */
  token(opts: TokenRequest): Promise<TokenResponse>
  /** RFC 7009 revocation, authenticating with client_secret_basic. */
  revoke(token: string, client: { clientId: string; secret: string }): Promise<void>
  /** A new ES256 key signs from now on (new kid). The old keys stay in the JWKS unless `dropOld`. */
  rotateKeys(opts?: { dropOld?: boolean }): Promise<void>
  /** Close the listener and every open connection (the IdP is down); state is kept. */
  stop(): Promise<void>
  /** Listen again on the same port; the issuer does not change. */
  start(): Promise<void>
  /** Every request received, in order, across restarts; truncate it (`length = 0`) between assertions. */
  readonly requests: Array<{ method: string; path: string }>
  /** Stop for good. */
  close(): Promise<void>
}

/** An OAuth 2.0 error response (RFC 6749 §5.2) from the IdP. */
export class IdpTokenError extends Error {
  override readonly name = 'IdpTokenError'
  constructor(
    readonly status: number,
    readonly error: string,
    readonly errorDescription: string | undefined,
  ) {
    super(`IdP answered ${status} ${error}${errorDescription ? `: ${errorDescription}` : ''}`)
  }
}

const DEFAULT_AUDIENCE = 'https://api.example.test'
const DEFAULT_TTL_SECONDS = 300
const INTROSPECTION_CLIENT: IdpClient = {
  client_id: 'introspection-client',
  client_secret: 'introspection-secret',
  token_endpoint_auth_method: 'client_secret_basic',
}
/** Test-only request header selecting the access token format per token request. */
const FORMAT_HEADER = 'x-test-access-token-format'

/*
 * oidc-provider ships no type declarations (and @types/oidc-provider is not installed), so the narrow surface we
 * use is typed here and the module is loaded through a non-literal specifier, which TypeScript leaves untyped.
 */
interface OidcProvider {
  proxy: boolean
  callback(): (req: IncomingMessage, res: ServerResponse) => void
}
type OidcProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider
/** The parts of oidc-provider's Koa context our configuration callbacks read. */
interface ProviderContext {
  req: IncomingMessage & { socket: TLSSocket }
}
interface ProviderClient {
  scope?: string
}

let providerConstructor: Promise<OidcProviderConstructor> | undefined

function loadProvider(): Promise<OidcProviderConstructor> {
  providerConstructor ??= (async function importOidcProvider() {
    const specifier: string = 'oidc-provider'
    const warn = console.warn
    // oidc-provider 9 warns at import time on any runtime older than Node 22 LTS; the project targets Node 20,
    // and this suite is what proves the features we use work there. Drop only that notice.
    console.warn = function filterRuntimeNotice(...args: unknown[]) {
      if (typeof args[0] === 'string' && args[0].includes('Unsupported runtime')) return
      warn.apply(console, args)
    }
    try {
      const mod = (await import(specifier)) as { default: OidcProviderConstructor }
      return mod.default
    } finally {
      console.warn = warn
    }
  })()
  return providerConstructor
}

interface StoredEntry {
  payload: Record<string, unknown>
  expiresAt: number
}

/**
 * oidc-provider storage adapter over a Map we own, so tokens and revocations outlive any one Provider
 * (stop/start, key rotation).
 */
class MapAdapter {
  constructor(
    private readonly model: string,
    private readonly store: Map<string, StoredEntry>,
  ) {}

  private key(id: string): string {
    return `${this.model}:${id}`
  }

  private live(id: string): StoredEntry | undefined {
    const key = this.key(id)
    const entry = this.store.get(key)
    if (entry && entry.expiresAt <= Date.now()) {
      this.store.delete(key)
      return undefined
    }
    return entry
  }

  async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY
    this.store.set(this.key(id), { payload: structuredClone(payload), expiresAt })
  }

  async find(id: string): Promise<Record<string, unknown> | undefined> {
    const entry = this.live(id)
    return entry ? structuredClone(entry.payload) : undefined
  }

  async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
    return this.findBy('uid', uid)
  }

  async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
    return this.findBy('userCode', userCode)
  }

  async consume(id: string): Promise<void> {
    const entry = this.live(id)
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000)
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.key(id))
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [key, entry] of this.store) {
      if (entry.payload.grantId === grantId) this.store.delete(key)
    }
  }

  private findBy(field: string, value: string): Record<string, unknown> | undefined {
    const prefix = `${this.model}:`
    for (const [key, entry] of this.store) {
      if (key.startsWith(prefix) && entry.payload[field] === value && entry.expiresAt > Date.now()) {
        return structuredClone(entry.payload)
      }
    }
    return undefined
  }
}

/** Split an RFC 4514 DN into RDNs of `type=value` AVAs, honouring backslash escapes; types lower-cased. */
function parseDn(dn: string): string[][] {
  const rdns: string[][] = []
  let avas: string[] = []
  let type = ''
  let value = ''
  let inValue = false
  const flushAva = function flushAva(): void {
    avas.push(`${type.trim().toLowerCase()}=${value.trim()}`)
    type = ''
    value = ''
    inValue = false
  }
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]
    if (ch === '\\' && i + 1 < dn.length) {
      const hex = dn.slice(i + 1, i + 3)
      let unescaped: string
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        unescaped = String.fromCharCode(parseInt(hex, 16))
        i += 2
      } else {
        unescaped = dn[i + 1]
        i += 1
      }
      if (inValue) value += unescaped
      else type += unescaped
    } else if (ch === '=' && !inValue) {
      inValue = true
    } else if (ch === '+' || ch === ',') {
      flushAva()
      if (ch === ',') {
        rdns.push(avas.sort())
        avas = []
      }
    } else if (inValue) {
      value += ch
    } else {
      type += ch
    }
  }
  if (type || value) flushAva()
  if (avas.length) rdns.push(avas.sort())
  return rdns
}

/**
 * Node prints a subject one RDN per line in certificate (ASN.1) order, values escaped per RFC 2253; RFC 4514
 * strings list the RDNs in reverse, most specific first.
 */
function subjectToRfc4514(subject: string): string {
  return subject.split('\n').filter(Boolean).reverse().join(',')
}

function sameDn(a: string, b: string): boolean {
  return JSON.stringify(parseDn(a)) === JSON.stringify(parseDn(b))
}

function peerCertificate(ctx: ProviderContext): X509Certificate | undefined {
  const socket = ctx.req.socket
  return typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined
}

interface SigningKey {
  kid: string
  jwk: JWK
}

async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = await exportJWK(privateKey)
  // RFC 7638 thumbprint as kid: stable, unique per key, and what most IdPs publish.
  const kid = await calculateJwkThumbprint(jwk)
  return { kid, jwk: { ...jwk, kid, alg: 'ES256', use: 'sig' } }
}

function clientMetadata(client: IdpClient): Record<string, unknown> {
  const tls = client.token_endpoint_auth_method === 'tls_client_auth'
    || client.token_endpoint_auth_method === 'self_signed_tls_client_auth'
  const metadata: Record<string, unknown> = {
    client_id: client.client_id,
    token_endpoint_auth_method: client.token_endpoint_auth_method,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    tls_client_certificate_bound_access_tokens: client.tls_client_certificate_bound_access_tokens ?? tls,
  }
  if (client.client_secret !== undefined) metadata.client_secret = client.client_secret
  if (client.scope !== undefined) metadata.scope = client.scope
  if (client.tls_client_auth_subject_dn !== undefined) {
    metadata.tls_client_auth_subject_dn = client.tls_client_auth_subject_dn
  }
  if (client.certificatePem !== undefined) {
    const cert = new X509Certificate(client.certificatePem)
    const jwk = cert.publicKey.export({ format: 'jwk' })
    metadata.jwks = { keys: [{ ...jwk, x5c: [cert.raw.toString('base64')] }] }
  }
  return metadata
}

function basicAuthorization(clientId: string, secret: string): string {
  // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
  const encode = (value: string): string => encodeURIComponent(value).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`
}

/** Start node-oidc-provider over HTTPS with mTLS on 127.0.0.1. */
export async function startIdp(opts: IdpOptions): Promise<Idp> {
  const Provider = await loadProvider()
  const audience = opts.audience ?? DEFAULT_AUDIENCE
  const ttl = opts.accessTokenTtl ?? DEFAULT_TTL_SECONDS
  const defaultFormat = opts.accessTokenFormat ?? 'jwt'

  const registry = new Map<string, IdpClient>([[INTROSPECTION_CLIENT.client_id, INTROSPECTION_CLIENT]])
  for (const client of opts.clients) registry.set(client.client_id, client)
  const clients = [...registry.values()].map(clientMetadata)
  const scopes = new Set<string>()
  for (const client of registry.values()) {
    for (const scope of client.scope?.split(' ') ?? []) if (scope) scopes.add(scope)
  }

  const store = new Map<string, StoredEntry>()
  const cookieKeys = [randomBytes(32).toString('base64url')]
  let keys: SigningKey[] = [await generateSigningKey()]
  const requests: Array<{ method: string; path: string }> = []

  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined

  const server: Server = createServer(
    {
      key: opts.serverKeyPem,
      cert: opts.serverCertPem,
      ca: opts.clientCaPem,
      requestCert: true,
      // Self-signed client certificates must complete the handshake; oidc-provider decides per auth method.
      rejectUnauthorized: false,
    },
    function handleIdpRequest(req, res) {
      requests.push({ method: req.method ?? '', path: new URL(req.url ?? '/', 'https://idp.invalid').pathname })
      if (!handle) {
        res.statusCode = 503
        res.end()
        return
      }
      handle(req, res)
    },
  )

  function listen(port: number): Promise<number> {
    return new Promise(function listenOnLoopback(resolve, reject) {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', function onListening() {
        server.off('error', reject)
        resolve((server.address() as AddressInfo).port)
      })
    })
  }

  const port = await listen(opts.port ?? 0)
  const issuer = `https://127.0.0.1:${port}`

  function buildProvider(): void {
    // Captured per Provider: a request still running on the previous one must sign with a key that one holds.
    const signingKid = keys[0].kid
    const next = new Provider(issuer, {
      adapter: function mapAdapterFactory(model: string) {
        return new MapAdapter(model, store)
      },
      clients,
      jwks: { keys: keys.map((key) => structuredClone(key.jwk)) },
      scopes: [...scopes],
      // The mTLS methods are not in the default list even with features.mTLS on; static clients using them
      // would otherwise fail validation lazily, on their first request, with invalid_client_metadata.
      clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'tls_client_auth', 'self_signed_tls_client_auth'],
      clientDefaults: {
        grant_types: ['client_credentials'],
        response_types: [],
        id_token_signed_response_alg: 'ES256',
        token_endpoint_auth_method: 'client_secret_basic',
      },
      cookies: { keys: cookieKeys },
      // RFC 9449 proofs: oidc-provider's default is ES256 and EdDSA; the gateway also accepts RSA ones
      enabledJWA: { dPoPSigningAlgValues: ['ES256', 'PS256', 'RS256', 'EdDSA', 'Ed25519'] },
      ttl: { AccessToken: ttl, ClientCredentials: ttl },
      clientBasedCORS: function noCors() {
        return false
      },
      findAccount: async function noAccounts() {
        return undefined
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: {
          enabled: true,
          allowedPolicy: async function anyClientMayIntrospect() {
            return true
          },
        },
        revocation: {
          enabled: true,
          allowedPolicy: async function anyClientMayRevoke() {
            return true
          },
        },
        resourceIndicators: {
          enabled: true,
          // RFC 8707: requests without `resource` still target the default audience, so they get its format.
          defaultResource: async function defaultAudience() {
            return audience
          },
          useGrantedResource: async function useGranted() {
            return true
          },
          getResourceServerInfo: async function resourceServerInfo(
            ctx: ProviderContext,
            resource: string,
            client: ProviderClient,
          ) {
            const requested = ctx.req.headers[FORMAT_HEADER]
            const format = requested === 'jwt' || requested === 'opaque' ? requested : defaultFormat
            return {
              scope: client.scope ?? '',
              audience: resource,
              accessTokenTTL: ttl,
              accessTokenFormat: format,
              // RFC 9068 §2.1: oidc-provider sets typ at+jwt; the kid pins the current key after a rotation.
              ...(format === 'jwt' ? { jwt: { sign: { alg: 'ES256', kid: signingKid } } } : {}),
            }
          },
        },
        mTLS: {
          enabled: true,
          certificateBoundAccessTokens: true,
          tlsClientAuth: true,
          selfSignedTlsClientAuth: true,
          getCertificate: peerCertificate,
          certificateAuthorized: function certificateAuthorized(ctx: ProviderContext) {
            return ctx.req.socket.authorized === true
          },
          certificateSubjectMatches: function certificateSubjectMatches(
            ctx: ProviderContext,
            property: string,
            expected: string,
          ) {
            const cert = peerCertificate(ctx)
            if (!cert || property !== 'tls_client_auth_subject_dn') return false
            return sameDn(subjectToRfc4514(cert.subject), expected)
          },
        },
      },
    })
    next.proxy = false
    // Swapping the handler is atomic per request: in-flight requests finish on the provider that accepted them.
    handle = next.callback()
  }

  buildProvider()

  let listening = true
  let closed = false

  async function postForm(
    url: string,
    form: URLSearchParams,
    headers: Record<string, string>,
    tls: { certPem?: string; keyPem?: string },
  ): Promise<{ status: number; body: string }> {
    const agent = new Agent({
      connect: {
        // Trust the client CA (usually also the server's) and the server certificate itself, as a pin.
        ca: [opts.clientCaPem, opts.serverCertPem],
        allowPartialTrustChain: true,
        ...(tls.certPem !== undefined ? { cert: tls.certPem } : {}),
        ...(tls.keyPem !== undefined ? { key: tls.keyPem } : {}),
      },
    })
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
        body: form.toString(),
      })
      return { status: res.statusCode, body: await res.body.text() }
    } finally {
      await agent.close()
    }
  }

  function oauthError(status: number, body: string): IdpTokenError {
    try {
      const parsed = JSON.parse(body) as { error?: string; error_description?: string }
      return new IdpTokenError(status, parsed.error ?? 'unknown_error', parsed.error_description)
    } catch {
      return new IdpTokenError(status, 'unknown_error', body.slice(0, 200))
    }
  }

  const tokenEndpoint = `${issuer}/token`
  const revocationEndpoint = `${issuer}/token/revocation`

  const idp: Idp = {
    issuer,
    port,
    tokenEndpoint,
    introspectionEndpoint: `${issuer}/token/introspection`,
    revocationEndpoint,
    jwksUri: `${issuer}/jwks`,
    discoveryEndpoint: `${issuer}/.well-known/openid-configuration`,
    get currentKid() {
      return keys[0].kid
    },
    requests,

    async token(req) {
      const form = new URLSearchParams({ grant_type: 'client_credentials' })
      const headers: Record<string, string> = {}
      const method = registry.get(req.clientId)?.token_endpoint_auth_method
      if (req.secret !== undefined && method !== 'client_secret_post') {
        headers.authorization = basicAuthorization(req.clientId, req.secret)
      } else {
        form.set('client_id', req.clientId)
        if (req.secret !== undefined) form.set('client_secret', req.secret)
      }
      if (req.scope !== undefined) form.set('scope', req.scope)
      if (req.resource !== undefined) form.set('resource', req.resource)
      if (req.format !== undefined) headers[FORMAT_HEADER] = req.format
      if (req.dpop !== undefined) headers.dpop = req.dpop
      const { status, body } = await postForm(tokenEndpoint, form, headers, req)
      if (status !== 200) throw oauthError(status, body)
      return JSON.parse(body) as TokenResponse
    },

    async revoke(token, client) {
      const form = new URLSearchParams({ token })
      const headers = { authorization: basicAuthorization(client.clientId, client.secret) }
      const { status, body } = await postForm(revocationEndpoint, form, headers, {})
      if (status !== 200) throw oauthError(status, body)
    },

    async rotateKeys(rotation = {}) {
      const fresh = await generateSigningKey()
      keys = rotation.dropOld ? [fresh] : [fresh, ...keys]
      buildProvider()
    },

    async stop() {
      if (!listening) return
      listening = false
      await new Promise<void>(function closeServer(resolve, reject) {
        server.close((err) => (err ? reject(err) : resolve()))
        // Keep-alive sockets would hold close() open and keep answering: the IdP is down, so drop them.
        server.closeAllConnections()
      })
    },

    async start() {
      if (closed) throw new TypeError('the IdP was closed; start a new one')
      if (listening) return
      await listen(port)
      listening = true
    },

    async close() {
      closed = true
      await idp.stop()
      handle = undefined
    },
  }
  return idp
}
