/**
 * Kong's OIDC proof-of-possession guide (seed 004) as its decK snippets, one file each, applied in the guide's order
 * (issue 16): examples/kong-oidc-pop/deck/ holds certbound's gateway: section and the guide's three
 * `deck gateway apply` snippets, the openid-connect one with the guide's verbatim issuer line. Validated and run
 * with `-c DIR` against a real authorization server (node-oidc-provider in Keycloak's role), driven with curl.
 * The only run-time edits are the two fixed ports.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { Gateway } from '../../src/gateway.js'
import { createLogger } from '../../src/observability/logger.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { curl } from '../helpers/curl.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startIdp, type Idp } from '../helpers/idp.js'

const DECK = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'kong-oidc-pop', 'deck')

let pki: TestPki
let upstream: Upstream
let idp: Idp
let dir: string
let gw: Gateway | undefined
let env: NodeJS.ProcessEnv
let token: string

beforeAll(async () => {
  pki = await createTestPki()
  upstream = await startUpstream()
  idp = await startIdp({
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.ca.certPem,
    clients: [{ client_id: 'kong', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org' }],
  })
  dir = mkdtempSync(join(tmpdir(), 'certbound-deck-'))
  mkdirSync(join(dir, 'certs'))
  mkdirSync(join(dir, 'deck'))
  for (const [to, from] of Object.entries({ 'rootCA.crt': pki.ca.certFile, 'gateway.crt': pki.server.certFile, 'gateway.key': pki.server.keyFile, 'client.crt': pki.client1.certFile, 'client.key': pki.client1.keyFile, 'client2.crt': pki.client2.certFile, 'client2.key': pki.client2.keyFile })) {
    copyFileSync(from, join(dir, 'certs', to))
  }
  for (const f of readdirSync(DECK)) {
    const text = readFileSync(join(DECK, f), 'utf8').replace('127.0.0.1:8443', '127.0.0.1:0').replace('127.0.0.1:8080', `127.0.0.1:${upstream.port}`)
    writeFileSync(join(dir, 'deck', f), text)
  }
  env = { ...process.env, DECK_ISSUER: idp.issuer }
})

afterAll(async () => {
  await gw?.close(0)
  await idp?.close()
  await upstream?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  pki?.cleanup()
})

describe('examples/kong-oidc-pop/deck: the guide\'s decK snippets as separate files', () => {
  it('are the guide\'s snippets: the openid-connect file keeps the verbatim issuer line', () => {
    expect(readdirSync(DECK)).toEqual(['00-gateway.yml', '01-service.yml', '02-tls-handshake-modifier.yml', '03-openid-connect.yml'])
    expect(readFileSync(join(DECK, '03-openid-connect.yml'), 'utf8')).toContain('    issuer: "${{ env "DECK_ISSUER" }}"\n')
  })

  it('certbound validate -c DIR: one config from four files, in the guide\'s order', async () => {
    const cfg = await Gateway.check([join(dir, 'deck')], { env, dryRun: true })
    expect(cfg.files.map(f => f.slice(join(dir, 'deck').length + 1))).toEqual(['00-gateway.yml', '01-service.yml', '02-tls-handshake-modifier.yml', '03-openid-connect.yml'])
    expect(cfg.routes.map(r => [r.name, r.plugins.map(p => p.def.name)])).toEqual([['example-route', ['tls-handshake-modifier', 'openid-connect']]])
  })

  it('starts; tls-handshake-modifier (another file) makes the listener request a client certificate', async () => {
    const sink = new Writable({ write (_c, _e, cb) { cb() } })
    gw = await Gateway.start({ configFile: [join(dir, 'deck')], env, logger: createLogger({ level: 'silent', destination: sink as never }) })
    expect(gw.addresses()[0]).toMatchObject({ tls: true, mode: 'request' })
  })

  it('the guide\'s token request, then the API call with client.crt: 200 with the credential headers', async () => {
    const t = await curl(['-s', '--location', '--request', 'POST', idp.tokenEndpoint, '--header', 'Content-Type: application/x-www-form-urlencoded',
      '--data-urlencode', 'client_id=kong', '--data-urlencode', 'grant_type=client_credentials',
      '--cert', join(dir, 'certs/client.crt'), '--key', join(dir, 'certs/client.key'), '--cacert', join(dir, 'certs/rootCA.crt')])
    expect(t.status).toBe(200)
    token = (JSON.parse(t.body) as { access_token: string }).access_token
    const r = await curl(['-isk', '-X', 'GET', `https://localhost:${gw!.addresses()[0].port}/anything`, '-H', `Authorization:Bearer ${token}`,
      '--cert', join(dir, 'certs/client.crt'), '--key', join(dir, 'certs/client.key')])
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body) as { headers: Record<string, string> }
    expect(echo.headers['x-credential-client-id']).toBe('kong')
    expect(echo.headers['x-credential-token-type']).toBe('Bearer')
  })

  it('the same token with client2\'s certificate: 401 invalid_token (proof of possession)', async () => {
    const r = await curl(['-isk', '-X', 'GET', `https://localhost:${gw!.addresses()[0].port}/anything`, '-H', `Authorization:Bearer ${token}`,
      '--cert', join(dir, 'certs/client2.crt'), '--key', join(dir, 'certs/client2.key')])
    expect(r.status).toBe(401)
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"')
  })
})
