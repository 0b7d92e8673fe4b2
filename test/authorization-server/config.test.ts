import { describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { loadConfigText } from '../../src/config/validate.js'
import { ConfigError, type Diagnostic } from '../../src/config/diagnostic.js'
import { authorizationServer, AuthorizationServerConfigError, hashSecret } from '../../src/authorization-server/index.js'
import { storeDeps } from '../helpers/clock.js'

function diagnostics (yaml: string, env: NodeJS.ProcessEnv = {}): Diagnostic[] {
  try {
    loadConfigText('/tmp/gateway.yml', yaml, { plugins: new Map(), sections: new Map([['authorization_server', authorizationServer.schema]]), env })
  } catch (e) {
    if (e instanceof ConfigError) return [...e.diagnostics]
    throw e
  }
  return []
}

const brief = (ds: Diagnostic[]) => ds.map(d => `${d.line}:${d.col} ${d.code} ${d.path}`)

describe('authorization_server: schema diagnostics with positions', () => {
  it('accepts a minimal section and fills defaults', () => {
    const r = authorizationServer.schema.parse({ issuer: 'https://localhost:8443', clients: [{ client_id: 'a', token_endpoint_auth_method: 'client_secret_basic', client_secret: 's' }] })
    expect(r.access_token_ttl).toBe(300)
    expect(r.max_body_size).toBe(8192)
    expect(r.allow_partial_chain).toBe(false)
    expect(r.clients[0]).toMatchObject({ grant_types: ['client_credentials'], scope: '', introspection: false })
  })

  it('reports every cross-field problem at its own path and line', async () => {
    const hash = await hashSecret('x')
    const yaml = `_format_version: "3.0"
authorization_server:
  issuer: http://localhost:8443
  clients:
    - client_id: pki
      token_endpoint_auth_method: tls_client_auth
    - client_id: self
      token_endpoint_auth_method: self_signed_tls_client_auth
    - client_id: sec
      token_endpoint_auth_method: client_secret_basic
    - client_id: pki
      token_endpoint_auth_method: client_secret_post
      client_secret: abc
    - client_id: re
      token_endpoint_auth_method: tls_client_auth
      subject_dn_pattern: "CN=(unclosed"
    - client_id: two
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: CN=x
      tls_client_auth_san_dns: x.example
    - client_id: hash
      token_endpoint_auth_method: client_secret_basic
      client_secret_hash: "not-a-hash"
    - client_id: both
      token_endpoint_auth_method: client_secret_post
      client_secret: abc
      client_secret_hash: "${hash}"
    - client_id: wrongkey
      token_endpoint_auth_method: client_secret_basic
      client_secret: abc
      certificate: x.pem
    - client_id: dn
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: "not a dn"
`
    expect(brief(diagnostics(yaml))).toEqual([
      '3:11 CB_CFG_INVALID authorization_server.issuer',
      '6:35 CB_CFG_INVALID authorization_server.clients[0].token_endpoint_auth_method',
      '8:35 CB_CFG_INVALID authorization_server.clients[1].token_endpoint_auth_method',
      '10:35 CB_CFG_INVALID authorization_server.clients[2].token_endpoint_auth_method',
      '11:18 CB_CFG_INVALID authorization_server.clients[3].client_id',
      '16:27 CB_CFG_INVALID authorization_server.clients[4].subject_dn_pattern',
      '20:32 CB_CFG_INVALID authorization_server.clients[5].tls_client_auth_san_dns',
      '23:27 CB_CFG_INVALID authorization_server.clients[6].client_secret_hash',
      '27:27 CB_CFG_INVALID authorization_server.clients[7].client_secret_hash',
      '31:20 CB_CFG_INVALID authorization_server.clients[8].certificate',
      '34:35 CB_CFG_INVALID authorization_server.clients[9].tls_client_auth_subject_dn',
    ])
    const messages = diagnostics(yaml).map(d => d.message)
    expect(messages).toContain('the issuer must be an https URL (RFC 8414 §2)')
    expect(messages).toContain('client_id "pki" is already used by clients[0]')
    expect(messages.some(m => m.startsWith('a tls_client_auth client needs one of tls_client_auth_subject_dn'))).toBe(true)
    expect(messages).toContain('a self_signed_tls_client_auth client needs certificate (PEM file) or jwks (with x5c) (RFC 8705 §2.2)')
    expect(messages).toContain('a client_secret_basic client needs client_secret (e.g. ${{ env "NAME" }}) or client_secret_hash')
  })

  it('reports unknown keys with a hint, and bad enum values', () => {
    const ds = diagnostics(`_format_version: "3.0"
authorization_server:
  issuer: https://localhost:8443
  acces_token_ttl: 60
  signing_alg: HS256
  clients:
    - client_id: a
      token_endpoint_auth_method: private_key_jwt
      tls_client_auth_subjectdn: CN=a
`)
    expect(brief(ds)).toEqual([
      '4:3 CB_CFG_UNKNOWN_FIELD authorization_server.acces_token_ttl',
      '5:16 CB_CFG_INVALID authorization_server.signing_alg',
      '8:35 CB_CFG_INVALID authorization_server.clients[0].token_endpoint_auth_method',
      '9:7 CB_CFG_UNKNOWN_FIELD authorization_server.clients[0].tls_client_auth_subjectdn',
    ])
    expect(ds[0].message).toBe('unknown field "acces_token_ttl" for section "authorization_server"; did you mean "access_token_ttl"?')
    expect(ds[3].message).toMatch(/did you mean "tls_client_auth_subject_dn"\?/)
  })

  it('takes client_secret from ${{ env "X" }}', () => {
    const yaml = `_format_version: "3.0"
authorization_server:
  issuer: https://localhost:8443
  clients:
    - client_id: a
      token_endpoint_auth_method: client_secret_basic
      client_secret: \${{ env "CLIENT_A_SECRET" }}
`
    expect(brief(diagnostics(yaml))).toEqual(['7:22 CB_CFG_ENV authorization_server.clients[0].client_secret'])
    const loaded = loadConfigText('/tmp/gateway.yml', yaml, { plugins: new Map(), sections: new Map([['authorization_server', authorizationServer.schema]]), env: { CLIENT_A_SECRET: 'from-env' } })
    expect((loaded.sections.authorization_server.value as { clients: Array<{ client_secret: string }> }).clients[0].client_secret).toBe('from-env')
  })
})

describe('authorization_server: problems found when creating (files)', () => {
  it('reports unreadable and malformed certificate files at their config paths, all at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-as-cfg-'))
    try {
      writeFileSync(join(dir, 'not-a-cert.pem'), 'hello')
      const cfg = authorizationServer.schema.parse({
        issuer: 'https://localhost:8443',
        ca_certificates: ['missing-ca.pem'],
        clients: [
          { client_id: 'a', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=a' },
          { client_id: 'b', token_endpoint_auth_method: 'self_signed_tls_client_auth', certificate: 'not-a-cert.pem' },
          { client_id: 'c', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ x5c: ['AAAA'] }] } },
        ],
      })
      const err = await Promise.resolve(authorizationServer.create(cfg, { baseDir: dir, resolvePath: p => join(dir, p), logger: pino({ level: 'silent' }), http: undefined as never, where: [], ...storeDeps() })).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(AuthorizationServerConfigError)
      const problems = (err as AuthorizationServerConfigError).problems.map(p => `${p.code} ${p.path.join('.')}`)
      expect(problems).toEqual([
        'CB_CFG_FILE ca_certificates.0',
        'CB_CFG_PEM clients.1.certificate',
        'CB_CFG_PEM clients.2.jwks.keys.0.x5c.0',
      ])
      // the core reports PluginConfigError at [section, ...path] with the message: nothing is lost
      const e = err as AuthorizationServerConfigError
      expect(e.path).toEqual(['ca_certificates', 0])
      expect(e.message).toMatch(/^cannot read missing-ca.pem: ENOENT/)
      expect(e.message).toContain('\n    also authorization_server.clients[1].certificate: not-a-cert.pem holds no PEM certificate')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
