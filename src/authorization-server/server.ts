import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { X509Certificate } from 'node:crypto'
import type { ExtensionDeps, ExtensionInstance, InternalRoute } from '../extensions/types.js'
import type { PeerCertificate, TlsIdentity } from '../server/peer.js'
import { localIntrospectionKey, localIssuerKey, type LocalIssuer } from '../pipeline/local-issuer.js'
import { ServiceMap } from '../pipeline/services.js'
import { PluginConfigError } from '../pipeline/types.js'
import { formatPath, type PathKey } from '../config/diagnostic.js'
import { certificateValidity, createTrustStore, verifyChain } from '../auth/verify-chain.js'
import { AccessTokens } from './access-tokens.js'
import { ClientAuthenticator, type ChainVerifier } from './client-auth.js'
import { ClientActivity } from './client-activity.js'
import { SecretCheckLimiter } from './secret-check-limiter.js'
import { compileClients, readCertificates, type ConfigProblem } from './clients.js'
import { serveDocument, serveForm } from './endpoint.js'
import { introspectionEndpoint, revocationEndpoint } from './introspection-endpoint.js'
import { buildMetadata, type EndpointUrls } from './metadata.js'
import { RevocationStore } from './revocation-store.js'
import { DEFAULTS, type AuthorizationServerConfig } from './schema.js'
import { ephemeralKeys, KeyConfigError, loadPemKeys, openKeyStore, type KeySet, type SigningAlg } from './signing-keys.js'
import { sharedKeys } from './store-keys.js'
import { isInProcessStore } from '../store/memory.js'
import { tokenEndpoint } from './token-endpoint.js'
import { createTokenEndpointDpop } from './dpop.js'
import { clientRevocationCheck } from './client-revocation.js'
import { createHttpClient } from '../http-client/index.js'

const SECTION = 'authorization_server'

/**
 * The internal routes' names (GatewayExtension.routeNames): top-level plugins attach to an endpoint with
 * `route: authorization_server.token`; the access log and metrics report them under these names.
 */
export const ROUTE_NAMES = Object.freeze({
  token: `${SECTION}.token`,
  introspection: `${SECTION}.introspection`,
  revocation: `${SECTION}.revocation`,
  jwks: `${SECTION}.jwks`,
  metadata: `${SECTION}.metadata`,
})

/**
 * Problems found while creating the server (unreadable files, bad keys), each with its path inside the
 * section (`clients[2].certificate`), as the core expects of PluginConfigError (it prefixes the section).
 * `path`/`code` are the first problem's; the message carries every problem, so none is lost by a caller that
 * reports one diagnostic; `problems` lets a caller report each at its own position.
 */
export class AuthorizationServerConfigError extends PluginConfigError {
  constructor (readonly problems: readonly ConfigProblem[]) {
    super(problems[0].path, problems[0].message + problems.slice(1).map(p => `\n    also ${SECTION}.${formatPath(p.path)}: ${p.message}`).join(''), problems[0].code)
    this.name = 'AuthorizationServerConfigError'
  }
}

/** The running server, as tests and the CLI see it (the gateway sees an ExtensionInstance). */
export interface AuthorizationServer extends ExtensionInstance {
  readonly issuer: LocalIssuer
  readonly routes: readonly InternalRoute[]
  readonly urls: EndpointUrls
  readonly keys: KeySet
  readonly services: ServiceMap
  close(): Promise<void>
}

/** Load → compile → freeze: everything a request needs is decided here (STYLE.md rule 1). */
export async function createAuthorizationServer (config: AuthorizationServerConfig, deps: Pick<ExtensionDeps, 'resolvePath' | 'logger' | 'store' | 'now'> & Partial<Pick<ExtensionDeps, 'http' | 'stash' | 'revocationMetrics' | 'dryRun' | 'listeners'>>): Promise<AuthorizationServer> {
  const log = deps.logger // the core's child logger for this section
  const problems: ConfigProblem[] = []
  // paths inside the section: the core prefixes `authorization_server` (PluginConfigError contract)
  const fileList = (v: string | string[] | undefined, key: string): Array<{ f: string, path: PathKey[] }> =>
    v === undefined ? [] : (Array.isArray(v) ? v.map((f, i) => ({ f, path: [key, i] })) : [{ f: v, path: [key] }])

  // Endpoint URLs: issuer origin + path. Defaults sit under the issuer's own path (RFC 8414 §2 allows one).
  const issuerUrl = new URL(config.issuer)
  const issuerPath = issuerUrl.pathname.replace(/\/+$/, '')
  const paths = {
    token: config.endpoints.token ?? issuerPath + DEFAULTS.tokenPath,
    introspection: config.endpoints.introspection ?? issuerPath + DEFAULTS.introspectionPath,
    revocation: config.endpoints.revocation ?? issuerPath + DEFAULTS.revocationPath,
    jwks: config.endpoints.jwks ?? issuerPath + DEFAULTS.jwksPath,
  }
  const urls: EndpointUrls = Object.freeze({
    token: issuerUrl.origin + paths.token,
    introspection: issuerUrl.origin + paths.introspection,
    revocation: issuerUrl.origin + paths.revocation,
    jwks: issuerUrl.origin + paths.jwks,
  })

  // tls_client_auth trust anchors (RFC 8705 §2.1), independent of the listener's client_ca
  const anchors: X509Certificate[] = []
  for (const { f, path } of fileList(config.ca_certificates, 'ca_certificates')) {
    const certs = readCertificates(deps.resolvePath(f), f, path, problems)
    for (const c of certs) if (!c.ca) problems.push({ path, code: 'CB_CFG_PEM', message: `${f}: "${c.subject.replace(/\n/g, ', ')}" is not a CA certificate` })
    anchors.push(...certs)
  }
  const store = createTrustStore(anchors)
  const byListener = config.ca_certificates === undefined
  const verify: ChainVerifier = byListener ? verifyByListener : function verifyClientChain (cert) {
    const r = verifyChain(cert.x509, cert.chain, store, { allowPartialChain: config.allow_partial_chain, purpose: 'client_auth' })
    return r.ok ? { ok: true, chain: r.chain } : { ok: false, reason: `${r.reason}: ${r.detail}` }
  }
  const pkiClient = config.clients.findIndex(c => c.token_endpoint_auth_method === 'tls_client_auth')
  if (byListener && pkiClient >= 0) {
    const trusted = (deps.listeners ?? []).filter(l => l.clientCa).map(l => l.address)
    if (trusted.length === 0) {
      problems.push({ path: ['clients', pkiClient, 'token_endpoint_auth_method'], code: 'CB_CFG_INVALID', message: 'tls_client_auth needs ca_certificates, or a TLS listener with client_ca to trust: the CAs client certificates must chain to (RFC 8705 §2.1)' })
    } else {
      log.info({ listeners: trusted }, 'tls_client_auth: no ca_certificates, so a client certificate must have verified against the client_ca of the listener the request came in on')
    }
  }

  const defaultAudience = config.audience ?? config.issuer
  const clients = compileClients(config.clients, {
    resolvePath: deps.resolvePath,
    defaultTtl: config.access_token_ttl,
    defaultResources: config.resources ?? [defaultAudience],
    problems,
    warn: (msg, fields) => log.warn(fields ?? {}, msg),
  })

  let stateDir: string | undefined
  if (config.state_dir !== undefined) {
    stateDir = deps.resolvePath(config.state_dir)
    // `certbound validate` writes nothing: the directory and the key store are created by start only
    if (deps.dryRun !== true) try { mkdirSync(stateDir, { recursive: true, mode: 0o700 }) } catch (e) {
      problems.push({ path: ['state_dir'], code: 'CB_CFG_FILE', message: `cannot create ${config.state_dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` })
    }
  }

  let keys: KeySet | undefined
  const alg: SigningAlg = config.signing_alg ?? DEFAULTS.signingAlg
  try {
    if (config.signing_keys !== undefined) {
      const files = fileList(config.signing_keys, 'signing_keys')
      keys = await loadPemKeys(files.map(x => ({ file: deps.resolvePath(x.f), where: x.path })), config.signing_alg)
    } else {
      // with a shared store (redis) a state_dir file would give each node its own key: the store keeps them instead
      const sharedBackend = deps.store.backend !== 'memory'
      const storeFile = config.key_store !== undefined ? deps.resolvePath(config.key_store) : (stateDir !== undefined && !sharedBackend ? join(stateDir, DEFAULTS.keyStoreFile) : undefined)
      if (storeFile !== undefined && sharedBackend) log.warn({ file: storeFile }, `key_store with gateway.store backend ${deps.store.backend}: every node must have a copy of this file, or tokens issued by one are refused by the others`)
      if (storeFile === undefined) {
        if (!sharedBackend) log.warn('no key_store or state_dir: signing keys are generated once and shared by every worker, but a restart invalidates issued tokens')
        keys = await sharedKeys(deps.store, config.issuer, alg, deps.now)
      } else if (problems.every(p => p.path[0] !== 'state_dir')) {
        keys = deps.dryRun === true && !existsSync(storeFile) ? await ephemeralKeys(alg) : await openKeyStore(storeFile, alg, (mode) => log.warn({ file: storeFile, mode: mode.toString(8) }, 'the key store is readable by group or others: chmod 600 it'))
      }
    }
  } catch (e) {
    if (e instanceof KeyConfigError) problems.push({ path: [...e.path], code: e.code, message: e.message })
    else problems.push({ path: [config.key_store !== undefined ? 'key_store' : 'state_dir'], code: 'CB_CFG_FILE', message: (e as Error).message })
  }

  let revocations: RevocationStore | undefined
  const revocationFile = config.revocation_store !== undefined ? deps.resolvePath(config.revocation_store) : (stateDir !== undefined ? join(stateDir, DEFAULTS.revocationFile) : undefined)
  if (revocationFile === undefined && deps.store.backend === 'memory') log.warn('no revocation_store or state_dir: revocations are lost on restart')
  try {
    revocations = await RevocationStore.open(deps.store, deps.now, revocationFile)
  } catch (e) {
    problems.push({ path: [config.revocation_store !== undefined ? 'revocation_store' : 'state_dir'], code: 'CB_CFG_FILE', message: (e as Error).message })
  }

  if (problems.length > 0 || keys === undefined || revocations === undefined) {
    throw new AuthorizationServerConfigError(problems.length > 0 ? problems : [{ path: [], code: 'CB_CFG_INVALID', message: 'the authorization server could not be created' }])
  }

  const tokens = new AccessTokens(config.issuer, keys, revocations, deps.now)
  // without the core's client (the AS alone, in tests) a private one, closed with the server
  const ownHttp = config.revocation_check_mode !== 'SKIP' && deps.http === undefined ? createHttpClient() : undefined
  const revocation = clientRevocationCheck({
    mode: config.revocation_check_mode,
    httpTimeoutMs: config.revocation_http_timeout,
    cacheTtlMs: config.revocation_cache_ttl,
    http: deps.http ?? ownHttp!,
    now: deps.now,
    stash: deps.stash,
    store: deps.store,
    metrics: deps.revocationMetrics,
    logger: log,
  })
  const secretChecks = config.client_secret_checks
  const auth = new ClientAuthenticator(clients, verify, new SecretCheckLimiter({
    concurrency: secretChecks.concurrency, queue: secretChecks.queue, perClient: secretChecks.per_client, retryAfterSeconds: secretChecks.retry_after, failuresPerMinute: secretChecks.failures_per_minute,
  }, deps.now, deps.store !== undefined && !isInProcessStore(deps.store) ? deps.store : undefined), revocation)
  const allScopes = [...clients.values()].flatMap(c => c.scopes)
  const dpop = createTokenEndpointDpop(config, deps, urls.token)
  const metadata = buildMetadata(config.issuer, urls, allScopes, dpop.algorithms)
  const metadataJson = JSON.stringify(metadata)
  const jwksJson = JSON.stringify(keys.jwks)

  const revocationSet = revocations
  const localIssuer: LocalIssuer = Object.freeze({
    issuer: config.issuer,
    isRevoked: (jti: string) => revocationSet.isRevoked(jti),
    metadata: () => metadata,
    jwks: () => structuredClone(keys.jwks),
    introspect: (token: string) => tokens.introspect(token),
  })

  const max = config.max_body_size
  const activity = ClientActivity.shared(deps.stash, clients.keys())
  const token = tokenEndpoint({ auth, tokens, defaultAudience, dpop, activity })
  const introspect = introspectionEndpoint({ auth, tokens })
  const revoke = revocationEndpoint({ auth, tokens, revocations, activity })
  const routes: InternalRoute[] = [
    { name: ROUTE_NAMES.token, paths: [paths.token], handle: function tokenRoute (ctx) { return serveForm(ctx, 'token', max, token) } },
    { name: ROUTE_NAMES.introspection, paths: [paths.introspection], handle: function introspectionRoute (ctx) { return serveForm(ctx, 'introspection', max, introspect) } },
    { name: ROUTE_NAMES.revocation, paths: [paths.revocation], handle: function revocationRoute (ctx) { return serveForm(ctx, 'revocation', max, revoke) } },
    { name: ROUTE_NAMES.jwks, paths: [paths.jwks], handle: function jwksRoute (ctx) { return serveDocument(ctx, jwksJson) } },
    {
      name: ROUTE_NAMES.metadata,
      paths: [`/.well-known/oauth-authorization-server${issuerPath}`, `${issuerPath}/.well-known/openid-configuration`],
      handle: function metadataRoute (ctx) { return serveDocument(ctx, metadataJson) },
    },
  ]

  log.info({
    issuer: config.issuer,
    clients: clients.size,
    kids: keys.keys.map(k => k.kid),
    signing_kid: keys.signing.kid,
    store: deps.store.backend,
    paths: routes.flatMap(r => r.paths),
  }, 'authorization server ready')

  const revocationStore = revocations
  return {
    issuer: localIssuer,
    urls,
    keys,
    routes: Object.freeze(routes.map(r => Object.freeze(r))),
    services: new ServiceMap()
      .set(localIssuerKey(config.issuer), localIssuer)
      .set(localIntrospectionKey(urls.introspection), localIssuer),
    dashboardClients: () => activity.rows(clients.values()),
    close: async function closeAuthorizationServer () {
      await revocationStore.close()
      await ownHttp?.close()
    },
  }
}

/**
 * tls_client_auth without ca_certificates (RFC 8705 §2.1 leaves the trust anchors to the server): the listener's
 * client_ca, as Keycloak and WSO2 use their HTTPS truststore. OpenSSL verified the chain in the handshake
 * (`verified`, which also demands a certificate); the dates are checked again for long-lived connections.
 */
function verifyByListener (cert: PeerCertificate, tls: TlsIdentity): { ok: true } | { ok: false, reason: string } {
  if (!tls.verified) return { ok: false, reason: `untrusted: the certificate did not verify against the listener's client_ca${tls.verifyError === null ? '' : ` (${tls.verifyError})`} and there are no ca_certificates` }
  const [from, to] = certificateValidity(cert.x509)
  const now = Date.now()
  if (now < from) return { ok: false, reason: `not_yet_valid: not valid before ${cert.x509.validFrom}` }
  if (now > to) return { ok: false, reason: `expired: expired ${cert.x509.validTo}` }
  return { ok: true }
}
