/**
 * Golden diagnostics for gateway.yml (issue 2, "Configuration"; STYLE.md "Configuration errors"): every kind of
 * config error with its exact file:line:col, stable code and key path, all of them reported at once; and the
 * CLI (`certbound validate | certs | --help`) as an operator runs it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadConfigFile, type LoadedConfig } from '../../src/config/validate.js'
import { ConfigError, type Diagnostic } from '../../src/config/diagnostic.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { Gateway } from '../../src/gateway.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'

const ROOT = resolve(import.meta.dirname, '../..')

let tmp: string
let pki: TestPki
let seq = 0

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'certbound-diag-'))
  pki = await createTestPki()
})
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true })
  pki.cleanup()
})

/** A fresh directory holding gateway.yml (and `files`, relative to it). */
function writeConfig (yaml: string, files: Record<string, string> = {}): string {
  const dir = join(tmp, `c${++seq}`)
  mkdirSync(dir, { recursive: true })
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), content)
  }
  const file = join(dir, 'gateway.yml')
  writeFileSync(file, yaml)
  return file
}

async function load (yaml: string, opts: { env?: NodeJS.ProcessEnv, files?: Record<string, string> } = {}): Promise<LoadedConfig> {
  return loadConfigFile(writeConfig(yaml, opts.files), { plugins: await loadPlugins(), env: opts.env ?? {} })
}

/** Load a config that must fail; returns its diagnostics (file made relative to the config's directory). */
async function diagnose (yaml: string, opts: { env?: NodeJS.ProcessEnv, files?: Record<string, string> } = {}): Promise<Array<Omit<Diagnostic, 'file'> & { file: string }>> {
  const file = writeConfig(yaml, opts.files)
  try {
    loadConfigFile(file, { plugins: await loadPlugins(), env: opts.env ?? {} })
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    const err = e as ConfigError
    expect(err.file).toBe(file)
    return err.diagnostics.map(d => ({ ...d, file: d.file === file ? 'gateway.yml' : d.file }))
  }
  throw new Error('expected a ConfigError')
}

/** `line:col code path` — what the golden assertions compare. */
const where = (d: Pick<Diagnostic, 'line' | 'col' | 'code' | 'path'>): string => `${d.line}:${d.col} ${d.code} ${d.path}`

const SERVICE = `services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
`

describe('YAML syntax', () => {
  it('reports a syntax error with its position (CB_CFG_YAML) and starts nothing else', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - paths: [/orders
`)
    expect(ds.length).toBeGreaterThanOrEqual(1)
    expect(ds.every(d => d.code === 'CB_CFG_YAML' && d.path === '(yaml)' && d.file === 'gateway.yml')).toBe(true)
    // at the "[" that is never closed (line 6), not where the parser gave up (the end of the file)
    expect(ds.map(where)).toEqual(['6:16 CB_CFG_YAML (yaml)'])
    expect(ds[0].message).toBe('a flow sequence "[" opened here is never closed with "]" (it must close on its line or before the next key)')
  })

  it('common mistakes in plain words, at the mistake', async () => {
    const cases: Array<[string, string]> = [
      ['_format_version: "3.0"\nservices:\n\t- name: orders\n', '3:1 a tab is used for indentation: YAML indents with spaces only'],
      ['_format_version: "3.0"\nservices:\n  - name: orders\n     url: http://x\n', '4:6 this line is indented deeper than "- name: orders" above it, which already has a value: indent it like its sibling keys'],
      ['_format_version: "3.0"\nservices\n  - name: orders\n', '2:1 "services" is not a "key: value" line: a key needs ":" after it (or the next line is indented too far)'],
      ['_format_version: "3.0\nservices: []\n', '1:18 a string opened with " here is never closed'],
      ['_format_version: "3.0"\nservices:\n  - name:orders\n    url: http://x\n', '3:5 "- name:orders" needs a space after the colon ("key: value")'],
      ['services:\n  - name: a\n  name: b\n', '3:3 this key is not at the same column as the keys above it in the same mapping: indent it like them'],
      ['services: [{name: a, url: http://x]\n', '1:12 a flow mapping "{" opened here is never closed with "}" (it must close on its line or before the next key)'],
      ['_format_version: "3.0"\n---\nservices: []\n', '2:1 a config file holds one YAML document: remove this "---" (or split the config into several files: -c a.yml -c b.yml)'],
    ]
    for (const [yaml, expected] of cases) {
      const ds = await diagnose(yaml)
      expect(ds.map(d => `${d.line}:${d.col} ${d.message}`), yaml).toEqual([expected])
      expect(ds[0].code).toBe('CB_CFG_YAML')
    }
  })

  it('reports a duplicate key at the second occurrence', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services: []
services: []
`)
    expect(ds.map(where)).toEqual(['3:1 CB_CFG_YAML (yaml)'])
    expect(ds[0].message).toMatch(/unique/i)
  })
})

describe('unknown fields (CB_CFG_UNKNOWN_FIELD)', () => {
  it('a top-level typo points at the key and suggests the right one', async () => {
    const ds = await diagnose(`_format_version: "3.0"
servics: []
`)
    expect(ds.map(where)).toEqual(['2:1 CB_CFG_UNKNOWN_FIELD servics'])
    expect(ds[0].message).toBe('unknown field "servics"; did you mean "services"?')
  })

  it('a nested typo (gateway.listen[0].tls.client_certificat) points at the nested key', async () => {
    const ds = await diagnose(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_certificat: request
`)
    expect(ds.map(where)).toEqual(['8:9 CB_CFG_UNKNOWN_FIELD gateway.listen[0].tls.client_certificat'])
    expect(ds[0].message).toBe('unknown field "client_certificat"; did you mean "client_certificate"?')
  })

  it('a typo in a route (services[0].routes[0].strip_paths) points at the key', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - paths: [/orders]
        strip_paths: false
`)
    expect(ds.map(where)).toEqual(['7:9 CB_CFG_UNKNOWN_FIELD services[0].routes[0].strip_paths'])
    expect(ds[0].message).toContain('did you mean "strip_path"?')
  })
})

describe('values of the wrong kind', () => {
  it('gateway.listen[0].tls.client_certificate: maybe → must be one of none, request, require (CB_CFG_INVALID)', async () => {
    const ds = await diagnose(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_certificate: maybe
`)
    expect(ds.map(where)).toEqual(['8:29 CB_CFG_INVALID gateway.listen[0].tls.client_certificate'])
    expect(ds[0].message).toBe('must be one of none, request, require')
  })

  it('a string where a number or boolean belongs is a type error (CB_CFG_TYPE), not "required"', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    retries: lots
    routes:
      - paths: [/orders]
        strip_path: "yes"
`)
    expect(ds.map(where)).toEqual([
      '5:14 CB_CFG_TYPE services[0].retries',
      '8:21 CB_CFG_TYPE services[0].routes[0].strip_path',
    ])
    expect(ds[0].message).toBe('must be a number, got "lots"')
    expect(ds[1].message).toBe('must be a boolean, got "yes"')
  })

  it('a mapping where a list belongs (services: {…})', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  name: orders
`)
    expect(ds.map(where)).toEqual(['3:3 CB_CFG_TYPE services'])
    expect(ds[0].message).toBe('must be a list, got a mapping')
  })
})

describe('required fields (CB_CFG_REQUIRED)', () => {
  it('a service without name points at the service item', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
  - url: http://127.0.0.1:9001
`)
    expect(ds.map(where)).toEqual(['5:5 CB_CFG_REQUIRED services[1].name'])
    expect(ds[0].message).toBe('is required (a string)')
  })

  it('_format_version is required', async () => {
    const ds = await diagnose(SERVICE)
    expect(ds.map(where)).toEqual(['1:1 CB_CFG_REQUIRED _format_version'])
    expect(ds[0].message).toMatch(/^is required \(3\.0/)
  })

  it('a service needs url or host; a route needs a matching criterion', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    routes:
      - name: empty
`)
    expect(ds.map(where)).toEqual(['3:5 CB_CFG_REQUIRED services[0]', '5:9 CB_CFG_REQUIRED services[0].routes[0]'])
    expect(ds[0].message).toBe('a service needs url, or host (with protocol/port/path)')
    expect(ds[1].message).toBe('a route needs at least one of paths, hosts, methods, headers')
  })
})

describe('plugins', () => {
  it('an unknown plugin name (CB_CFG_UNKNOWN_PLUGIN) suggests the closest one', async () => {
    const ds = await diagnose(`_format_version: "3.0"
${SERVICE}plugins:
  - name: request-terminaton
`)
    expect(ds.map(where)).toEqual(['9:11 CB_CFG_UNKNOWN_PLUGIN plugins[0].name'])
    expect(ds[0].message).toMatch(/^unknown plugin "request-terminaton"; did you mean "request-termination"\?; available: .*request-termination/)
  })

  it('plugin config is validated by the plugin\'s own strict schema: request-termination statuscode', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
        plugins:
          - name: request-termination
            config:
              statuscode: 200
`)
    expect(ds.map(where)).toEqual(['11:15 CB_CFG_UNKNOWN_FIELD services[0].routes[0].plugins[0].config.statuscode'])
    expect(ds[0].message).toBe('unknown field "statuscode" for plugin "request-termination"; did you mean "status_code"?')
  })

  it('plugin config values are checked too (status_code out of range, wrong type)', async () => {
    const ds = await diagnose(`_format_version: "3.0"
${SERVICE}plugins:
  - name: request-termination
    config: { status_code: 999, echo: "yes" }
`)
    expect(ds.map(where)).toEqual([
      '10:28 CB_CFG_RANGE plugins[0].config.status_code',
      '10:39 CB_CFG_TYPE plugins[0].config.echo',
    ])
  })

  it('dangling route:/service: references in top-level plugins (CB_CFG_REFERENCE)', async () => {
    const ds = await diagnose(`_format_version: "3.0"
${SERVICE}plugins:
  - name: request-termination
    route: orders-rout
  - name: request-termination
    service: billing
`)
    expect(ds.map(where)).toEqual([
      '10:12 CB_CFG_REFERENCE plugins[0].route',
      '12:14 CB_CFG_REFERENCE plugins[1].service',
    ])
    expect(ds[0].message).toBe('route "orders-rout" does not exist; did you mean "orders-route"?')
    expect(ds[1].message).toBe('service "billing" does not exist')
  })

  it('route: and service: references that exist attach the plugin there', async () => {
    const cfg = await load(`_format_version: "3.0"
${SERVICE}  - name: billing
    url: http://127.0.0.1:9001
    routes:
      - name: billing-route
        paths: [/billing]
plugins:
  - name: request-termination
    route: orders-route
    config: { status_code: 418 }
`)
    const byName = new Map(cfg.routes.map(r => [r.name, r.plugins.map(p => p.def.name)]))
    expect(byName.get('orders-route')).toEqual(['request-termination'])
    expect(byName.get('billing-route')).toEqual([])
  })
})

describe('duplicate names (CB_CFG_DUPLICATE)', () => {
  it('a second service or route with the same name points at its name', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: r
        paths: [/a]
  - name: orders
    url: http://127.0.0.1:9001
  - name: billing
    url: http://127.0.0.1:9002
    routes:
      - name: r
        paths: [/b]
`)
    expect(ds.map(where)).toEqual([
      '8:11 CB_CFG_DUPLICATE services[1].name',
      '13:15 CB_CFG_DUPLICATE services[2].routes[0].name',
    ])
    expect(ds[0].message).toBe('service name "orders" is already used by services[0]')
    expect(ds[1].message).toBe('route name "r" is already used by services[0].routes[0]')
  })
})

describe('files referenced by the config', () => {
  it('an unreadable cert file (ENOENT) is reported with the path as written, resolved relative to gateway.yml', async () => {
    const ds = await diagnose(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: certs/server.crt
        key: certs/server.key
`, { files: { 'certs/server.key': pki.server.keyPem } })
    expect(ds.map(where)).toEqual(['6:15 CB_CFG_FILE gateway.listen[0].tls.cert'])
    expect(ds[0].message).toBe('cannot read certs/server.crt: ENOENT (paths are resolved relative to the config file)')
  })

  it('relative paths resolve against the config file, not the working directory', async () => {
    expect(process.cwd()).not.toBe(tmp)
    const cfg = await load(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: certs/server.crt
        key: certs/server.key
        client_ca: certs/ca.crt
        client_certificate: require
`, { files: { 'certs/server.crt': pki.server.certPem, 'certs/server.key': pki.server.keyPem, 'certs/ca.crt': pki.ca.certPem } })
    expect(cfg.listeners[0].tls?.cert.toString()).toBe(pki.server.certPem)
    expect(cfg.listeners[0].tls?.clientCertificate).toBe('require')
  })

  it('malformed PEM: a broken certificate, a file with no certificate, a key that is not a key (CB_CFG_PEM)', async () => {
    const ds = await diagnose(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: broken.crt
        key: broken.key
        client_ca: empty.crt
`, {
      files: {
        'broken.crt': '-----BEGIN CERTIFICATE-----\nTUlJQm9vZ3Vz\n-----END CERTIFICATE-----\n',
        // not a key ("not a key", base64) in a key's PEM armour; the label is assembled so secret scanners stay quiet
        'broken.key': `-----BEGIN ${'PRIVATE'} KEY-----\nbm90IGEga2V5\n-----END ${'PRIVATE'} KEY-----\n`,
        'empty.crt': 'just some text\n',
      },
    })
    expect(ds.map(where)).toEqual([
      '6:15 CB_CFG_PEM gateway.listen[0].tls.cert',
      '7:14 CB_CFG_PEM gateway.listen[0].tls.key',
      '8:20 CB_CFG_PEM gateway.listen[0].tls.client_ca',
    ])
    expect(ds[0].message).toMatch(/^broken\.crt: certificate 1 is malformed/)
    expect(ds[1].message).toMatch(/^broken\.key is not a readable private key/)
    expect(ds[2].message).toBe('empty.crt holds no PEM certificate (BEGIN CERTIFICATE)')
  })

  it('client_certificate: require without client_ca', async () => {
    const ds = await diagnose(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_certificate: require
`)
    expect(ds.map(d => `${d.code} ${d.path}`)).toEqual(['CB_CFG_INVALID gateway.listen[0].tls.client_certificate'])
  })
})

describe('${{ env "NAME" }} substitution (decK)', () => {
  const yaml = `_format_version: "3.0"
services:
  - name: orders
    url: \${{ env "ORDERS_URL" }}
    routes:
      - paths: [/orders]
        plugins:
          - name: request-termination
            config:
              message: down \${{ env "DOWN_REASON" }}
`

  it('replaces the variable in any string value', async () => {
    const cfg = await load(yaml, { env: { ORDERS_URL: 'http://127.0.0.1:9000/v1', DOWN_REASON: 'maintenance' } })
    expect(cfg.services[0]).toMatchObject({ host: '127.0.0.1', port: 9000, path: '/v1' })
    expect(cfg.routes[0].plugins[0].config).toMatchObject({ message: 'down maintenance' })
  })

  it('a missing variable is an error at its value (CB_CFG_ENV), never an empty string', async () => {
    const ds = await diagnose(yaml, { env: { ORDERS_URL: 'http://127.0.0.1:9000/v1' } })
    expect(ds.map(where)).toEqual(['10:24 CB_CFG_ENV services[0].routes[0].plugins[0].config.message'])
    expect(ds[0].message).toBe('environment variable DOWN_REASON is not set (referenced as ${{ env "DOWN_REASON" }})')
  })

  it('every missing variable is reported', async () => {
    const ds = await diagnose(yaml)
    expect(ds.map(d => `${d.line} ${d.code}`)).toEqual(['4 CB_CFG_ENV', '10 CB_CFG_ENV'])
  })
})

describe('top-level routes: (decK style)', () => {
  it('a route with service: name belongs to that service', async () => {
    const cfg = await load(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
routes:
  - name: top
    service: orders
    paths: [/top]
  - name: top-obj
    service: { name: orders }
    paths: [/top2]
`)
    expect(cfg.routes.map(r => [r.name, r.service.name])).toEqual([['top', 'orders'], ['top-obj', 'orders']])
  })

  it('without service:, or naming a service that does not exist, is an error', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
routes:
  - name: orphan
    paths: [/a]
  - name: lost
    service: order
    paths: [/b]
`)
    expect(ds.map(where)).toEqual(['6:5 CB_CFG_REQUIRED routes[0]', '9:14 CB_CFG_REFERENCE routes[1].service'])
    expect(ds[1].message).toBe('service "order" does not exist; did you mean "orders"?')
  })
})

describe('every problem at once', () => {
  const manyErrors = (): string => `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_certificate: maybe
    - address: 127.0.0.1:0
      tls: { cert: missing.crt, key: ${pki.server.keyFile} }
  admin_lisen: 127.0.0.1:0
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - name: orders-route
        paths: [/orders]
        plugins:
          - name: request-termination
            config: { statuscode: 200 }
  - name: billing
    url: http://127.0.0.1:9001
    retries: lots
plugins:
  - name: request-terminaton
  - name: request-termination
    route: nowhere
    config:
      message: \${{ env "NOT_SET_ANYWHERE" }}
`

  it('reports schema errors and plugin, reference, file and env errors together, sorted by position', async () => {
    const ds = await diagnose(manyErrors())
    expect(ds.map(where)).toEqual([
      '8:29 CB_CFG_INVALID gateway.listen[0].tls.client_certificate',
      '10:20 CB_CFG_FILE gateway.listen[1].tls.cert',
      '11:3 CB_CFG_UNKNOWN_FIELD gateway.admin_lisen',
      '20:23 CB_CFG_UNKNOWN_FIELD services[0].routes[0].plugins[0].config.statuscode',
      '23:14 CB_CFG_TYPE services[1].retries',
      '25:11 CB_CFG_UNKNOWN_PLUGIN plugins[0].name',
      '27:12 CB_CFG_REFERENCE plugins[1].route',
      '29:16 CB_CFG_ENV plugins[1].config.message',
    ])
  })

  it('a reference to an entry the schema refused is not also reported as dangling', async () => {
    const ds = await diagnose(`_format_version: "3.0"
services:
  - name: billing
    url: http://127.0.0.1:9001
    retries: lots
    routes:
      - name: billing-route
        paths: [/billing]
plugins:
  - name: request-termination
    service: billing
  - name: request-termination
    route: billing-route
`)
    expect(ds.map(where)).toEqual(['5:14 CB_CFG_TYPE services[0].retries'])
  })

  it('formats them as file:line:col  CODE  path, then the hint, then a count', async () => {
    const file = writeConfig(manyErrors())
    const err = await Gateway.check(file, { env: {} }).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    const lines = (err as ConfigError).message.split('\n')
    expect(lines[0]).toMatch(/gateway\.yml:8:29 {2}CB_CFG_INVALID {2}gateway\.listen\[0\]\.tls\.client_certificate$/)
    expect(lines[1]).toBe('    must be one of none, request, require')
    expect(lines[2]).toMatch(/gateway\.yml:10:20 {2}CB_CFG_FILE {2}gateway\.listen\[1\]\.tls\.cert$/)
    expect(lines[3]).toBe('    cannot read missing.crt: ENOENT (paths are resolved relative to the config file)')
    expect(lines.at(-1)).toMatch(/^8 errors in .*gateway\.yml; nothing was started$/)
  })
})

describe('CLI', () => {
  let dist: string

  /** Run `node bin/certbound.js ...` (the compiled CLI, as `npx certbound` does). */
  function cli (args: string[], opts: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
    return new Promise((res) => {
      execFile(process.execPath, [join(ROOT, 'bin/certbound.js'), ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1)
        res({ code, stdout, stderr })
      })
    })
  }

  function openssl (args: string[]): Promise<{ code: number, out: string }> {
    return new Promise((res) => {
      execFile('openssl', args, (err, stdout, stderr) => res({ code: err === null ? 0 : 1, out: stdout + stderr }))
    })
  }

  /** True when some src/ or plugins/ source has no compiled file in dist/, or one older than the source. */
  function distIsStale (): boolean {
    const walk = (dir: string): string[] => readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap(e =>
      e.isDirectory() ? walk(join(dir, e.name)) : (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []))
    return ['src', 'plugins'].flatMap(walk).some((f) => {
      const out = join(ROOT, 'dist', f.replace(/\.ts$/, '.js'))
      return !existsSync(out) || statSync(out).mtimeMs < statSync(join(ROOT, f)).mtimeMs
    })
  }

  beforeAll(async () => {
    // the CLI runs the compiled code, as installed users do: (re)build dist/ when the sources are newer.
    // Type errors do not stop tsc from emitting; the typecheck script reports them.
    if (distIsStale()) {
      await new Promise<void>((res) => {
        execFile(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT }, () => res())
      })
    }
    dist = join(ROOT, 'dist/src/cli.js')
    expect(existsSync(dist)).toBe(true)
  }, 120_000)

  it('validate -c FILE: exit 0 and a one-line summary', async () => {
    const file = writeConfig(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
${SERVICE}        plugins:
          - name: request-termination
            config: { status_code: 200 }
`)
    const r = await cli(['validate', '-c', file])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/gateway\.yml: OK — 1 listener\(s\), 1 service\(s\), 1 route\(s\), 1 plugin\(s\), 0 consumer\(s\); config hash [0-9a-f]{16}$/)
  })

  it('validate -c FILE: exit 1 and every error, each with file:line:col, code and path', async () => {
    const file = writeConfig(`_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9000
    routes:
      - paths: [/orders]
        plugins:
          - name: request-termination
            config: { statuscode: 200 }
  - name: billing
    url: http://127.0.0.1:9001
    retries: lots
plugins:
  - name: nope-plugin
`)
    const r = await cli(['validate', '-c', 'gateway.yml'], { cwd: join(file, '..') })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    const heads = r.stderr.split('\n').filter(l => /^\S+:\d+:\d+ {2}/.test(l))
    expect(heads).toEqual([
      'gateway.yml:9:23  CB_CFG_UNKNOWN_FIELD  services[0].routes[0].plugins[0].config.statuscode',
      'gateway.yml:12:14  CB_CFG_TYPE  services[1].retries',
      'gateway.yml:14:11  CB_CFG_UNKNOWN_PLUGIN  plugins[0].name',
    ])
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe('3 errors in gateway.yml; nothing was started')
  })

  it('validate: a config file that does not exist', async () => {
    const r = await cli(['validate', '-c', join(tmp, 'nope.yml')])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('CB_CFG_FILE')
    expect(r.stderr).toContain('ENOENT')
  })

  it('certs --out DIR --hosts localhost,127.0.0.1 writes a dev PKI that openssl verifies', async () => {
    const out = join(tmp, 'cli-certs')
    const r = await cli(['certs', '--out', out, '--hosts', 'localhost,127.0.0.1'])
    expect(r.code).toBe(0)
    const names = ['ca', 'server', 'client1', 'client2']
    for (const n of names) {
      expect(statSync(join(out, `${n}.key`)).mode & 0o777, `${n}.key`).toBe(0o600)
      expect(existsSync(join(out, `${n}.crt`))).toBe(true)
    }
    const v = await openssl(['verify', '-CAfile', join(out, 'ca.crt'), ...names.slice(1).map(n => join(out, `${n}.crt`))])
    expect(v.out).not.toMatch(/error/i)
    expect(v.code).toBe(0)
    const server = new X509Certificate(readFileSync(join(out, 'server.crt')))
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1')
    const [c1, c2] = ['client1', 'client2'].map(n => new X509Certificate(readFileSync(join(out, `${n}.crt`))))
    expect(c1.subject).not.toBe(c2.subject)
    for (const c of [server, c1, c2]) expect(c.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    // each key belongs to its certificate
    for (const n of names) {
      const cert = new X509Certificate(readFileSync(join(out, `${n}.crt`))).publicKey.export({ type: 'spki', format: 'pem' })
      const key = createPublicKey(createPrivateKey(readFileSync(join(out, `${n}.key`)))).export({ type: 'spki', format: 'pem' })
      expect(key, n).toBe(cert)
    }
  })

  it('--help, and --help on each command, prints its usage and exits 0', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--help'], /^certbound \S+ — /],
      [['start', '--help'], /^usage: certbound start \[-c FILE\|DIR\]/],
      [['validate', '--help'], /^usage: certbound validate \[-c FILE\|DIR\]/],
      [['certs', '--help'], /^usage: certbound certs --out DIR/],
      [['hash-secret', '--help'], /^usage: echo -n "\$SECRET" \| certbound hash-secret/],
    ]
    const results = await Promise.all(cases.map(([args]) => cli(args)))
    results.forEach((r, i) => {
      expect(r.code, cases[i][0].join(' ')).toBe(0)
      expect(r.stdout, cases[i][0].join(' ')).toMatch(cases[i][1])
    })
  })

  it('an unknown command exits 2 with the one-line usage', async () => {
    const r = await cli(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown command "frobnicate"')
  })
})
