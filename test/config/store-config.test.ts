/**
 * gateway.store diagnostics (issue 13): every problem with file:line:col, code and key path, all at once; the
 * settings that cannot be shared across nodes refused with the reason; credentials from ${{ env }}; a reload
 * cannot switch the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfigFile } from '../../src/config/validate.js'
import { ConfigError, type Diagnostic } from '../../src/config/diagnostic.js'
import { loadPlugins } from '../../src/plugins-registry.js'
import { Gateway } from '../../src/gateway.js'
import { createLogger } from '../../src/observability/logger.js'

let dir: string
let seq = 0
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'cb-store-cfg-')) })
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

function write (yaml: string): string {
  const f = join(dir, `g${++seq}.yml`)
  writeFileSync(f, yaml)
  return f
}

async function diagnose (yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Array<Pick<Diagnostic, 'line' | 'col' | 'code' | 'path'> & { message: string }>> {
  try {
    loadConfigFile(write(yaml), { plugins: await loadPlugins(), env })
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError)
    return (e as ConfigError).diagnostics.map(d => ({ line: d.line, col: d.col, code: d.code, path: d.path, message: d.message }))
  }
  throw new Error('the config was accepted')
}

const AS = `authorization_server:
  issuer: https://localhost:8443
  clients: []
`

describe('gateway.store: load-time diagnostics', () => {
  it('reports every problem at once, each at its position', async () => {
    const d = await diagnose(`_format_version: "3.0"
gateway:
  store:
    backend: memory
    redis:
      url: http://redis:6379/x?tls=1
      username: u
      password: p
      key_prefix: "has space"
      command_timeout: 0
    resync_interval: 20000
`)
    expect(d.map(x => `${x.line}:${x.col} ${x.code} ${x.path}`)).toEqual([
      '6:7 CB_CFG_INVALID gateway.store.redis',
      '6:12 CB_CFG_INVALID gateway.store.redis.url',
      '9:19 CB_CFG_INVALID gateway.store.redis.key_prefix',
      '10:24 CB_CFG_RANGE gateway.store.redis.command_timeout',
      '11:22 CB_CFG_INVALID gateway.store.resync_interval',
    ])
    expect(d.find(x => x.path === 'gateway.store.redis')?.message).toMatch(/backend is memory/)
    expect(d.find(x => x.path === 'gateway.store.redis.url')?.message).toMatch(/redis:\/\/ or rediss:\/\//)
    expect(d.every(x => x.line > 1)).toBe(true)
  })

  it('credentials in the URL and in username/password: refused; redis without url: refused; resync ≥ replica_max_age: refused', async () => {
    const d = await diagnose(`_format_version: "3.0"
gateway:
  store:
    redis:
      url: redis://user:pw@127.0.0.1:6379/0
      password: other
    replica_max_age: 1000
    resync_interval: 1000
`)
    expect(d.map(x => x.path)).toEqual(expect.arrayContaining(['gateway.store.redis.password', 'gateway.store.resync_interval']))
    const e = await diagnose(`_format_version: "3.0"
gateway:
  store:
    backend: redis
`)
    expect(e.map(x => x.path)).toContain('gateway.store.redis')
  })

  it('max_keys bounds the memory backend only; below 1000 is refused', async () => {
    const d = await diagnose(`_format_version: "3.0"
gateway:
  store:
    redis:
      url: redis://127.0.0.1:6379/0
    max_keys: 500000
`)
    expect(d).toEqual([expect.objectContaining({ line: 6, path: 'gateway.store.max_keys', message: expect.stringMatching(/memory backend only/) })])
    const e = await diagnose(`_format_version: "3.0"
gateway:
  store:
    max_keys: 10
`)
    expect(e.map(x => x.path)).toEqual(['gateway.store.max_keys'])
  })

  it('redis + an authorization server that generates its keys needs gateway.store.secret (a private key is never in Redis in the clear)', async () => {
    const d = await diagnose(`_format_version: "3.0"
gateway:
  store:
    redis:
      url: redis://127.0.0.1:6379
${AS}`)
    const x = d.find(y => y.code === 'CB_CFG_REQUIRED')!
    expect(x.path).toBe('gateway.store.secret')
    expect(x.message).toMatch(/set gateway\.store\.secret/)
    expect(x.line).toBe(4) // in gateway.store, where the key belongs
  })

  it('password, username and secret from ${{ env }}; a missing variable is named', async () => {
    const yaml = `_format_version: "3.0"
gateway:
  store:
    redis:
      url: rediss://redis.internal:6380/2
      username: \${{ env "REDIS_USER" }}
      password: \${{ env "REDIS_PASSWORD" }}
    secret: \${{ env "STORE_SECRET" }}
${AS}`
    const cfg = loadConfigFile(write(yaml), { plugins: await loadPlugins(), env: { REDIS_USER: 'gw', REDIS_PASSWORD: 'pw', STORE_SECRET: 'x'.repeat(32) } })
    expect(cfg.settings.store.redis).toMatchObject({ url: 'rediss://redis.internal:6380/2', username: 'gw', password: 'pw', key_prefix: 'certbound:' })
    const d = await diagnose(yaml, { REDIS_USER: 'gw', STORE_SECRET: 'x'.repeat(32) })
    expect(d.find(x => x.code === 'CB_CFG_ENV')?.message).toMatch(/REDIS_PASSWORD/)
  })

  it('a reload cannot change gateway.store (restart to apply it); the running config stays', async () => {
    const base = (prefix: string) => `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
  store:
    backend: memory
${prefix}`
    const file = write(base(''))
    const g = await Gateway.start({ configFile: file, logger: createLogger({ level: 'silent' }) })
    try {
      const r = await g.reload(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
  store:
    redis:
      url: redis://127.0.0.1:1
`)
      expect(r.ok).toBe(false)
      expect(r.ok ? '' : r.errors).toMatch(/gateway\.store cannot change on a reload/)
      expect(g.status().store).toEqual({ backend: 'memory', connected: true })
      expect((await g.reload(base(''))).ok).toBe(true)
    } finally { await g.close(0) }
  })
})
