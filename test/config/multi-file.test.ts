/**
 * decK-style configs (issue 16): several files (`-c a.yml -c b.yml`, `-c DIR`, files as arguments) merged as decK
 * merges them, golden diagnostics naming the file and line each problem comes from, every problem of a file with
 * many mistakes in one run, Kong entities refused with a reason, `validate` writing nothing, and every CLI
 * argument error answered with one usage line and exit status 2.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { loadConfigTexts } from '../../src/config/validate.js'
import { readConfigTexts } from '../../src/config/files.js'
import { ConfigError, formatDiagnostics } from '../../src/config/diagnostic.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { loadExtensions } from '../../src/extensions/registry.js'

const ROOT = resolve(import.meta.dirname, '../..')
let tmp: string
let seq = 0

beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'certbound-multi-')) })
afterAll(() => { rmSync(tmp, { recursive: true, force: true }) })

function dir (files: Record<string, string>): string {
  const d = join(tmp, `d${++seq}`)
  mkdirSync(d, { recursive: true })
  for (const [n, t] of Object.entries(files)) { mkdirSync(join(d, n, '..'), { recursive: true }); writeFileSync(join(d, n), t) }
  return d
}

async function load (paths: string[]) {
  const extensions = await loadExtensions()
  return loadConfigTexts(readConfigTexts(paths), { plugins: await loadPlugins(), env: {}, sections: new Map(extensions.map(e => [e.section, e.schema])) })
}

/** The formatted report, with paths relative to `base`. */
async function report (paths: string[], base: string): Promise<string> {
  try { await load(paths) } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return formatDiagnostics((e as ConfigError).files, (e as ConfigError).diagnostics, base)
  }
  throw new Error('the config loaded')
}

const GATEWAY = `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
`
const ORDERS = `_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
`
const PLUGINS = `_format_version: "3.0"
plugins:
  - name: request-termination
    route: orders-route
    config: { status_code: 200, message: from another file }
consumers:
  - username: alice
    acls: [{ group: gold }]
`

describe('several files merged as decK merges them', () => {
  it('-c a -c b -c c: lists concatenated; a top-level plugin references a route in another file', async () => {
    const d = dir({ 'a.yml': GATEWAY, 'b.yml': ORDERS, 'c.yml': PLUGINS })
    const cfg = await load([join(d, 'a.yml'), join(d, 'b.yml'), join(d, 'c.yml')])
    expect(cfg.files.map(f => relative(d, f))).toEqual(['a.yml', 'b.yml', 'c.yml'])
    expect(cfg.routes.map(r => r.name)).toEqual(['orders-route'])
    expect(cfg.routes[0].plugins.map(p => p.def.name)).toEqual(['request-termination'])
    expect(cfg.consumers.map(c => [c.username, c.groups])).toEqual([['alice', ['gold']]])
  })

  it('-c DIR: every *.yml and *.yaml in name order, hidden files and other extensions skipped', async () => {
    const d = dir({ '10-gateway.yml': GATEWAY, '20-orders.yaml': ORDERS, '30-plugins.yml': PLUGINS, '.swap.yml': 'not: [valid', 'notes.txt': 'x: [' })
    const cfg = await load([d])
    expect(cfg.files.map(f => relative(d, f))).toEqual(['10-gateway.yml', '20-orders.yaml', '30-plugins.yml'])
    expect(cfg.routes[0].plugins).toHaveLength(1)
  })

  it('relative paths resolve against the file that holds them', async () => {
    const d = dir({ 'base/a.yml': GATEWAY + '  trusted_certificates: certs/ca.pem\n', 'b.yml': ORDERS })
    expect(await report([join(d, 'base/a.yml'), join(d, 'b.yml')], d)).toBe([
      'base/a.yml:5:25  CB_CFG_FILE  gateway.trusted_certificates',
      '    cannot read certs/ca.pem: ENOENT (paths are resolved relative to the config file)',
      '1 error in base/a.yml, b.yml; nothing was started',
    ].join('\n'))
  })

  it('golden: names unique across files, _format_version agrees, a section in one file only, every file named', async () => {
    const d = dir({
      'a.yml': GATEWAY + ORDERS.replace('_format_version: "3.0"\n', ''),
      'b.yml': `_format_version: "1.1"
gateway:
  log_level: debug
services:
  - name: orders
    url: http://127.0.0.1:9001
    routes:
      - name: orders-route
        paths: [/v2]
consumers:
  - username: alice
  - username: alice
plugins:
  - name: acl
    route: order-route
    config: { allow: [gold] }
`,
    })
    expect(await report([join(d, 'a.yml'), join(d, 'b.yml')], d)).toBe([
      'b.yml:1:18  CB_CFG_CONFLICT  _format_version',
      '    _format_version is "1.1" here but "3.0" in a.yml: every file must agree',
      'b.yml:2:1  CB_CFG_DUPLICATE  gateway',
      '    gateway is already defined in a.yml: a section may appear in one file only (decK merges entity lists, not sections)',
      'b.yml:5:11  CB_CFG_DUPLICATE  services[0].name',
      '    service name "orders" is already used by services[0] in a.yml',
      'b.yml:8:15  CB_CFG_DUPLICATE  services[0].routes[0].name',
      '    route name "orders-route" is already used by services[0].routes[0] in a.yml',
      'b.yml:12:15  CB_CFG_DUPLICATE  consumers[1].username',
      '    consumer username "alice" is already used by consumers[0] in b.yml',
      'b.yml:15:12  CB_CFG_REFERENCE  plugins[0].route',
      '    route "order-route" does not exist; did you mean "orders-route"?',
      '6 errors in a.yml, b.yml; nothing was started',
    ].join('\n'))
  })

  it('unreadable arguments are all reported at once', async () => {
    const d = dir({ 'a.yml': GATEWAY, 'empty/README': 'no yaml here' })
    let err: ConfigError | undefined
    try { readConfigTexts([join(d, 'a.yml'), join(d, 'missing.yml'), join(d, 'empty')]) } catch (e) { err = e as ConfigError }
    expect(err?.diagnostics.map(x => [relative(d, x.file), x.code, x.message.replace(d + '/', '')])).toEqual([
      ['missing.yml', 'CB_CFG_FILE', 'cannot read missing.yml: ENOENT'],
      ['empty', 'CB_CFG_FILE', 'empty is a directory with no *.yml or *.yaml file'],
    ])
  })
})

describe('every problem at once', () => {
  it('golden: unknown keys, wrong types, a refused route\'s plugins, an unknown plugin and Kong entities in one run', async () => {
    const d = dir({
      'kong.yml': `_format_version: "3.0"
services:
  - name: billing
    url: http://127.0.0.1:9002
    retries: many
    routes:
      - name: billing-route
        path: [/billing]
        methods: GET
        plugins:
          - name: request-terminaton
          - name: require-scopes
            config: { scope: [a] }
plugins:
  - name: request-termination
    route: billing-route
    config: { status_code: "200", mesage: hi }
consumers:
  - username: alice
    keyauth_credentials: [{ key: secret }]
  - custom_id: 7
upstreams:
  - name: pool
`,
    })
    expect(await report([join(d, 'kong.yml')], d)).toBe([
      'kong.yml:5:14  CB_CFG_TYPE  services[0].retries',
      '    must be a number, got "many"',
      'kong.yml:8:9  CB_CFG_UNKNOWN_FIELD  services[0].routes[0].path',
      '    unknown field "path"; did you mean "paths"?',
      'kong.yml:9:18  CB_CFG_TYPE  services[0].routes[0].methods',
      '    must be a list, got "GET"',
      'kong.yml:11:19  CB_CFG_UNKNOWN_PLUGIN  services[0].routes[0].plugins[0].name',
      '    unknown plugin "request-terminaton"; did you mean "request-termination"?; available: acl, mtls-auth, openid-connect, rate-limiting, request-termination, request-transformer, require-scopes, tls-handshake-modifier, token-introspection',
      'kong.yml:13:21  CB_CFG_INVALID  services[0].routes[0].plugins[1].config.scopes',
      '    give scopes (all required) or any_of (at least one), or both',
      'kong.yml:13:23  CB_CFG_UNKNOWN_FIELD  services[0].routes[0].plugins[1].config.scope',
      '    unknown field "scope" for plugin "require-scopes"; did you mean "scopes"?',
      'kong.yml:17:28  CB_CFG_TYPE  plugins[0].config.status_code',
      '    must be a number, got "200"',
      'kong.yml:17:35  CB_CFG_UNKNOWN_FIELD  plugins[0].config.mesage',
      '    unknown field "mesage" for plugin "request-termination"; did you mean "message"?',
      'kong.yml:20:5  CB_CFG_UNSUPPORTED  consumers[0].keyauth_credentials',
      '    keyauth_credentials is not supported: key-auth is not implemented: certbound authenticates with client certificates and bound tokens',
      'kong.yml:21:16  CB_CFG_TYPE  consumers[1].custom_id',
      '    must be a string, got 7',
      'kong.yml:23:5  CB_CFG_UNSUPPORTED  upstreams[0]',
      '    Kong\'s upstreams entity is not supported: load balancing over targets is not implemented: point the service\'s url (or host/port) at one upstream, or at a load balancer',
      '11 errors in kong.yml; nothing was started',
    ].join('\n'))
  })

  it('a refused value is reported once, not also as the key it leaves missing', async () => {
    const d = dir({
      'kong.yml': `_format_version: "3.0"
services:
  - name: orders
    url: 5
    routes:
      - name: r
        paths: 7
consumers:
  - custom_id: 7
`,
    })
    expect((await report([join(d, 'kong.yml')], d)).split('\n').filter(l => !l.startsWith('    '))).toEqual([
      'kong.yml:4:10  CB_CFG_TYPE  services[0].url',
      'kong.yml:7:16  CB_CFG_TYPE  services[0].routes[0].paths',
      'kong.yml:9:16  CB_CFG_TYPE  consumers[0].custom_id',
      '3 errors in kong.yml; nothing was started',
    ])
  })

  it('a route that needs a client certificate with no TLS listener is a load error, not a silent 401', async () => {
    const { Gateway } = await import('../../src/gateway.js')
    const d = dir({ 'kong.yml': ORDERS.replace('paths: [/orders]', 'paths: [/orders]\n        plugins:\n          - name: mtls-auth') })
    let err: ConfigError | undefined
    try { await Gateway.check(join(d, 'kong.yml'), { dryRun: true }) } catch (e) { err = e as ConfigError }
    expect(err?.diagnostics.map(x => [x.line, x.col, x.code, x.path])).toEqual([[9, 19, 'CB_CFG_NO_TLS_LISTENER', 'services[0].routes[0].plugins[0].name']])
    expect(err?.diagnostics[0].message).toContain('no listener has tls')
  })
})

describe('CLI', () => {
  function cli (args: string[], opts: { cwd?: string } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
    return new Promise((res) => {
      execFile(process.execPath, [join(ROOT, 'bin/certbound.js'), ...args], { cwd: opts.cwd ?? ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
        res({ code: err === null ? 0 : (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1), stdout, stderr })
      })
    })
  }

  it('validate takes -c repeated, -c DIR and files as arguments alike', async () => {
    const d = dir({ 'a.yml': GATEWAY, 'b.yml': ORDERS, 'c.yml': PLUGINS })
    const runs = await Promise.all([
      cli(['validate', '-c', 'a.yml', '-c', 'b.yml', '-c', 'c.yml'], { cwd: d }),
      cli(['validate', '-c', 'a.yml', 'b.yml', 'c.yml'], { cwd: d }),
      cli(['validate', '-c', '.'], { cwd: d }),
    ])
    const hashes = runs.map((r) => {
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/\(3 files\): OK — 1 listener\(s\), 1 service\(s\), 1 route\(s\), 1 plugin\(s\), 1 consumer\(s\); config hash [0-9a-f]{16}\n$/)
      return /hash ([0-9a-f]+)/.exec(r.stdout)![1]
    })
    expect(new Set(hashes).size).toBe(1)
  })

  it('a Kong file without a gateway: section validates, with a note that it would listen on plain HTTP', async () => {
    const d = dir({ 'kong.yml': ORDERS })
    const r = await cli(['validate', '-c', 'kong.yml'], { cwd: d })
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('certbound: note: no gateway.listen, so the gateway listens on 127.0.0.1:8000 over plain HTTP; add a gateway: section with listen[].tls for HTTPS and client certificates\n')
  })

  it('argument errors: one usage line on stderr, exit 2, no stack trace, for every command', async () => {
    const d = dir({ 'file.txt': 'x' })
    const cases: Array<[string[], string]> = [
      [['validate', '--foo'], 'certbound validate: unknown option \'--foo\' (usage: certbound validate [-c FILE|DIR]... [FILE|DIR]...)'],
      [['validate', '-c'], 'certbound validate: option \'-c, --config <value>\' argument missing (usage: certbound validate [-c FILE|DIR]... [FILE|DIR]...)'],
      [['start', '--bogus'], 'certbound start: unknown option \'--bogus\' (usage: certbound start [-c FILE|DIR]... [--init-certs] [--no-watch])'],
      [['start', '--config'], 'certbound start: option \'-c, --config <value>\' argument missing (usage: certbound start [-c FILE|DIR]... [--init-certs] [--no-watch])'],
      [['certs'], 'certbound certs: --out DIR is required (usage: certbound certs --out DIR [--hosts localhost,127.0.0.1])'],
      [['certs', '--out', join(d, 'file.txt')], `certbound certs: --out ${join(d, 'file.txt')} exists and is not a directory (usage: certbound certs --out DIR [--hosts localhost,127.0.0.1])`],
      [['certs', '--out', d, '--hosts', ','], 'certbound certs: --hosts needs at least one name (usage: certbound certs --out DIR [--hosts localhost,127.0.0.1])'],
      [['certs', '--out', d, 'extra'], 'certbound certs: unexpected argument "extra" (usage: certbound certs --out DIR [--hosts localhost,127.0.0.1])'],
      [['hash-secret', 'hunter2'], 'certbound hash-secret: unexpected argument "hunter2": the secret is read from stdin, never from the command line (usage: echo -n "$SECRET" | certbound hash-secret)'],
      [['dpop', '--bogus'], 'certbound dpop: unknown option \'--bogus\' (usage: certbound dpop --new-key KEY.pem | --key KEY.pem --url URL [--method M] [--token T] [--nonce N])'],
      [['dpop', '--key', 'k.pem'], 'certbound dpop: give --new-key FILE, or --key FILE and --url URL (usage: certbound dpop --new-key KEY.pem | --key KEY.pem --url URL [--method M] [--token T] [--nonce N])'],
      [['frobnicate'], 'certbound: unknown command "frobnicate" (usage: certbound <start|validate|certs|hash-secret|dpop> [options] (certbound --help))'],
    ]
    const results = await Promise.all(cases.map(([args]) => cli(args)))
    results.forEach((r, i) => {
      expect(r.code, cases[i][0].join(' ')).toBe(2)
      expect(r.stderr, cases[i][0].join(' ')).toBe(cases[i][1] + '\n')
      expect(r.stdout).toBe('')
    })
  })

  it('certs says what it kept and how to regenerate', async () => {
    const out = join(tmp, `pki${++seq}`)
    const first = await cli(['certs', '--out', out])
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/^wrote ca\.crt, ca\.key, server\.crt, server\.key, client1\.crt, client1\.key, client2\.crt, client2\.key in /)
    const again = await cli(['certs', '--out', out, '--hosts', 'gw.example'])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('wrote nothing in')
    expect(again.stdout).toContain('kept existing ca.crt/.key, server.crt/.key, client1.crt/.key, client2.crt/.key; server.crt keeps its old names, not --hosts gw.example. To regenerate one, delete its .crt and .key and run again')
  })

  it('validate leaves the tree byte-identical (the authorization server\'s state_dir is not created)', async () => {
    const d = dir({
      'gateway.yml': `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
authorization_server:
  issuer: https://127.0.0.1:8443
  state_dir: state
  clients:
    - client_id: a
      client_secret_hash: "${'$'}{{ env "NOPE" }}"
`,
    })
    const snapshot = (): Record<string, string> => {
      const out: Record<string, string> = {}
      const walk = (p: string): void => {
        for (const n of readdirSync(p)) {
          const f = join(p, n)
          if (statSync(f).isDirectory()) { out[relative(d, f) + '/'] = ''; walk(f) } else out[relative(d, f)] = readFileSync(f, 'utf8') + String(statSync(f).mtimeMs)
        }
      }
      walk(d)
      return out
    }
    const before = snapshot()
    const bad = await cli(['validate', '-c', 'gateway.yml'], { cwd: d })
    expect(bad.code).toBe(1)
    writeFileSync(join(d, 'gateway.yml'), readFileSync(join(d, 'gateway.yml'), 'utf8').replace(/client_secret_hash: .*/, 'client_secret: a-long-enough-demo-secret\n      token_endpoint_auth_method: client_secret_basic'))
    const mid = snapshot()
    const ok = await cli(['validate', '-c', 'gateway.yml'], { cwd: d })
    expect(ok.stderr).toBe('')
    expect(ok.code).toBe(0)
    expect(snapshot()).toEqual(mid)
    expect(Object.keys(before)).toEqual(['gateway.yml'])
    expect(Object.keys(mid)).toEqual(['gateway.yml'])
  })
})
