/**
 * Who may see the admin dashboard (gateway.admin_dashboard): the admin_allow CIDRs that guard POST /config, then
 * optional HTTP Basic (RFC 7617) against a scrypt hash from the config; `enabled: false` serves nothing; a
 * password_hash that is not one is a config error with its position.
 */
import { describe, it, expect, afterAll } from 'vitest'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { artifactPath, launchBrowser } from '../helpers/browser.js'
import { hashSecret } from '../../src/authorization-server/secret-hash.js'

const gateways: TestGateway[] = []
afterAll(async () => { for (const g of gateways) await g.close() })

const config = (gatewayExtra: string): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  listen:
    - address: 127.0.0.1:0
${gatewayExtra}
services:
  - name: s
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/r]
`

async function start (gatewayExtra: string): Promise<string> {
  const g = await startGateway(config(gatewayExtra))
  gateways.push(g)
  return g.adminUrl!
}

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, text: string }> {
  const r = await request(url, { headers })
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() }
}

const basic = (user: string, pass: string): Record<string, string> => ({ authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') })

describe('gateway.admin_allow guards the dashboard as it guards POST /config', () => {
  it('an address outside admin_allow gets 403 for the page and the JSON; /status stays open', async () => {
    const admin = await start('  admin_allow: [10.0.0.0/8]')
    for (const p of ['/', '/api/summary']) {
      const r = await get(admin + p)
      expect(r.status, p).toBe(403)
      expect(r.text).not.toMatch(/<html|routes/)
    }
    expect((await get(admin + '/status')).status).toBe(200)
  })
})

describe('gateway.admin_dashboard.basic_auth (RFC 7617, scrypt hash)', () => {
  it('asks for credentials, refuses a wrong password or user, accepts the right one; a browser with them sees the page', async () => {
    const hash = await hashSecret('correct horse battery staple')
    const admin = await start(`  admin_dashboard:\n    basic_auth:\n      username: ops\n      password_hash: "${hash}"`)
    const none = await get(admin + '/api/summary')
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Basic realm="certbound admin", charset="UTF-8"')
    expect((await get(admin + '/', basic('ops', 'wrong'))).status).toBe(401)
    expect((await get(admin + '/', basic('root', 'correct horse battery staple'))).status).toBe(401)
    expect((await get(admin + '/', { authorization: 'Bearer x' })).status).toBe(401)
    const ok = await get(admin + '/api/summary', basic('ops', 'correct horse battery staple'))
    expect(ok.status).toBe(200)
    expect(ok.text).not.toContain(hash)
    // remembered for polling: a second request with the same header is answered without another scrypt
    const t0 = performance.now()
    expect((await get(admin + '/api/summary', basic('ops', 'correct horse battery staple'))).status).toBe(200)
    expect(performance.now() - t0).toBeLessThan(2_000)

    // a flood of wrong passwords: a few scrypt checks at a time (32 MiB each), the rest answered 503 at once
    const flood = await Promise.all(Array.from({ length: 24 }, async (_, i) => (await get(admin + '/api/summary', basic('ops', `guess-${i}`))).status))
    expect(new Set(flood)).toEqual(new Set([401, 503]))
    expect((await get(admin + '/api/summary', basic('ops', 'correct horse battery staple'))).status).toBe(200)

    const browser = await launchBrowser()
    try {
      const ctx = await browser.newContext({ httpCredentials: { username: 'ops', password: 'correct horse battery staple' } })
      const page = await ctx.newPage()
      await page.goto(admin + '/')
      await expect.poll(() => page.getByRole('table', { name: /^Routes in the live config/ }).getByRole('rowheader').allTextContents(), { timeout: 15_000 }).toEqual(['r'])
      await page.screenshot({ path: artifactPath('dashboard', 'basic-auth.png') })
    } finally { await browser.close() }
  }, 60_000)

  it('a password_hash that is not a $scrypt$ hash is a config error at its line, naming the key path', async () => {
    const err = await startGateway(config('  admin_dashboard:\n    basic_auth:\n      username: ops\n      password_hash: hunter2'))
      .then(async (g) => { await g.close(); return undefined }, (e: unknown) => e) as { diagnostics?: Array<{ line: number, code: string, path: string, message: string }> } | undefined
    expect(err?.diagnostics?.map(d => `${d.line} ${d.path}`)).toEqual(['9 gateway.admin_dashboard.basic_auth.password_hash'])
    expect(err?.diagnostics?.[0].message).toMatch(/certbound hash-secret/)
  })
})

describe('gateway.admin_dashboard.enabled: false', () => {
  it('serves neither the page nor the JSON', async () => {
    const admin = await start('  admin_dashboard:\n    enabled: false')
    expect((await get(admin + '/')).status).toBe(404)
    expect((await get(admin + '/api/summary')).status).toBe(404)
    expect((await get(admin + '/metrics')).status).toBe(200)
  })
})
