import { createHash, type X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import {
  definePlugin, PluginConfigError, GatewayError, sanitize, nginxEscapeUriComponent, CrlLoadError, CrlStore,
  certificateFingerprint, certificateValidity, createTrustStore, parsePemCertificates, verifyChain,
  admits, type PluginDeps, type PluginInstance, type RequestContext,
  type PeerCertificate, type ChainFailureReason, type ChainResult, type TrustStore,
} from '../../src/plugin-api.js'
import { schema, type MtlsAuthConfig } from './schema.js'
import { createCertificateMapper } from './consumer.js'
import { createOnlineChecker, issuerIn } from './revocation.js'

type FailureReason = ChainFailureReason | 'subject_dn' | 'revoked' | 'revocation_unknown'

/** The outcome of verifying one TLS connection's certificate, reused by every request on that connection. */
type Verdict =
  | { readonly ok: true, readonly chain: readonly X509Certificate[], readonly headers: ReadonlyArray<readonly [string, string]>, readonly until: number, readonly crlGeneration: number }
  | { readonly ok: false, readonly reason: FailureReason, readonly detail: string, readonly until: number, readonly crlGeneration: number }

/** A failed verdict is re-examined after this long (a CA or CRL may have changed). */
const NEGATIVE_VERDICT_MS = 60_000

function loadAnchors (files: readonly string[], deps: PluginDeps): X509Certificate[] {
  const anchors: X509Certificate[] = []
  files.forEach((file, i) => {
    const abs = deps.resolvePath(file)
    let text: string
    try {
      text = readFileSync(abs, 'utf8')
    } catch (err) {
      throw new PluginConfigError(['ca_certificates', i], `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (paths are resolved relative to the config file)`, 'CB_CFG_FILE')
    }
    let certs: X509Certificate[]
    try {
      certs = parsePemCertificates(text)
    } catch (err) {
      throw new PluginConfigError(['ca_certificates', i], `${file} holds a malformed certificate: ${(err as Error).message}`)
    }
    if (certs.length === 0) throw new PluginConfigError(['ca_certificates', i], `${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`)
    anchors.push(...certs)
  })
  return anchors
}

/** Java's String.matches: the whole subject must match, so `O=Acme` does not match `CN=x,O=Acme Evil`. */
function compileSubjectDn (pattern: string | undefined): RegExp | undefined {
  if (pattern === undefined) return undefined
  try {
    return new RegExp(`^(?:${pattern})$`)
  } catch (err) {
    throw new PluginConfigError(['subject_dn'], `is not a valid regular expression: ${(err as Error).message}`)
  }
}

/** The upstream headers for a verified certificate, computed once per connection (nginx variable formats). */
function certificateHeaders (config: MtlsAuthConfig, c: PeerCertificate): Array<readonly [string, string]> {
  const out: Array<readonly [string, string]> = []
  const add = (name: string | undefined, value: () => string | undefined): void => {
    if (name === undefined) return
    const v = value()
    if (v !== undefined && v !== '') out.push([name.toLowerCase(), sanitize(v)])
  }
  add(config.upstream_cert_header, () => nginxEscapeUriComponent(c.pem))
  add(config.upstream_cert_fingerprint_header, () => createHash('sha1').update(c.der).digest('hex'))
  add(config.upstream_cert_serial_header, () => c.serialNumber)
  add(config.upstream_cert_s_dn_header, () => c.subject)
  add(config.upstream_cert_i_dn_header, () => c.issuer)
  add(config.upstream_cert_cn_header, () => c.commonName)
  add(config.upstream_cert_org_header, () => c.organization)
  return out
}

export default definePlugin({
  name: 'mtls-auth',
  priority: 1000,
  description: 'Requires a client certificate that chains to the plugin\'s own CA certificates (Kong mtls-auth), ' +
    'optionally matching a subject DN pattern and not revoked; forwards certificate details upstream (Callista)',
  schema,
  async create (config, deps): Promise<PluginInstance> {
    // Without ca_certificates (Callista's configs) the listener's client_ca verification is what counts.
    const listenerMode = config.ca_certificates === undefined
    const anchors = loadAnchors(config.ca_certificates ?? [], deps)
    const store: TrustStore = createTrustStore(anchors)
    const subjectDn = compileSubjectDn(config.subject_dn)
    const mode = config.revocation_check_mode
    if (mode === 'STRICT' && listenerMode) {
      throw new PluginConfigError(['revocation_check_mode'], 'STRICT needs ca_certificates: OCSP responses and CRLs are verified against the CA that issued the client certificate')
    }
    const online = createOnlineChecker(config, deps)
    const clock = deps.now
    let refreshTimer: NodeJS.Timeout | undefined
    if (listenerMode && mode !== 'SKIP' && config.crl_files.length > 0) {
      throw new PluginConfigError(['ca_certificates'], 'is required with crl_files: a CRL is verified against the CA certificate that signed it')
    }
    let crls: CrlStore | undefined
    if (mode !== 'SKIP' && config.crl_files.length > 0) {
      try {
        crls = await CrlStore.load({
          files: config.crl_files.map(f => deps.resolvePath(f)),
          issuers: anchors,
          checkIntervalMs: config.cert_cache_ttl,
          logger: deps.logger,
        })
      } catch (err) {
        if (err instanceof CrlLoadError) throw new PluginConfigError(['crl_files', err.index], err.message)
        throw err
      }
    } else if (mode === 'SKIP' && config.crl_files.length > 0) {
      deps.logger.warn({ where: deps.where }, 'crl_files are ignored: revocation_check_mode is SKIP')
    }
    const status = config.error_response_code
    const mapCertificate = createCertificateMapper(config, deps)
    const identityHeaders = [
      config.upstream_cert_header, config.upstream_cert_fingerprint_header, config.upstream_cert_serial_header,
      config.upstream_cert_s_dn_header, config.upstream_cert_i_dn_header, config.upstream_cert_cn_header,
      config.upstream_cert_org_header,
    ].filter((h): h is string => h !== undefined).map(h => h.toLowerCase())

    // PeerCertificate objects are created once per TLS connection (src/server/peer.ts), so this caches the
    // verification per connection, and a resumed session (a new connection) is verified afresh.
    // A pending online check is stored too, so concurrent requests with the certificate wait for one check.
    const verdicts = new WeakMap<PeerCertificate, Verdict | Promise<Verdict>>()

    function revocationProblem (chain: readonly X509Certificate[], at: number): { reason: FailureReason, detail: string, until: number } | { until: number, leafKnown: boolean } {
      let until = Number.POSITIVE_INFINITY
      let leafKnown = false
      if (crls === undefined) return { until, leafKnown }
      // The leaf (unless it is itself a configured anchor), then intermediates below the anchor. STRICT demands a
      // good answer for the leaf — from a current CRL file, else online (onlineVerdict); intermediates are checked
      // when a CRL from their issuer is loaded.
      for (let i = 0; i < chain.length - 1; i++) {
        if (store.fingerprints.has(certificateFingerprint(chain[i]))) break
        const a = crls.status(chain[i], chain[i + 1], at)
        if (a.status === 'revoked') return { reason: 'revoked', detail: a.detail, until: Math.min(until, a.until) }
        // the leaf's status, when crl_files do not give it, is asked online (OCSP, then CRL distribution points)
        if (i === 0) leafKnown = a.status === 'good'
        if (i === 0) deps.revocationMetrics?.check('crl_file', a.status)
        until = Math.min(until, a.until)
      }
      return { until, leafKnown }
    }

    /** The online part (issue 18): the leaf's status from its OCSP responder or CRL distribution point. */
    async function onlineVerdict (c: PeerCertificate, chain: readonly X509Certificate[], ok: Extract<Verdict, { ok: true }>, generation: number): Promise<Verdict> {
      const issuer = issuerIn(chain, c.x509)
      const r = issuer === undefined
        ? { status: 'error' as const, source: 'none', detail: `the issuer of ${c.subject} is not known here (add it to ca_certificates)`, until: clock() + NEGATIVE_VERDICT_MS }
        : await online!.check(c.x509, issuer)
      if (issuer === undefined) deps.revocationMetrics?.check('none', 'error')
      if (!admits(mode, r.status)) {
        return { ok: false, reason: r.status === 'revoked' ? 'revoked' : 'revocation_unknown', detail: r.detail, until: Math.min(r.until, clock() + NEGATIVE_VERDICT_MS), crlGeneration: generation }
      }
      if (r.status !== 'good') {
        // a certificate that publishes no OCSP responder or CRL is the common case in private PKIs: not a warning
        const level = r.source === 'none' && r.status === 'unknown' ? 'debug' : 'warn'
        deps.logger[level]({ where: deps.where, subject: c.subject, serial: c.serialNumber, status: r.status, detail: r.detail }, 'client certificate revocation status unavailable; allowed by revocation_check_mode IGNORE_CA_ERROR')
      }
      return { ...ok, until: Math.min(ok.until, r.until) }
    }

    // Listener mode: OpenSSL verified the chain against client_ca during the handshake (TlsIdentity.verified, which
    // also demands a certificate: never `authorized` alone); the dates are re-checked for long-lived connections.
    function listenerVerdict (c: PeerCertificate, at: number, listenerVerified: boolean): ChainResult {
      if (!listenerVerified) return { ok: false, reason: 'untrusted', detail: `the listener did not verify ${c.subject} against its client_ca and mtls-auth has no ca_certificates` }
      const [from, to] = certificateValidity(c.x509)
      if (at < from) return { ok: false, reason: 'not_yet_valid', detail: `${c.subject} is not valid before ${c.x509.validFrom}` }
      if (at > to) return { ok: false, reason: 'expired', detail: `${c.subject} expired ${c.x509.validTo}` }
      return { ok: true, chain: Object.freeze([c.x509, ...c.chain]), validFrom: from, validTo: to }
    }

    function verify (c: PeerCertificate, at: number, listenerVerified: boolean): Verdict | Promise<Verdict> {
      const generation = crls?.generation ?? 0
      const failed = (reason: FailureReason, detail: string, until = at + NEGATIVE_VERDICT_MS): Verdict =>
        ({ ok: false, reason, detail, until, crlGeneration: generation })
      const r = listenerMode
        ? listenerVerdict(c, at, listenerVerified)
        : verifyChain(c.x509, c.chain, store, { at, allowPartialChain: config.allow_partial_chain, purpose: 'client_auth' })
      if (!r.ok) return failed(r.reason, r.detail, r.reason === 'not_yet_valid' ? at + 1000 : undefined)
      if (subjectDn !== undefined && !subjectDn.test(c.subject)) return failed('subject_dn', `subject "${c.subject}" does not match subject_dn`)
      const rev = revocationProblem(r.chain, at)
      if ('reason' in rev) return failed(rev.reason, rev.detail, rev.until)
      const ok: Verdict = { ok: true, chain: r.chain, headers: certificateHeaders(config, c), until: Math.min(r.validTo, rev.until), crlGeneration: generation }
      if (online === undefined || rev.leafKnown) return ok
      return onlineVerdict(c, r.chain, ok, generation)
    }

    function answer (ctx: RequestContext, cert: PeerCertificate, v: Verdict): void {
      if (!v.ok) {
        throw new GatewayError('CB_ERR_CERT_INVALID', { status, detail: `${v.reason}: ${v.detail}` })
      }
      ctx.clientCertificate = { certificate: cert, chain: v.chain }
      for (const [name, value] of v.headers) ctx.setUpstreamHeader(name, value)
      mapCertificate(ctx, cert, status)
    }

    return {
      requestClientCertificate: true,
      identityHeaders,
      access: function mtlsAuthAccess (ctx: RequestContext): void | Promise<void> {
        // Never trust the listener's `authorized` alone (nodejs/node#35317): a certificate must be present,
        // and it is verified here against this plugin's CAs whatever the listener's client_certificate mode.
        const cert = ctx.tls?.certificate ?? null
        if (cert === null) {
          throw new GatewayError('CB_ERR_CERT_MISSING', { status, detail: ctx.tls === null ? 'plain HTTP request' : 'no client certificate in the TLS session' })
        }
        const now = clock()
        let v = verdicts.get(cert)
        if (v === undefined || (!(v instanceof Promise) && (now > v.until || v.crlGeneration !== (crls?.generation ?? 0)))) {
          v = verify(cert, now, ctx.tls?.verified === true)
          if (v instanceof Promise) {
            const pending = v
            v.then((done) => { if (verdicts.get(cert) === pending) verdicts.set(cert, done) }, () => { verdicts.delete(cert) })
          }
          verdicts.set(cert, v)
        }
        if (v instanceof Promise) return v.then(done => answer(ctx, cert, done))
        answer(ctx, cert, v)
      },
      start (): void {
        // downloaded CRLs are renewed ahead of their nextUpdate even while no client needs them
        if (online !== undefined) {
          refreshTimer = setInterval(() => { void online.refreshDue() }, Math.min(config.cert_cache_ttl, 60_000))
          refreshTimer.unref()
        }
      },
      close (): Promise<void> {
        if (refreshTimer !== undefined) clearInterval(refreshTimer)
        crls?.close()
        return Promise.resolve()
      },
    }
  },
})
