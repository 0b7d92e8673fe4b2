/**
 * rate-limiting's config, checked at load with file:line:col and key path (STYLE.md): Kong's self-checks, the
 * keys certbound refuses rather than accept and ignore, and policy redis without a Redis.
 */
import { describe, it, expect } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startGateway } from '../../helpers/gateway.js'
import { Gateway } from '../../../src/gateway.js'

interface Diag { line: number, code: string, path: string, message: string }

async function diagnose (config: string): Promise<Diag[]> {
  const err = await startGateway(`_format_version: "3.0"
gateway:
  listen: [{ address: 127.0.0.1:0 }]
services:
  - name: echo
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/]
        plugins:
          - name: rate-limiting
            config:
${config.trim().split('\n').map(l => '              ' + l).join('\n')}
`).then(async g => { await g.close(); return undefined }, (e: unknown) => e) as { diagnostics?: Diag[] } | undefined
  expect(err?.diagnostics, 'the config must be refused').toBeDefined()
  return err!.diagnostics!
}
const at = (ds: Diag[]): string[] => ds.map(d => `${d.line} ${d.path}`)
const P = 'services[0].routes[0].plugins[0].config'

describe('rate-limiting config (refused at load, positioned)', () => {
  it('no limit at all', async () => {
    const ds = await diagnose('limit_by: ip')
    expect(ds.map(d => d.path)).toEqual([`${P}.minute`])
    expect(ds[0].message).toMatch(/at least one limit: second, minute, hour, day, month or year/)
  })

  it('Kong\'s order check: a longer window cannot allow fewer requests', async () => {
    const ds = await diagnose('minute: 100\nhour: 50')
    expect(at(ds)).toEqual([`14 ${P}.hour`])
    expect(ds[0].message).toBe('the limit for hour (50) cannot be lower than the limit for minute (100)')
  })

  it('zero or negative limits', async () => {
    const ds = await diagnose('second: 0')
    expect(ds.map(d => d.path)).toEqual([`${P}.second`])
  })

  it('limit_by header without header_name, limit_by path without path', async () => {
    expect((await diagnose('minute: 1\nlimit_by: header')).map(d => d.path)).toEqual([`${P}.header_name`])
    expect((await diagnose('minute: 1\nlimit_by: path')).map(d => d.path)).toEqual([`${P}.path`])
  })

  it('policy cluster (Kong\'s database) is refused with a hint to use redis', async () => {
    const ds = await diagnose('minute: 1\npolicy: cluster')
    expect(at(ds)).toEqual([`14 ${P}.policy`])
    expect(ds[0].message).toMatch(/Kong's database.*use policy redis/)
  })

  it('sync_rate other than -1 is refused with the reason (never accepted and ignored)', async () => {
    const ds = await diagnose('minute: 1\nsync_rate: 10')
    expect(at(ds)).toEqual([`14 ${P}.sync_rate`])
    expect(ds[0].message).toMatch(/exceed the limit between syncs.*-1/)
  })

  it('policy redis with neither redis.host nor a Redis gateway.store: refused, never counted locally', async () => {
    const ds = await diagnose('minute: 1\npolicy: redis')
    expect(at(ds)).toEqual([`14 ${P}.policy`])
    expect(ds[0].message).toMatch(/policy redis needs a Redis: set redis.host .* or gateway.store.redis/)
  })

  it('policy redis with the plugin\'s own Redis over TLS without verification (Kong\'s ssl_verify: false) is refused', async () => {
    const ds = await diagnose('minute: 1\npolicy: redis\nredis:\n  host: 127.0.0.1\n  ssl: true')
    expect(ds.map(d => d.path)).toEqual([`${P}.redis.ssl_verify`])
    expect(ds[0].message).toMatch(/verifies every TLS connection/)
  })

  it('certbound validate: policy redis with gateway.store.redis passes without connecting to it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-rl-validate-'))
    try {
      const file = join(dir, 'gateway.yml')
      writeFileSync(file, `_format_version: "3.0"
gateway:
  store:
    redis: { url: "redis://127.0.0.1:1" }
services:
  - name: echo
    url: http://127.0.0.1:9
    routes:
      - name: r
        paths: [/]
        plugins:
          - name: rate-limiting
            config: { minute: 1, policy: redis }
`)
      await expect(Gateway.check(file, { env: {} })).resolves.toBeDefined()
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })

  it('Redis Sentinel, Cluster, a proxied connection and pool tuning are refused, not ignored', async () => {
    const ds = await diagnose('minute: 1\nredis:\n  sentinel_master: mymaster\n  cluster_nodes: [{ ip: 10.0.0.1, port: 6379 }]\n  connection_is_proxied: true\n  keepalive_pool_size: 10')
    expect(ds.map(d => d.path).sort()).toEqual([`${P}.redis.cluster_nodes`, `${P}.redis.connection_is_proxied`, `${P}.redis.keepalive_pool_size`, `${P}.redis.sentinel_master`])
  })

  it('redis_* and redis.* that disagree', async () => {
    const ds = await diagnose('minute: 1\nredis_host: a.example\nredis:\n  host: b.example')
    expect(ds.map(d => d.path)).toEqual([`${P}.redis_host`])
  })

  it('an unknown key and a limit_by Kong has but certbound does not (consumer-group)', async () => {
    expect((await diagnose('minute: 1\nlimit_by: consumer-group')).map(d => d.path)).toEqual([`${P}.limit_by`])
    const ds = await diagnose('minute: 1\nredis_hots: x')
    expect(ds.map(d => d.code)).toEqual(['CB_CFG_UNKNOWN_FIELD'])
    expect(ds[0].message).toMatch(/did you mean "redis_host"/)
  })
})
