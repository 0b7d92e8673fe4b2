/**
 * The admin dashboard (issue 19): GET / on admin_listen, rendered in a real headless chromium, with real traffic
 * through a real TLS listener, the built-in authorization server issuing certificate-bound tokens, and the
 * openid-connect plugin refusing a token presented with another certificate, an expired one and one with a bad
 * signature. Asserts what a person sees: the routes and their plugin chains, counters moving, a refused request
 * under its reason (an expired token and a bad signature apart, though both are CB_ERR_TOKEN_INVALID), a certificate expiring in 10 days
 * flagged, the AS's clients with issued and revoked counts, a refused reload's diagnostics. Screenshots (light and
 * dark) go to test-artifacts/dashboard/ (gitignored).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync } from 'node:fs'
import { connect } from 'node:tls'
import { Agent, request } from 'undici'
import type { Browser, Page } from 'playwright-core'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { artifactPath, launchBrowser } from '../helpers/browser.js'
import { issueCert } from '../../src/pki/dev-pki.js'

const DAY_MS = 86_400_000

let pki: TestPki
let up: Upstream
let gw: TestGateway
let browser: Browser
let page: Page
let admin: string
let soonCert: string
let soonKey: string
const agents: Agent[] = []
const requested: string[] = []
const pageErrors: string[] = []
/** The gateway's clock runs this far ahead of the wall clock: tokens expire without the test sleeping. */
let skewMs = 0

const config = (extra = ''): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: require
authorization_server:
  issuer: https://localhost:8443
  ca_certificates: ${pki.ca.certFile}
  clients:
    - client_id: client1
      client_name: Orders batch job
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=client1,O=Example Org
      scope: system-access
services:
  - name: orders-api
    url: ${up.url}
    routes:
      - name: orders
        hosts: [localhost]
        paths: [/orders]
        plugins:
          - name: require-scopes
            config:
              scopes: [system-access]
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
          - name: openid-connect
            config:
              issuer: https://localhost:8443
              auth_methods: [bearer]
              audience_required: [https://localhost:8443]
              proof_of_possession_mtls: strict
      - name: public
        paths: [/public]
${extra}`

function agentFor (cert?: { certFile: string, keyFile: string } | { cert: string, key: string }): Agent {
  const ca = pki.ca.certPem
  const connect: Record<string, unknown> = { ca, servername: 'localhost' }
  if (cert !== undefined && 'certFile' in cert) { connect.cert = pki.client1.certPem; connect.key = pki.client1.keyPem }
  if (cert !== undefined && 'cert' in cert) { connect.cert = cert.cert; connect.key = cert.key }
  const a = new Agent({ connect })
  agents.push(a)
  return a
}

async function call (path: string, agent: Agent, headers: Record<string, string> = {}): Promise<number> {
  const r = await request(`https://localhost:${gw.port()}${path}`, { dispatcher: agent, headers: { host: 'localhost', ...headers } })
  await r.body.text()
  return r.statusCode
}

async function tokenFor (agent: Agent): Promise<string> {
  const r = await request(`https://localhost:${gw.port()}/oauth2/token`, {
    method: 'POST', dispatcher: agent,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&client_id=client1',
  })
  const j = await r.body.json() as { access_token?: string }
  expect(r.statusCode, JSON.stringify(j)).toBe(200)
  return j.access_token!
}

/** The text of a table row whose header cell is `name`, in the table captioned `caption`. */
function row (caption: RegExp, name: string) {
  return page.getByRole('table', { name: caption }).getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) })
}

/** A number cell of a row: the column's index among the row's cells (header cell excluded). */
async function cellNumber (caption: RegExp, name: string, cellIndex: number): Promise<number> {
  const t = await row(caption, name).getByRole('cell').nth(cellIndex).textContent()
  return Number(t)
}

const ROUTES = /^Routes in the live config/
const REFUSALS = /^Requests answered with an error/
const CERTS = /^Soonest expiry first/
const CLIENTS = /^Registered clients/

beforeAll(async () => {
  pki = await createTestPki()
  up = await startUpstream()
  // RFC 5280 validity: expires in 10 days (what the dashboard must flag)
  const soon = await issueCert(pki.ca, { kind: 'client', subject: 'CN=soon-expiring, O=Example Org', notBefore: new Date(Date.now() - DAY_MS), notAfter: new Date(Date.now() + 10 * DAY_MS) })
  soonCert = soon.certPem; soonKey = soon.keyPem
  writeFileSync(pki.file('soon.crt'), soonCert)
  gw = await startGateway(config(), { logLevel: 'info', now: () => Date.now() + skewMs })
  admin = gw.adminUrl!
  browser = await launchBrowser()
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  page.on('request', (r) => { requested.push(r.url()) })
  page.on('pageerror', (e) => { pageErrors.push(e.message) })
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()) })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  for (const a of agents) await a.close()
  await gw?.close()
  await up?.close()
  pki?.cleanup()
})

describe('GET / on admin_listen, in chromium', () => {
  it('lists the routes with hosts/paths, service and the plugin chain in execution order', async () => {
    await page.goto(admin + '/')
    await expect.poll(() => page.getByRole('table', { name: ROUTES }).getByRole('rowheader').allTextContents(), { timeout: 15_000 }).toEqual(['orders', 'public'])
    const orders = row(ROUTES, 'orders')
    await expect.poll(() => orders.textContent()).toContain('orders-api')
    expect(await orders.textContent()).toContain('localhost /orders')
    // priority order (mtls-auth 1000 > openid-connect > require-scopes), not the order written in the YAML
    expect(await orders.getByRole('listitem').allTextContents()).toEqual(['mtls-auth', 'openid-connect', 'require-scopes'])
    expect(await row(ROUTES, 'public').textContent()).toContain('none')
  })

  it('counters move as traffic flows, without reloading the page', async () => {
    const anon = agentFor()
    const before = await cellNumber(ROUTES, 'public', 7)
    for (let i = 0; i < 7; i++) expect(await call('/public', anon)).toBe(200)
    await expect.poll(() => cellNumber(ROUTES, 'public', 7), { timeout: 10_000 }).toBe(before + 7)
    await expect.poll(async () => Number(await row(ROUTES, 'public').getByRole('cell').nth(3).textContent()), { timeout: 10_000 }).toBeGreaterThan(0)
    expect(await row(ROUTES, 'public').getByRole('cell').nth(4).textContent()).toContain('2xx 7')
    // the chart is an image with its numbers in words
    expect(await row(ROUTES, 'public').getByRole('img').getAttribute('aria-label')).toMatch(/^requests per 5 s over the last 6 minutes: 7 in all/)
  })

  it('a token presented with another certificate shows under "binding mismatch"; no certificate under its own reason', async () => {
    const c1 = agentFor(pki.client1)
    const token = await tokenFor(c1)
    expect(await call('/orders', c1, { authorization: `Bearer ${token}` })).toBe(200)
    const c2 = agentFor({ cert: pki.client2.certPem, key: pki.client2.keyPem })
    expect(await call('/orders', c2, { authorization: `Bearer ${token}` })).toBe(401)
    expect(await call('/orders', agentFor(), { authorization: `Bearer ${token}` })).toBe(401)
    const mismatch = row(REFUSALS, 'binding mismatch (token bound to another certificate)')
    await expect.poll(() => mismatch.count(), { timeout: 10_000 }).toBe(1)
    expect(await mismatch.textContent()).toContain('CB_ERR_TOKEN_BINDING_MISMATCH')
    expect(await cellNumber(REFUSALS, 'binding mismatch (token bound to another certificate)', 3)).toBe(1)
    await expect.poll(() => row(REFUSALS, 'no client certificate').textContent(), { timeout: 10_000 }).toContain('CB_ERR_CERT_MISSING')
  })

  it('an expired token and a token with a bad signature show under their own reasons, with the same stable code', async () => {
    const c1 = agentFor(pki.client1)
    // RFC 7515 §5.2: a signature that does not verify (one character of it changed; the first, never a padding bit)
    const [h, p, sig] = (await tokenFor(c1)).split('.')
    const forged = [h, p, (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)].join('.')
    expect(await call('/orders', c1, { authorization: `Bearer ${forged}` })).toBe(401)
    // RFC 7519 §4.1.4: past exp (the AS's default lifetime is 300 s); one token already seen (refused from the
    // openid-connect cache) and one never seen (refused by the JWT validator)
    const seen = await tokenFor(c1)
    const unseen = await tokenFor(c1)
    expect(await call('/orders', c1, { authorization: `Bearer ${seen}` })).toBe(200)
    skewMs = 3_600_000
    try {
      expect(await call('/orders', c1, { authorization: `Bearer ${seen}` })).toBe(401)
      expect(await call('/orders', c1, { authorization: `Bearer ${unseen}` })).toBe(401)
    } finally { skewMs = 0 }
    const expired = row(REFUSALS, 'token expired')
    await expect.poll(() => expired.count(), { timeout: 10_000 }).toBe(1)
    expect(await expired.textContent()).toContain('CB_ERR_TOKEN_INVALID · expired')
    expect(await cellNumber(REFUSALS, 'token expired', 3)).toBe(2)
    const badSig = row(REFUSALS, 'invalid signature')
    expect(await badSig.count()).toBe(1)
    expect(await badSig.textContent()).toContain('CB_ERR_TOKEN_INVALID · signature')
    expect(await cellNumber(REFUSALS, 'invalid signature', 3)).toBe(1)
    // the access log says the same, per request: the stable code, and the sub-reason beside it
    const refused = gw.logs.filter(l => l.msg === 'request' && l.err === 'CB_ERR_TOKEN_INVALID').map(l => l.err_cause)
    expect(refused.sort()).toEqual(['expired', 'expired', 'signature'])
  })

  it('a TLS handshake refused for want of a certificate (client_certificate: require) shows too', async () => {
    await new Promise<void>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: gw.port(1), servername: 'localhost', ca: pki.ca.certPem })
      s.on('secureConnect', () => { s.write('GET / HTTP/1.1\r\nhost: localhost\r\n\r\n') })
      s.on('error', () => resolve())
      s.on('close', () => resolve())
      s.resume()
    })
    await expect.poll(() => row(REFUSALS, 'TLS handshake refused: no certificate').textContent(), { timeout: 10_000 }).toContain('CB_TLS_NO_CERTIFICATE')
  })

  it('a certificate subject is shown as text, never run as markup', async () => {
    const evil = await issueCert(pki.ca, { kind: 'client', subject: 'CN=<img src=x onerror=alert(1)>, O=Example Org' })
    let dialogs = 0
    page.on('dialog', (d) => { dialogs++; void d.dismiss() })
    expect(await call('/public', agentFor({ cert: evil.certPem, key: evil.keyPem }))).toBe(200)
    const subjects = page.getByRole('table', { name: CERTS }).getByRole('rowheader')
    await expect.poll(async () => (await subjects.allTextContents()).some(t => t.includes('<img src')), { timeout: 10_000 }).toBe(true)
    expect(await page.locator('#certs img').count()).toBe(0)
    expect(dialogs).toBe(0)
  })

  it('a client certificate expiring in 10 days is listed first and flagged; a healthy one is not', async () => {
    expect(await call('/public', agentFor({ cert: soonCert, key: soonKey }))).toBe(200)
    const soon = row(CERTS, 'CN=soon-expiring,O=Example Org')
    await expect.poll(() => soon.count(), { timeout: 10_000 }).toBe(1)
    expect(await soon.textContent()).toContain('expires in 10 days')
    expect(await soon.getAttribute('class')).toBe('flagged')
    const subjects = await page.getByRole('table', { name: CERTS }).getByRole('rowheader').allTextContents()
    expect(subjects[0]).toBe('CN=soon-expiring,O=Example Org')
    expect(subjects, subjects.join(' | ')).toContain('CN=client1,O=Example Org')
    const c1 = row(CERTS, 'CN=client1,O=Example Org')
    expect(await c1.getAttribute('class')).toBeNull()
    expect(await c1.textContent()).not.toContain('expires in')
    expect(await c1.getByRole('cell').nth(2).textContent()).toBe('client1') // client_id from the verified token
    expect(await c1.textContent()).toContain(pki.thumbprint(pki.client1))
  })

  it('the authorization server\'s clients, with tokens issued and revoked', async () => {
    const c1 = agentFor(pki.client1)
    const token = await tokenFor(c1)
    const r = await request(`https://localhost:${gw.port()}/oauth2/revoke`, {
      method: 'POST', dispatcher: c1, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=client1&token=${token}`,
    })
    await r.body.text()
    expect(r.statusCode).toBe(200)
    await expect.poll(() => cellNumber(CLIENTS, 'client1', 3), { timeout: 10_000 }).toBe(1)
    // one for the binding mismatch, three for the expired and forged tokens, this one
    expect(await cellNumber(CLIENTS, 'client1', 2)).toBe(5)
    expect(await row(CLIENTS, 'client1').textContent()).toContain('tls_client_auth')
  })

  it('a refused reload shows with its diagnostics (file:line:col, code, key path)', async () => {
    const bad = await request(`${admin}/config`, { method: 'POST', body: config().replace('paths: [/public]', 'paths: [/public]\n        strip_pth: true'), headers: { 'content-type': 'application/yaml' } })
    await bad.body.text()
    expect(bad.statusCode).toBe(400)
    await expect.poll(() => page.locator('#reload-counts').textContent(), { timeout: 10_000 }).toBe('0 applied, 1 refused since start')
    const diag = await page.locator('#last-refusal-errors').textContent()
    expect(diag).toMatch(/gateway\.yml:\d+:\d+ +CB_CFG_UNKNOWN_FIELD +services\[0\]\.routes\[1\]\.strip_pth/)
    expect(await page.getByRole('heading', { name: /^Last refused reload/ }).isVisible()).toBe(true)
  })

  it('shows the store, contacts no other origin, and runs without a script or CSP error; screenshots light and dark', async () => {
    await expect.poll(() => page.locator('#store').textContent()).toContain('memory')
    expect(requested.length).toBeGreaterThan(1)
    for (const u of requested) expect(u.startsWith(admin + '/')).toBe(true)
    expect(pageErrors).toEqual([])
    // every table says what it is; every chart is an image with its numbers in words
    expect(await page.evaluate(() => [...document.querySelectorAll('table')].filter(t => !t.hidden).every(t => (t.caption?.textContent ?? '') !== ''))).toBe(true)
    expect(await page.evaluate(() => [...document.querySelectorAll('svg')].every(s => s.getAttribute('role') === 'img' && /^\w+ per 5 s/.test(s.getAttribute('aria-label') ?? '')))).toBe(true)
    await page.emulateMedia({ colorScheme: 'light' })
    await page.screenshot({ path: artifactPath('dashboard', 'light.png'), fullPage: true })
    await page.emulateMedia({ colorScheme: 'dark' })
    // the dark palette applies (the body background follows prefers-color-scheme)
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(17, 19, 24)')
    await page.screenshot({ path: artifactPath('dashboard', 'dark.png'), fullPage: true })
  })
})

describe('GET /api/summary', () => {
  it('answers the same data as JSON, with no token, secret or key in it', async () => {
    const r = await request(`${admin}/api/summary`)
    const text = await r.body.text()
    expect(r.statusCode).toBe(200)
    expect(r.headers['content-type']).toMatch(/^application\/json/)
    const s = JSON.parse(text) as Record<string, unknown> & { routes: Array<{ name: string, plugins: string[], requests_total: number }>, certificates: Array<{ subject: string, expiring_soon: boolean }> }
    expect(Object.keys(s).sort()).toEqual(['authorization_server', 'certificates', 'gateway', 'generated_at', 'refusals', 'reloads', 'routes', 'store', 'window'])
    expect(s.routes.find(x => x.name === 'public')!.requests_total).toBeGreaterThanOrEqual(8)
    expect(s.certificates.find(c => c.subject === 'CN=soon-expiring,O=Example Org')!.expiring_soon).toBe(true)
    expect(s.store).toEqual({ backend: 'memory', connected: true })
    const refusals = (s as unknown as { refusals: Array<{ code: string, cause?: string, reason: string, status?: number, total: number }> }).refusals
    expect(refusals.filter(x => x.code === 'CB_ERR_TOKEN_INVALID').map(x => [x.cause, x.reason, x.status, x.total]).sort()).toEqual([
      ['expired', 'token expired', 401, 2], ['signature', 'invalid signature', 401, 1],
    ])
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./) // no JWT
    expect(text).not.toMatch(/BEGIN|PRIVATE|\$scrypt\$/)
  })

  it('the page is self-contained and pinned by its Content-Security-Policy', async () => {
    const r = await request(`${admin}/`)
    const html = await r.body.text()
    expect(r.statusCode).toBe(200)
    expect(String(r.headers['content-security-policy'])).toMatch(/default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'/)
    expect(html).not.toMatch(/\b(src|href)="(?!data:)/) // no external script, style sheet, font or image
    expect(html.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\//)
    expect(Buffer.byteLength(html)).toBeLessThan(32 * 1024)
  })
})
